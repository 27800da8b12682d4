from django.contrib import admin
from django.contrib.auth import views as auth_views
from django.urls import include, path

from connectors.base import root_urlpatterns, team_urlpatterns
from designer.web import canvas, connections, projectfile, teams

team_patterns = [
    path("", teams.team_home, name="team"),
    path("members/", teams.members, name="members"),
    path("members/<int:member>/remove/", teams.member_remove, name="member_remove"),
    path("projects/new/", teams.project_create, name="project_create"),
    path("projects/<int:project>/", canvas.designer, name="project"),
    path("projects/<int:project>/export/", projectfile.export, name="project_export"),
    path("projects/<int:project>/connections/new/", connections.connection_create, name="project_connection_create"),
    path("connections/", connections.team_connections, name="team_connections"),
    path("connections/new/", connections.connection_create, name="team_connection_create"),
    path("connections/<int:connection>/", connections.connection_detail, name="connection"),
    path("connections/<int:connection>/edit/", connections.connection_edit, name="connection_edit"),
    path("connections/<int:connection>/delete/", connections.connection_delete, name="connection_delete"),
    path("connections/<int:connection>/test/", connections.connection_test, name="connection_test"),
    path("checks/<int:check>/", connections.check_status, name="check_status"),
    *team_urlpatterns(),
    path("", include("designer.web.urls_canvas")),
    path("", include("designer.web.urls_runs")),
    path("", include("designer.web.urls_project")),
]

urlpatterns = [
    path("", teams.home, name="home"),
    path("healthz", teams.healthz, name="healthz"),
    path("login/", auth_views.LoginView.as_view(), name="login"),
    path("logout/", auth_views.LogoutView.as_view(), name="logout"),
    path("teams/new/", teams.team_create, name="team_create"),
    # Each connector's own pages (the Email connector's Microsoft sign-in callback).
    *root_urlpatterns(),
    path("t/<slug:team>/", include(team_patterns)),
    path("admin/", admin.site.urls),
]
