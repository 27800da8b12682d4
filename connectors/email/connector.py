"""The Email connector: IMAP to read, SMTP to send, registered under the key "email"."""

from __future__ import annotations

from collections.abc import Iterator, Mapping
from typing import Any

from connectors.base import ActivityType, CheckStep, Connector, register
from connectors.email.activities import (
    READ_EMAIL_FIELDS,
    SEND_EMAIL_FIELDS,
    ReadSettings,
    SendSettings,
    parse_read_settings,
    parse_send_settings,
)
from connectors.email.auth import AUTH_METHODS
from connectors.email.check import check_email_connection
from connectors.email.config import EmailConfig, parse_email_config, required_secret_names, split_email_secrets
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
        return required_secret_names(config)

    def check(self, config: EmailConfig, secrets: Mapping[str, str]) -> Iterator[CheckStep]:
        return check_email_connection(config, secrets)

    def parse_activity_settings(self, activity_type: str, data: Mapping[str, Any]) -> ReadSettings | SendSettings:
        parsers = {"read_email": parse_read_settings, "send_email": parse_send_settings}
        return parsers[self.activity_type(activity_type).key](data)

    def open_source(self, config: EmailConfig, secrets: Mapping[str, str], settings: ReadSettings) -> EmailSource:
        return EmailSource(config, secrets, settings)

    def open_target(self, config: EmailConfig, secrets: Mapping[str, str], settings: SendSettings) -> EmailTarget:
        return EmailTarget(config, secrets, settings)

    def list_folders(self, config: EmailConfig, secrets: Mapping[str, str]) -> list[str]:
        return list_folders(config, secrets)


EMAIL = register(EmailConnector())
