"""The Email connector: IMAP to read, SMTP to send, registered under the key "email"."""

from __future__ import annotations

import hashlib
from collections.abc import Callable, Iterator, Mapping
from typing import Any

from connectors import net
from connectors.base import ActivityType, CheckStep, Connector, register
from connectors.email.activities import (
    READ_EMAIL_FIELDS,
    SEND_EMAIL_FIELDS,
    SEND_EMAIL_REQUIRED,
    ReadSettings,
    SendSettings,
    parse_read_settings,
    parse_send_settings,
)
from connectors.email.auth import AUTH_METHODS
from connectors.email.check import check_email_connection
from connectors.email.config import EmailConfig, parse_email_config, rebinding_changes, split_email_secrets
from connectors.email.source import EmailSource, list_folders
from connectors.email.target import EmailTarget


class EmailConnector(Connector):
    key = "email"
    label = "Email"
    description = "Read mail from an IMAP mailbox and send mail through an SMTP server."
    activity_types = (
        ActivityType("read_email", "Read Email", "source", "Fetch messages from an IMAP folder.", READ_EMAIL_FIELDS),
        ActivityType("send_email", "Send Email", "target", "Send a message through SMTP.", SEND_EMAIL_FIELDS),
    )
    # Every secret any auth method can hold, in registry order, each name once.
    secret_names = tuple(dict.fromkeys(f.name for m in AUTH_METHODS.values() for f in m.secret_fields))

    def parse_config(self, data: Mapping[str, Any]) -> EmailConfig:
        return parse_email_config(data)

    def split_secrets(self, data: Mapping[str, Any]) -> tuple[dict[str, Any], dict[str, tuple[str, Any]]]:
        return split_email_secrets(data)

    def required_secret_names(self, config: EmailConfig) -> list[str]:
        return [f.name for f in AUTH_METHODS[config.auth_method].required_secrets(config.auth)]

    def check(self, config: EmailConfig, secrets: Mapping[str, str]) -> Iterator[CheckStep]:
        return check_email_connection(config, secrets)

    def parse_activity_settings(self, activity_type: str, data: Mapping[str, Any]) -> ReadSettings | SendSettings:
        parsers = {"read_email": parse_read_settings, "send_email": parse_send_settings}
        return parsers[self.activity_type(activity_type).key](data)

    def split_record_defaults(self, activity_type: str, data: Mapping[str, Any],
                              per_record: Callable[[Any], bool]) -> tuple[dict[str, Any], dict[str, Any]]:
        defaults = data.get("defaults") if self.activity_type(activity_type).key == "send_email" else None
        if not isinstance(defaults, Mapping):
            return dict(data), {}
        templated = {name: value for name, value in defaults.items() if per_record(value)}
        kept = {name: value for name, value in defaults.items() if name not in templated}
        return {**data, "defaults": kept}, templated

    def unfilled_fields(self, activity_type: str, settings: Mapping[str, Any], mapped: set[str]) -> list[str]:
        if activity_type != "send_email":
            return []
        defaults = settings.get("defaults") or {}
        return [name for name in SEND_EMAIL_REQUIRED if name not in mapped and defaults.get(name) in (None, "", [])]

    def open_source(self, config: EmailConfig, secrets: Mapping[str, str], settings: ReadSettings,
                    deadline: net.Deadline | None = None) -> EmailSource:
        return EmailSource(config, secrets, settings, deadline)

    def open_target(self, config: EmailConfig, secrets: Mapping[str, str], settings: SendSettings,
                    deadline: net.Deadline | None = None) -> EmailTarget:
        return EmailTarget(config, secrets, settings, deadline)

    def list_folders(self, config: EmailConfig, secrets: Mapping[str, str]) -> list[str]:
        return list_folders(config, secrets)

    @property
    def connection_form(self) -> type[Any]:
        from connectors.email.forms import EmailConnectionForm

        return EmailConnectionForm

    @property
    def activity_ui(self) -> Mapping[str, Any]:
        from connectors.email.activity_forms import ACTIVITY_UI

        return ACTIVITY_UI

    @property
    def urlpatterns(self) -> list[Any]:
        from connectors.email.urls import urlpatterns

        return urlpatterns

    @property
    def team_urlpatterns(self) -> list[Any]:
        from connectors.email.urls import team_urlpatterns

        return team_urlpatterns

    def bind_connection_form(self, form: Any, request: Any) -> None:
        from connectors.email.views import redirect_uri

        form.show_redirect_uri(redirect_uri(request))

    def connection_page_context(self, request: Any, connection: Any) -> dict[str, Any]:
        from connectors.email.views import sign_in_context

        return sign_in_context(request, connection)

    def rebinding_changes(self, old: Mapping[str, Any], new: Mapping[str, Any]) -> list[str]:
        return rebinding_changes(old, new)

    def source_lease_key(self, config: EmailConfig, settings: ReadSettings) -> str:
        """One mailbox folder: server, port, account and folder name.

        Host names and accounts are compared without case; folder names are case-sensitive except
        INBOX (RFC 3501 §5.1).
        """
        server = config.imap
        host, port = (server.host.lower().rstrip("."), server.port) if server else ("", 0)
        account = str(config.auth.get("mailbox") or config.auth.get("username") or "").lower()
        folder = "INBOX" if settings.folder.upper() == "INBOX" else settings.folder
        return f"source:email:{host}:{port}:{account}:{folder}"

    def record_identity(self, record: Mapping[str, Any]) -> str:
        """A digest of the message's facts, for a message without a Message-ID: a recreated folder
        still cannot resend it."""
        facts = "\n".join(str(record.get(k, "")) for k in ("date", "from", "subject", "size", "text", "html"))
        return "digest:" + hashlib.sha256(facts.encode("utf-8", "replace")).hexdigest()

    def record_summary(self, record: Mapping[str, Any]) -> dict[str, str]:
        to = record.get("to", "")
        return {
            "subject": str(record.get("subject", "")),
            "from": str(record.get("from", "")),
            "to": ", ".join(to) if isinstance(to, list) else str(to),
        }


EMAIL = register(EmailConnector())
