from django.urls import path

from designer.web import activity_log, projects, variables

urlpatterns = [
    path("projects/<int:project>/settings/", projects.project_settings, name="project_settings"),
    path("projects/<int:project>/delete/", projects.project_delete, name="project_delete"),
    path("projects/<int:project>/variables/", variables.variables, name="variables"),
    path("variables/<int:variable>/edit/", variables.variable_edit, name="variable_edit"),
    path("variables/<int:variable>/delete/", variables.variable_delete, name="variable_delete"),
    path("activity/", activity_log.team_activity, name="team_activity"),
]
