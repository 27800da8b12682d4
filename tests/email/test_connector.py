"""What the Email connector gives the designer through the registry: forms, URLs, lease key, record facts."""

from __future__ import annotations

import hashlib
from typing import Any

from connectors.base import get_connector
from connectors.email.activities import parse_read_settings
from connectors.email.activity_forms import ACTIVITY_UI
from connectors.email.config import parse_email_config
from connectors.email.forms import EmailConnectionForm

EMAIL = get_connector("email")


def _config(host: str = "imap.example.com", port: int = 993, username: str = "support@example.com") -> Any:
    return parse_email_config({"imap": {"host": host, "port": port}, "smtp": None,
                               "auth": {"method": "password", "username": username}})


def _lease(folder: str, **config: Any) -> str:
    return EMAIL.source_lease_key(_config(**config), parse_read_settings({"folder": folder}))


def test_it_gives_the_connection_form_and_one_ui_per_activity_type() -> None:
    assert EMAIL.connection_form is EmailConnectionForm
    assert EMAIL.activity_ui is ACTIVITY_UI
    assert set(EMAIL.activity_ui) == {t.key for t in EMAIL.activity_types}


def test_it_gives_the_microsoft_sign_in_urls_under_their_names_and_paths() -> None:
    assert [(p.name, str(p.pattern)) for p in EMAIL.urlpatterns] == [
        ("oauth_microsoft_callback", "oauth/microsoft/callback")]
    assert [(p.name, str(p.pattern)) for p in EMAIL.team_urlpatterns] == [
        ("connection_microsoft_sign_in", "connections/<int:connection>/microsoft-sign-in/")]


def test_it_leases_inbox_whatever_its_case_and_other_folders_as_named() -> None:
    assert _lease("inbox") == _lease("INBOX") == _lease("Inbox")
    assert _lease("Archive") != _lease("archive")


def test_it_leases_the_same_mailbox_through_two_connections_once() -> None:
    assert _lease("INBOX", host="IMAP.Example.com.", username="Support@Example.com") == _lease("INBOX")
    assert _lease("INBOX", port=143) != _lease("INBOX")
    assert _lease("INBOX", username="sales@example.com") != _lease("INBOX")
    assert _lease("INBOX", host="imap.example.org") != _lease("INBOX")


def test_it_gives_a_record_identity_from_its_content() -> None:
    record = {"date": "2024-03-01T09:30:00+00:00", "from": "a@example.com", "subject": "Hi", "size": 10,
              "text": "x", "html": ""}
    identity = EMAIL.record_identity(record)
    assert identity.startswith("digest:") and identity == EMAIL.record_identity(dict(record))
    assert identity != EMAIL.record_identity({**record, "text": "y"})
    facts = "\n".join(str(record[k]) for k in ("date", "from", "subject", "size", "text", "html"))
    assert identity == "digest:" + hashlib.sha256(facts.encode()).hexdigest()


def test_it_summarises_a_record_as_the_engine_does() -> None:
    record = {"subject": "Hi", "from": "a@example.com", "to": ["b@example.com", "c@example.com"]}
    assert EMAIL.record_summary(record) == {"subject": "Hi", "from": "a@example.com",
                                            "to": "b@example.com, c@example.com"}
    assert EMAIL.record_summary({"to": "d@example.com"}) == {"subject": "", "from": "", "to": "d@example.com"}
