from django.urls import path

from designer.web import activity_log, agents, design_history, projects, variables

urlpatterns = [
    path("projects/<int:project>/settings/", projects.project_settings, name="project_settings"),
    path("projects/<int:project>/delete/", projects.project_delete, name="project_delete"),
    path("projects/<int:project>/variables/", variables.variables, name="variables"),
    path("variables/<int:variable>/edit/", variables.variable_edit, name="variable_edit"),
    path("variables/<int:variable>/delete/", variables.variable_delete, name="variable_delete"),
    path("activity/", activity_log.team_activity, name="team_activity"),
    path("agents/", agents.agents_page, name="agents"),
    path("agents/<int:group>/delete/", agents.agent_group_delete, name="agent_group_delete"),
    path("operations/<int:operation>/history/", design_history.operation_history, name="operation_history"),
    path("operations/<int:operation>/history/<int:version>/restore/", design_history.version_restore,
         name="version_restore"),
]
