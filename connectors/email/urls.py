"""The Email connector's own URLs (the Microsoft sign-in), included by the designer's URLconf.

``urlpatterns`` sit at the site's root (the one callback URI an app registration lists);
``team_urlpatterns`` sit under a team's prefix (``t/<team>/``), as the designer's own pages do.
"""

from django.urls import path

from connectors.email import views

urlpatterns = [
    path("oauth/microsoft/callback", views.callback, name="oauth_microsoft_callback"),
]
team_urlpatterns = [
    path("connections/<int:connection>/microsoft-sign-in/", views.sign_in, name="connection_microsoft_sign_in"),
]
