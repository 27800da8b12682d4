"""Builders and helpers shared by every area of the suite: connections, project files, URLs, the database URL."""

from __future__ import annotations

import json
from email.message import EmailMessage
from pathlib import Path
from typing import Any

from django.core.management import call_command
from django.db import connection as db_connection
from django.urls import reverse

from designer.models import Connection, Operation, Project, Team
from tests.servers.fixtures import IMAP_PASSWORD


def url(name: str, team: Team, **kwargs: Any) -> str:
    """A team page's URL by its name."""
    return reverse(name, kwargs={"team": team.slug, **kwargs})


def database_url() -> str:
    """The URL of the database this test process uses, for a worker process to share."""
    settings = db_connection.settings_dict
    if db_connection.vendor == "sqlite":
        return f"sqlite:///{settings['NAME']}"
    user = settings["USER"] or "postgres"
    return f"postgres://{user}@{settings['HOST'] or '127.0.0.1'}:{settings['PORT'] or 5432}/{settings['NAME']}"


def email_config(**overrides: Any) -> dict[str, Any]:
    config = {
        "imap": {"host": "imap.example.com", "port": 993, "security": "ssl", "verify_tls": True},
        "smtp": {"host": "smtp.example.com", "port": 587, "security": "starttls", "verify_tls": True},
        "auth": {"method": "password", "username": "support@example.com"},
        "ca_pem": "",
        "timeouts": {"connect": 10, "read": 30},
        "ehlo_name": "",
    }
    config.update(overrides)
    return config


def make_connection(team: Team, project: Project | None = None, name: str = "Support mailbox",
                    password: str = "s3cret-pass", **config: Any) -> Connection:
    connection = Connection(team=team, project=project, name=name, config=email_config(**config))
    connection.set_secrets({"password": password})
    connection.save()
    return connection


def form_data(**overrides: Any) -> dict[str, Any]:
    """What the browser posts for a typical connection."""
    data = {
        "name": "Support mailbox",
        "description": "",
        "imap_enabled": "on",
        "imap_host": "imap.example.com",
        "imap_port": "993",
        "imap_security": "ssl",
        "imap_verify_tls": "on",
        "smtp_enabled": "on",
        "smtp_host": "smtp.example.com",
        "smtp_port": "587",
        "smtp_security": "starttls",
        "smtp_verify_tls": "on",
        "auth_method": "password",
        "auth_username": "support@example.com",
        "auth_password": "s3cret-pass",
        "ca_pem": "",
        "connect_timeout": "10",
        "read_timeout": "30",
        "ehlo_name": "",
    }
    data.update(overrides)
    return {k: v for k, v in data.items() if v is not None}


def real_server_config(dovecot: Any, smtp: Any, *, username: str = "alice", read_timeout: int = 5,
                       **overrides: Any) -> dict[str, Any]:
    """A connection config pointing at the suite's Dovecot (TLS, trusting its CA) and an SMTP server."""
    config = email_config(
        imap={"host": "localhost", "port": dovecot.tls_port, "security": "ssl", "verify_tls": True},
        smtp={"host": "localhost", "port": smtp.port, "security": "none" if smtp.mode == "plain" else smtp.mode,
              "verify_tls": True},
        auth={"method": "password", "username": username},
        ca_pem=dovecot.ca_pem,
        timeouts={"connect": 3, "read": read_timeout},
    )
    config.update(overrides)
    return config


def oauth_server_config(dovecot: Any, smtp: Any, idp: Any, grant: str = "client_credentials", *,
                        read_timeout: int = 5, **auth: Any) -> dict[str, Any]:
    """A Microsoft 365 OAuth connection to the suite's OAuth Dovecot and SMTP server, tokens from ``idp``."""
    from tests.servers.fixtures import OAUTH_USER
    from tests.servers.idp import CLIENT_ID

    settings = {"method": "oauth2_microsoft365", "grant": grant, "tenant_id": idp.tenant, "client_id": CLIENT_ID,
                "mailbox": OAUTH_USER, "authority": idp.authority}
    if grant == "password":
        settings["username"] = OAUTH_USER
    settings.update(auth)
    return real_server_config(dovecot, smtp, auth=settings, read_timeout=read_timeout)


def smtp_with_auth(smtp_factory: Any, **kwargs: Any) -> Any:
    """A plain SMTP server that takes the suite's IMAP user and password, like a mailbox provider."""
    return smtp_factory("plain", {"alice": IMAP_PASSWORD}, auth_require_tls=False, **kwargs)


def project_file(dovecot: Any, smtp: Any, **operation: Any) -> dict[str, Any]:
    """The SPEC §8 example file, pointed at the loopback servers."""
    return {
        "format": "mailwright.project/1",
        "name": "Support desk",
        "connections": [
            {"name": "Support mailbox", "connector": "email",
             "imap": {"host": "localhost", "port": dovecot.tls_port, "security": "ssl", "verify_tls": True},
             "smtp": {"host": "127.0.0.1", "port": smtp.port, "security": "none", "verify_tls": True},
             "auth": {"method": "password", "username": "alice", "password": {"env": "SUPPORT_PASSWORD"}},
             "ca_pem": dovecot.ca_pem, "timeouts": {"connect": 3, "read": 5}},
        ],
        "activities": [
            {"name": "Read support inbox", "type": "read_email", "connection": "Support mailbox",
             "folder": "INBOX", "max_messages": 100, "after_read": "mark_read"},
            {"name": "Send to helpdesk", "type": "send_email", "connection": "Support mailbox",
             "defaults": {"from": "support@example.com"}},
        ],
        "operations": [
            {"name": "Forward to helpdesk", "source": "Read support inbox", "target": "Send to helpdesk",
             "mapping": {"to": "helpdesk@example.com", "subject": "Fwd: {{ subject }}", "text": "{{ text }}",
                         "attachments": "{{ attachments }}"},
             "condition": None, "schedule": None, "on_success": None, "on_failure": None,
             "retry_backoff_seconds": 0, **operation},
        ],
    }


def import_project(tmp_path: Path, monkeypatch: Any, document: dict[str, Any]) -> Operation:
    monkeypatch.setenv("SUPPORT_PASSWORD", IMAP_PASSWORD)
    path = tmp_path / "project.json"
    path.write_text(json.dumps(document))
    call_command("import_project", str(path), "--team", "Support")
    return Operation.objects.get(name="Forward to helpdesk")


def message(n: int, *, subject: str | None = None, body: str = "Hello", message_id: str | None = None,
            attachment: bytes | None = None) -> bytes:
    msg = EmailMessage()
    msg["From"] = f"Customer {n} <customer{n}@example.org>"
    msg["To"] = "support@example.com"
    msg["Subject"] = subject or f"Question {n}"
    msg["Message-ID"] = message_id or f"<q{n}@example.org>"
    msg.set_content(f"{body} {n}\n")
    if attachment is not None:
        msg.add_attachment(attachment, maintype="application", subtype="octet-stream", filename=f"file{n}.bin")
    return bytes(msg)
