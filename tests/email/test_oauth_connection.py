"""OAuth Email connections in the designer: project files, test_connection, runs, the encrypted token
cache, key rotation and the "Sign in with Microsoft" round trip (without a browser; see tests/browser)."""

from __future__ import annotations

import io
import json
import ssl
import time
import urllib.request
from typing import Any

import pytest
from cryptography.fernet import Fernet
from django.core.management import call_command
from django.core.management.base import CommandError
from django.test import Client
from django.urls import reverse

from designer.crypto import decrypt_secrets
from designer.models import Activity, AuditEntry, Connection, Run
from tests.helpers import message, oauth_server_config, project_file
from tests.servers.dovecot import free_port
from tests.servers.fixtures import OAUTH_PASSWORD, OAUTH_USER
from tests.servers.idp import CLIENT_ID, CLIENT_SECRET
from tests.web.test_secret_canary import _database_bytes

LITERAL_SECRET = "literal-client-secret-5d0e"


@pytest.fixture
def smtp_oauth(smtp_factory, idp):
    return smtp_factory("starttls", None, xoauth2=lambda user, token: idp.active_user(token) == user)


def _oauth_file(oauth_dovecot, smtp, idp, *, secret: Any = CLIENT_SECRET, authority: str = "",
                grant: str = "client_credentials") -> dict[str, Any]:
    document = project_file(oauth_dovecot, smtp)
    entry = document["connections"][0]
    entry["smtp"] = {"host": "localhost", "port": smtp.port, "security": "starttls", "verify_tls": True}
    entry["auth"] = {"method": "oauth2_microsoft365", "grant": grant, "tenant_id": idp.tenant,
                     "client_id": CLIENT_ID, "client_secret": secret, "mailbox": OAUTH_USER,
                     "authority": authority or idp.authority}
    return document


def _import(tmp_path, document: dict[str, Any]) -> Connection:
    path = tmp_path / "project.json"
    path.write_text(json.dumps(document))
    call_command("import_project", str(path), "--team", "Support", stdout=io.StringIO())
    return Connection.objects.get(name="Support mailbox")


def _test_connection(capsys) -> tuple[int, str, str]:
    try:
        call_command("test_connection", "Support mailbox", "--project", "Support desk", "--team", "Support")
    except CommandError as exc:
        return 1, capsys.readouterr().out, str(exc)
    return 0, capsys.readouterr().out, ""


def test_it_keeps_an_imported_literal_client_secret_out_of_database_and_export_and_names_the_token_step(
    transactional_db, tmp_path, idp, oauth_dovecot, smtp_oauth, capsys
):
    """The acceptance check: no identity provider reachable (a closed port), a literal secret imported."""
    closed = f"127.0.0.1:{free_port()}"
    connection = _import(tmp_path, _oauth_file(oauth_dovecot, smtp_oauth, idp, secret=LITERAL_SECRET,
                                               authority=closed))
    assert connection.get_secrets() == {"client_secret": LITERAL_SECRET}
    assert connection.config["auth"]["authority"] == closed

    export = tmp_path / "export.json"
    call_command("export_project", "Support desk", "--team", "Support", "-o", str(export), stderr=io.StringIO())
    exported = json.loads(export.read_text())["connections"][0]["auth"]
    assert LITERAL_SECRET not in export.read_text()
    assert "client_secret" not in exported and exported["grant"] == "client_credentials"
    assert LITERAL_SECRET.encode() not in _database_bytes()

    started = time.monotonic()
    code, out, error = _test_connection(capsys)
    assert time.monotonic() - started < 2 * (3 + 5)  # well inside the connection's budget
    assert code == 1
    assert out.splitlines()[0].startswith(f"FAIL OAuth token: connection refused by the identity provider at {closed}")
    assert error == "Connection failed at step: OAuth token"
    assert LITERAL_SECRET not in out + error


def test_it_imports_secrets_from_the_environment_for_the_password_grant(transactional_db, tmp_path, monkeypatch,
                                                                        idp, oauth_dovecot, smtp_oauth, capsys):
    monkeypatch.setenv("M365_SECRET", CLIENT_SECRET)
    document = _oauth_file(oauth_dovecot, smtp_oauth, idp, secret={"env": "M365_SECRET"}, grant="password")
    document["connections"][0]["auth"].update({"username": OAUTH_USER, "password": OAUTH_PASSWORD})
    connection = _import(tmp_path, document)
    assert connection.get_secrets() == {"client_secret": CLIENT_SECRET, "password": OAUTH_PASSWORD}
    code, out, _ = _test_connection(capsys)
    assert code == 0, out
    export = tmp_path / "export.json"
    call_command("export_project", "Support desk", "--team", "Support", "-o", str(export), stderr=io.StringIO())
    auth = json.loads(export.read_text())["connections"][0]["auth"]
    assert auth == {"method": "oauth2_microsoft365", "tenant_id": idp.tenant, "client_id": CLIENT_ID,
                    "mailbox": OAUTH_USER, "grant": "password", "authority": idp.authority, "username": OAUTH_USER}


def test_it_passes_test_connection_and_keeps_the_tokens_encrypted(transactional_db, tmp_path, idp, oauth_dovecot,
                                                                  smtp_oauth, capsys):
    connection = _import(tmp_path, _oauth_file(oauth_dovecot, smtp_oauth, idp))
    code, out, _ = _test_connection(capsys)
    assert code == 0, out
    assert out.splitlines()[0] == (f"ok   OAuth token: token for {OAUTH_USER} from {idp.authority} (newly issued), "
                                   "expires in 60 min")
    connection.refresh_from_db()
    cache = json.loads(decrypt_secrets(connection.token_cache_token)["cache"])
    assert cache["msal"] and cache["fingerprint"]
    for token in idp.issued_tokens():
        assert token.encode() not in _database_bytes()

    code, out, _ = _test_connection(capsys)
    assert code == 0 and "(reused from the encrypted cache)" in out.splitlines()[0]
    assert idp.grant_types() == ["client_credentials"]


def test_it_forwards_mail_with_oauth_and_shows_a_refused_secret_in_the_run_and_source_health(
    transactional_db, tmp_path, monkeypatch, idp, oauth_dovecot, smtp_oauth
):
    box = oauth_dovecot.mailbox(OAUTH_USER)
    box.reset()
    box.append("INBOX", message(1))
    _import(tmp_path, _oauth_file(oauth_dovecot, smtp_oauth, idp))
    args = ["Forward to helpdesk", "--project", "Support desk", "--team", "Support", "--inline"]
    call_command("run_operation", *args, stdout=io.StringIO())
    assert [m.subject for m in smtp_oauth.messages] == ["Fwd: Question 1"]
    assert smtp_oauth.messages[0].auth_user == OAUTH_USER

    box.append("INBOX", message(2))
    Connection.objects.update(token_cache_token="")  # no cached token: the next run must ask again
    idp.switches.refuse_secret = True
    with pytest.raises(CommandError):
        call_command("run_operation", *args, stdout=io.StringIO())
    run = Run.objects.latest("pk")
    assert run.status == Run.Status.FAILED
    assert "the client secret is wrong" in run.message and "(AADSTS7000215)" in run.message
    assert any("AADSTS7000215" in line.text for line in run.logs.all())
    source = Activity.objects.get(name="Read support inbox")
    assert "the client secret is wrong" in source.last_error


def test_it_rotates_the_token_cache_with_the_secrets(transactional_db, tmp_path, settings, idp, oauth_dovecot,
                                                     smtp_oauth, capsys):
    connection = _import(tmp_path, _oauth_file(oauth_dovecot, smtp_oauth, idp))
    code, out, _ = _test_connection(capsys)
    assert code == 0, out
    old_key = settings.MAILWRIGHT_ENCRYPTION_KEYS[0]
    new_key = Fernet.generate_key().decode()
    settings.MAILWRIGHT_ENCRYPTION_KEYS = [new_key, old_key]
    call_command("rotate_encryption_keys", stdout=io.StringIO())
    settings.MAILWRIGHT_ENCRYPTION_KEYS = [new_key]
    connection.refresh_from_db()
    assert connection.get_secrets() == {"client_secret": CLIENT_SECRET}
    assert decrypt_secrets(connection.token_cache_token)["cache"]
    code, out, _ = _test_connection(capsys)
    assert code == 0 and "(reused from the encrypted cache)" in out, out


# Sign in with Microsoft ---------------------------------------------------------------------------------------


def _browser_connection(project, oauth_dovecot, smtp, idp) -> Connection:
    connection = Connection(team=project.team, project=project, name="Signed in",
                            config=oauth_server_config(oauth_dovecot, smtp, idp, "authorization_code"))
    connection.set_secrets({"client_secret": CLIENT_SECRET})
    connection.save()
    return connection


def _follow_authorize(url: str, ca_pem: str) -> str:
    """What the browser does at the identity provider: GET the authorize URL, return where it redirects."""

    class NoRedirect(urllib.request.HTTPRedirectHandler):
        def redirect_request(self, *args: Any, **kwargs: Any) -> None:
            return None

    opener = urllib.request.build_opener(
        urllib.request.HTTPSHandler(context=ssl.create_default_context(cadata=ca_pem)), NoRedirect)
    try:
        opener.open(url, timeout=5)
    except urllib.error.HTTPError as exc:
        assert exc.code == 302
        return exc.headers["Location"]
    raise AssertionError("the authorize endpoint did not redirect")


def _sign_in(client: Client, connection: Connection, tls_certs) -> Any:
    kwargs = {"team": connection.team.slug, "connection": connection.pk}
    started = client.post(reverse("connection_microsoft_sign_in", kwargs=kwargs))
    assert started.status_code == 302
    assert started["Location"].startswith(f"https://{connection.config['auth']['authority']}/")
    back = _follow_authorize(started["Location"], tls_certs.ca_pem)
    assert back.startswith("http://testserver/oauth/microsoft/callback?")
    return client.get(back.removeprefix("http://testserver"))


def test_it_signs_in_with_microsoft_and_then_logs_in_with_the_stored_refresh_token(
    alice_client, project, tls_certs, idp, oauth_dovecot, smtp_oauth, capsys
):
    connection = _browser_connection(project, oauth_dovecot, smtp_oauth, idp)
    idp.switches.token_lifetime = 2  # too short-lived to reuse: later logins must use the refresh token
    page = alice_client.get(reverse("connection", kwargs={"team": project.team.slug, "connection": connection.pk}))
    assert b"Sign in with Microsoft" in page.content
    assert b"http://testserver/oauth/microsoft/callback" in page.content
    assert b"nobody has signed in yet" in page.content

    done = _sign_in(alice_client, connection, tls_certs)
    assert done.status_code == 302 and done["Location"].endswith(f"/connections/{connection.pk}/")
    entry = AuditEntry.objects.get(action="signed in")
    assert entry.details == {"result": f"signed in with Microsoft as {OAUTH_USER}"}
    assert entry.username == "alice"
    page = alice_client.get(done["Location"])
    assert f"signed in as {OAUTH_USER}".encode() in page.content

    code, out, _ = _test_connection_named(capsys, "Signed in")
    assert code == 0, out
    grants = idp.grant_types()  # every login of the Test refreshed the two-second token
    assert grants[0] == "authorization_code" and set(grants[1:]) == {"refresh_token"}, grants
    for token in idp.issued_tokens():
        assert token.encode() not in _database_bytes()


def test_it_says_sign_in_again_when_the_refresh_token_expired(alice_client, project, tls_certs, idp, oauth_dovecot,
                                                              smtp_oauth, capsys):
    connection = _browser_connection(project, oauth_dovecot, smtp_oauth, idp)
    idp.switches.token_lifetime = 2
    _sign_in(alice_client, connection, tls_certs)
    idp.switches.expire_refresh_tokens = True
    code, out, _ = _test_connection_named(capsys, "Signed in")
    assert code == 1
    assert "FAIL OAuth token: the sign-in has expired (the refresh token is too old): sign in with " \
           "Microsoft again on the connection page (AADSTS70008)" in out


def test_it_reports_a_refused_consent_at_sign_in(alice_client, project, tls_certs, idp, oauth_dovecot, smtp_oauth):
    connection = _browser_connection(project, oauth_dovecot, smtp_oauth, idp)
    idp.switches.require_consent = True
    done = _sign_in(alice_client, connection, tls_certs)
    page = alice_client.get(done["Location"])
    assert b"has not been granted consent" in page.content and b"AADSTS65001" in page.content
    assert AuditEntry.objects.filter(action="sign-in failed").exists()
    assert Connection.objects.get(pk=connection.pk).token_cache_token == ""


def test_it_refuses_a_callback_it_did_not_start(alice_client, project, idp, oauth_dovecot, smtp_oauth):
    _browser_connection(project, oauth_dovecot, smtp_oauth, idp)
    response = alice_client.get(reverse("oauth_microsoft_callback") + "?code=forged&state=forged", follow=True)
    assert b"This sign-in is unknown or already finished" in response.content
    assert not AuditEntry.objects.filter(action="signed in").exists()


def test_it_hides_another_teams_sign_in_and_refuses_viewers(alice_client, charlie_client, other_team, project, idp,
                                                            oauth_dovecot, smtp_oauth):
    from designer.models import Project

    theirs = _browser_connection(Project.objects.create(team=other_team, name="Theirs"), oauth_dovecot,
                                 smtp_oauth, idp)
    url = reverse("connection_microsoft_sign_in", kwargs={"team": other_team.slug, "connection": theirs.pk})
    assert alice_client.post(url).status_code == 404
    mine = _browser_connection(project, oauth_dovecot, smtp_oauth, idp)
    url = reverse("connection_microsoft_sign_in", kwargs={"team": project.team.slug, "connection": mine.pk})
    assert charlie_client.post(url).status_code == 403


def _test_connection_named(capsys, name: str) -> tuple[int, str, str]:
    try:
        call_command("test_connection", name, "--project", "Support desk", "--team", "Support")
    except CommandError as exc:
        return 1, capsys.readouterr().out, str(exc)
    return 0, capsys.readouterr().out, ""
