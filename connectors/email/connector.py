"""The Email connector: IMAP to read, SMTP to send, registered under the key "email"."""

from __future__ import annotations

from collections.abc import Iterator, Mapping
from typing import Any

from connectors.base import ActivityType, CheckStep, Connector, register
from connectors.email.auth import AUTH_METHODS
from connectors.email.check import check_email_connection
from connectors.email.config import EmailConfig, parse_email_config, required_secret_names, split_email_secrets


class EmailConnector(Connector):
    key = "email"
    label = "Email"
    description = "Read mail from an IMAP mailbox and send mail through an SMTP server."
    activity_types = (
        ActivityType("read_email", "Read Email", "source", "Fetch messages from an IMAP folder."),
        ActivityType("send_email", "Send Email", "target", "Send a message through SMTP."),
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


EMAIL = register(EmailConnector())
