"""Sign in with Microsoft: the authorization-code grant of an Email connection, started from its page.

MSAL makes the state, the PKCE verifier and the nonce (``oauth.begin_sign_in``); the flow waits
in the server-side session, keyed by its state, until Microsoft redirects back to the one
callback URL the app registration lists. The callback redeems the code, stores the tokens
encrypted in the connection's token cache and records "signed in" in the audit log.
"""

from __future__ import annotations

from django.contrib import messages
from django.http import HttpRequest, HttpResponse
from django.shortcuts import redirect
from django.urls import reverse
from django.views.decorators.http import require_GET, require_POST

from connectors.base import ConfigError, ConnectorError
from connectors.email import oauth
from designer.models import Connection
from designer.teams import audit
from designer.teams.access import get_connection, get_membership, require_connection_change

SESSION_KEY = "microsoft_sign_ins"
# Sign-ins started but not finished that a session keeps (a user may start several and abandon some).
MAX_PENDING = 5
METHOD = "oauth2_microsoft365"


def redirect_uri(request: HttpRequest) -> str:
    """What the app registration must list as a Web redirect URI (Microsoft wants https except on localhost)."""
    return request.build_absolute_uri(reverse("oauth_microsoft_callback"))


def uses_browser_sign_in(connection: Connection) -> bool:
    auth = (connection.config or {}).get("auth") or {}
    return auth.get("method") == METHOD and auth.get("grant") == "authorization_code"


def sign_in_context(request: HttpRequest, connection: Connection) -> dict[str, object]:
    """What the connection page shows about the browser sign-in: whether it applies, who signed in, the URI."""
    if not uses_browser_sign_in(connection):
        return {"browser_sign_in": False}
    try:
        who = oauth.signed_in_as(connection.parsed_config(), connection.get_secrets())
    except ConfigError:
        who = ""
    return {"browser_sign_in": True, "signed_in_as": who, "redirect_uri": redirect_uri(request)}


@require_POST
def sign_in(request: HttpRequest, team: str, connection: int) -> HttpResponse:
    membership = get_membership(request, team)
    connection_obj = get_connection(membership, connection)
    require_connection_change(membership, connection_obj)
    page = reverse("connection", kwargs={"team": team, "connection": connection_obj.pk})
    if not uses_browser_sign_in(connection_obj):
        messages.error(request, "This connection does not use the browser sign-in grant.")
        return redirect(page)
    try:
        flow = oauth.begin_sign_in(connection_obj.parsed_config(), connection_obj.get_secrets(),
                                   redirect_uri(request))
    except (ConnectorError, ConfigError) as exc:
        messages.error(request, f"Cannot start the sign-in: {exc}")
        return redirect(page)
    pending = dict(request.session.get(SESSION_KEY, {}))
    pending[flow["state"]] = {"flow": flow, "team": team, "connection": connection_obj.pk}
    request.session[SESSION_KEY] = dict(list(pending.items())[-MAX_PENDING:])
    return redirect(flow["auth_uri"])


@require_GET
def callback(request: HttpRequest) -> HttpResponse:
    pending = dict(request.session.get(SESSION_KEY, {}))
    entry = pending.pop(request.GET.get("state", ""), None)
    request.session[SESSION_KEY] = pending
    if entry is None:
        messages.error(request, "This sign-in is unknown or already finished: start it again from the connection page.")
        return redirect("home")
    membership = get_membership(request, entry["team"])
    connection_obj = get_connection(membership, entry["connection"])
    require_connection_change(membership, connection_obj)
    try:
        username = oauth.finish_sign_in(connection_obj.parsed_config(), connection_obj.get_secrets(), entry["flow"],
                                        request.GET.dict())
    except (ConnectorError, ConfigError) as exc:
        audit.record(request.user, membership.team, "sign-in failed", connection_obj, {"result": str(exc)})
        messages.error(request, str(exc))
    else:
        audit.record(request.user, membership.team, "signed in", connection_obj,
                     {"result": f"signed in with Microsoft as {username}"})
        messages.success(request, f"Signed in with Microsoft as {username}; the tokens are stored encrypted.")
    return redirect("connection", team=entry["team"], connection=connection_obj.pk)
