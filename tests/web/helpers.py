"""Small builders shared by the web tests."""

from __future__ import annotations

from typing import Any

from designer.models import Connection, Project, Team


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
