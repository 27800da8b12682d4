"""A password typed into the form must never show up anywhere but its encrypted token."""

from __future__ import annotations

import io
import json
import logging
from pathlib import Path

from django.conf import settings
from django.contrib.auth import get_user_model
from django.core.management import call_command
from django.db import connection as db_connection
from django.test import Client
from django.urls import reverse

from designer.celery import app
from designer.models import Connection
from tests.helpers import form_data

CANARY = "canary-Pa55-7f3e9b21"


def _database_bytes() -> bytes:
    if db_connection.vendor == "sqlite":
        name = Path(db_connection.settings_dict["NAME"])
        return b"".join(p.read_bytes() for p in name.parent.glob(name.name + "*"))
    out = io.StringIO()
    call_command("dumpdata", stdout=out)
    return out.getvalue().encode()


def _broker_bytes() -> bytes:
    return b"".join(p.read_bytes() for p in Path(settings.BROKER_DIR).rglob("*") if p.is_file())


def test_it_keeps_the_password_out_of_pages_logs_exports_database_and_messages(
    transactional_db, team, project, alice, dovecot, mailbox, smtp_factory, caplog, tmp_path
):
    caplog.set_level(logging.DEBUG)
    smtp = smtp_factory("starttls", {"canary": CANARY})
    dovecot.add_user("canary", CANARY)
    client = Client()
    client.force_login(alice)
    create = reverse("project_connection_create", kwargs={"team": team.slug, "project": project.pk})
    response = client.post(create, form_data(
        imap_host="localhost", imap_port=str(dovecot.tls_port), imap_security="ssl",
        smtp_host="localhost", smtp_port=str(smtp.port), smtp_security="starttls",
        auth_username="canary", auth_password=CANARY, ca_pem=dovecot.ca_pem, read_timeout="5",
    ))
    assert response.status_code == 302
    connection = Connection.objects.get()
    assert connection.get_secrets() == {"password": CANARY}
    kwargs = {"team": team.slug, "connection": connection.pk}

    # The Test button through the real broker folder (no eager shortcut): read the queued message.
    app.conf.task_always_eager = False
    try:
        assert client.post(reverse("connection_test", kwargs=kwargs), HTTP_HX_REQUEST="true").status_code == 200
    finally:
        app.conf.task_always_eager = True
    queued = _broker_bytes()
    assert queued, "the Test press should have queued a message"
    assert CANARY.encode() not in queued

    # Then run it for real, inline, so its log lines and stored steps exist.
    call_command("test_connection", connection.name, "--project", project.name, "--team", team.name,
                 stdout=io.StringIO())

    staff = get_user_model().objects.create_superuser("root", "root@example.com", "x")
    admin = Client()
    admin.force_login(staff)
    pages = [
        client.get(reverse("team", kwargs={"team": team.slug})),
        client.get(reverse("project", kwargs={"team": team.slug, "project": project.pk})),
        client.get(reverse("connection", kwargs=kwargs)),
        client.get(reverse("connection_edit", kwargs=kwargs)),
        client.get(reverse("project_export", kwargs={"team": team.slug, "project": project.pk})),
        admin.get(reverse("admin:designer_connection_change", args=[connection.pk])),
        admin.get(reverse("admin:designer_auditentry_changelist")),
        admin.get(reverse("admin:designer_connectioncheck_changelist")),
    ]
    for page in pages:
        assert page.status_code == 200
        assert CANARY.encode() not in page.content, page.request["PATH_INFO"]

    export_file = tmp_path / "export.json"
    call_command("export_project", project.name, "--team", team.name, "-o", str(export_file))
    assert CANARY not in export_file.read_text()

    assert CANARY not in caplog.text
    assert CANARY.encode() not in _database_bytes()


def test_it_keeps_an_imported_literal_password_out_of_database_export_and_pages(transactional_db, tmp_path):
    from tests.web.test_projectfile import SPEC_FILE

    document = {**SPEC_FILE, "connections": [dict(SPEC_FILE["connections"][0])]}
    document["connections"][0]["auth"] = {"method": "password", "username": "support@example.com",
                                          "password": CANARY}
    path = tmp_path / "project.json"
    path.write_text(json.dumps(document))
    call_command("import_project", str(path), "--team", "Acme", stdout=io.StringIO())
    assert Connection.objects.get().get_secrets() == {"password": CANARY}

    export = io.StringIO()
    call_command("export_project", "Support desk", "--team", "Acme", stdout=export)
    assert CANARY not in export.getvalue()
    assert CANARY.encode() not in _database_bytes()

    user = get_user_model().objects.create_user("viewer")
    call_command("add_member", "viewer", "--team", "Acme", "--role", "admin", stdout=io.StringIO())
    client = Client()
    client.force_login(user)
    connection = Connection.objects.get()
    for url in (reverse("connection", kwargs={"team": connection.team.slug, "connection": connection.pk}),
                reverse("connection_edit", kwargs={"team": connection.team.slug, "connection": connection.pk}),
                reverse("project", kwargs={"team": connection.team.slug, "project": connection.project.pk})):
        page = client.get(url)
        assert page.status_code == 200
        assert CANARY.encode() not in page.content


def test_it_keeps_the_client_secret_refresh_token_and_cached_tokens_out_of_everything(
    transactional_db, team, project, alice, tls_certs, idp, oauth_dovecot, smtp_factory, caplog, tmp_path,
    monkeypatch,
):
    """An OAuth connection made in the browser, signed in with Microsoft, tested through the broker and inline."""
    from tests.email.test_oauth_connection import _follow_authorize
    from tests.servers.idp import CLIENT_ID

    caplog.set_level(logging.DEBUG)
    monkeypatch.setitem(idp.clients, CLIENT_ID, CANARY)  # the canary is the app's client secret
    smtp = smtp_factory("starttls", None, xoauth2=lambda user, token: idp.active_user(token) == user)
    client = Client()
    client.force_login(alice)
    create = reverse("project_connection_create", kwargs={"team": team.slug, "project": project.pk})
    response = client.post(create, form_data(
        imap_host="localhost", imap_port=str(oauth_dovecot.tls_port), imap_security="ssl",
        smtp_host="localhost", smtp_port=str(smtp.port), smtp_security="starttls", ca_pem=oauth_dovecot.ca_pem,
        auth_method="oauth2_microsoft365", auth_tenant_id=idp.tenant, auth_client_id=CLIENT_ID,
        auth_client_secret=CANARY, auth_mailbox="alice@contoso.test", auth_grant="authorization_code",
        auth_authority=idp.authority, auth_username=None, auth_password=None, read_timeout="5",
    ))
    assert response.status_code == 302, response.content
    connection = Connection.objects.get()
    assert connection.get_secrets() == {"client_secret": CANARY}
    kwargs = {"team": team.slug, "connection": connection.pk}

    idp.switches.token_lifetime = 2  # so the Test below refreshes: the refresh token is used, new tokens cached
    started = client.post(reverse("connection_microsoft_sign_in", kwargs=kwargs))
    back = _follow_authorize(started["Location"], tls_certs.ca_pem)
    assert client.get(back.removeprefix("http://testserver")).status_code == 302
    connection.refresh_from_db()
    assert connection.token_cache_token

    app.conf.task_always_eager = False
    try:
        assert client.post(reverse("connection_test", kwargs=kwargs), HTTP_HX_REQUEST="true").status_code == 200
    finally:
        app.conf.task_always_eager = True
    queued = _broker_bytes()
    call_command("test_connection", connection.name, "--project", project.name, "--team", team.name,
                 stdout=io.StringIO())
    assert "refresh_token" in idp.grant_types()
    tokens = idp.issued_tokens()
    assert len(tokens) >= 4  # access and refresh tokens of the sign-in and of the refreshes

    staff = get_user_model().objects.create_superuser("root", "root@example.com", "x")
    admin = Client()
    admin.force_login(staff)
    pages = [
        client.get(reverse("connection", kwargs=kwargs)),
        client.get(reverse("connection_edit", kwargs=kwargs)),
        client.get(reverse("project", kwargs={"team": team.slug, "project": project.pk})),
        client.get(reverse("project_export", kwargs={"team": team.slug, "project": project.pk})),
        admin.get(reverse("admin:designer_connection_change", args=[connection.pk])),
        admin.get(reverse("admin:designer_auditentry_changelist")),
        admin.get(reverse("admin:designer_connectioncheck_changelist")),
    ]
    export_file = tmp_path / "export.json"
    call_command("export_project", project.name, "--team", team.name, "-o", str(export_file), stderr=io.StringIO())
    database = _database_bytes()
    for value in [CANARY, *tokens]:
        for page in pages:
            assert page.status_code == 200
            assert value.encode() not in page.content, page.request["PATH_INFO"]
        assert value.encode() not in queued
        assert value not in export_file.read_text()
        assert value not in caplog.text
        assert value.encode() not in database
