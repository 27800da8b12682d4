"""How an Email connection authenticates: a small registry, so a new method is an addition.

Each method declares its fields (which are secret) and knows how to log an IMAP client and an
SMTP session in. Secrets arrive already decrypted, as a mapping, and are never stored here.
"""

from __future__ import annotations

import smtplib
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any, ClassVar

from imapclient import IMAPClient


@dataclass(frozen=True)
class AuthField:
    name: str
    label: str
    secret: bool = False
    required: bool = True
    help_text: str = ""


class AuthMethod:
    key: ClassVar[str]
    label: ClassVar[str]
    fields: ClassVar[tuple[AuthField, ...]] = ()
    # False for methods that cannot log in to IMAP (a relay that needs no auth).
    supports_imap: ClassVar[bool] = True

    @property
    def setting_fields(self) -> tuple[AuthField, ...]:
        return tuple(f for f in self.fields if not f.secret)

    @property
    def secret_fields(self) -> tuple[AuthField, ...]:
        return tuple(f for f in self.fields if f.secret)

    def imap_login(self, client: IMAPClient, settings: Mapping[str, Any], secrets: Mapping[str, str]) -> None:
        raise NotImplementedError

    def smtp_login(self, smtp: smtplib.SMTP, settings: Mapping[str, Any], secrets: Mapping[str, str]) -> None:
        raise NotImplementedError


class PasswordAuth(AuthMethod):
    key = "password"
    label = "Username and password"
    fields = (
        AuthField("username", "Username"),
        AuthField("password", "Password", secret=True),
    )

    def imap_login(self, client: IMAPClient, settings: Mapping[str, Any], secrets: Mapping[str, str]) -> None:
        # imapclient uses LOGIN; servers that only take AUTHENTICATE PLAIN get that instead.
        if b"LOGINDISABLED" in client.capabilities() and b"AUTH=PLAIN" in client.capabilities():
            client.plain_login(settings["username"], secrets["password"])
        else:
            client.login(settings["username"], secrets["password"])

    def smtp_login(self, smtp: smtplib.SMTP, settings: Mapping[str, Any], secrets: Mapping[str, str]) -> None:
        smtp.login(settings["username"], secrets["password"])


class NoAuth(AuthMethod):
    key = "none"
    label = "None (SMTP relay that needs no login)"
    supports_imap = False

    def imap_login(self, client: IMAPClient, settings: Mapping[str, Any], secrets: Mapping[str, str]) -> None:
        raise RuntimeError("an IMAP server always needs a login")

    def smtp_login(self, smtp: smtplib.SMTP, settings: Mapping[str, Any], secrets: Mapping[str, str]) -> None:
        """A relay accepts mail without AUTH: nothing to do."""


AUTH_METHODS: dict[str, AuthMethod] = {m.key: m for m in (PasswordAuth(), NoAuth())}
