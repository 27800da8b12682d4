"""Builders for the delivery suite: a project wired to the suite's Dovecot and an SMTP server."""

from __future__ import annotations

import json
from email.message import EmailMessage
from pathlib import Path
from typing import Any

from django.core.management import call_command

from designer.models import Operation
from tests.servers.fixtures import IMAP_PASSWORD


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
