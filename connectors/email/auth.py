"""How an Email connection authenticates: a small registry, so a new method is an addition.

Each method declares its fields (which are secret) and knows how to log an IMAP client and an
SMTP session in. Secrets arrive already decrypted, as a mapping, and are never stored here.
"""

from __future__ import annotations

import imaplib
import re
import smtplib
import uuid
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, ClassVar

from imapclient import IMAPClient

from connectors import net
from connectors.base import ConnectorError
from connectors.conf import setting
from connectors.email import oauth

if TYPE_CHECKING:
    from connectors.email.config import EmailConfig


@dataclass(frozen=True)
class AuthField:
    name: str
    label: str
    secret: bool = False
    required: bool = True
    help_text: str = ""
    # A fixed list of (value, label) to choose from, and the value an empty field takes.
    choices: tuple[tuple[str, str], ...] = ()
    default: str = ""
    # (setting, values): the field is used only when that setting has one of these values.
    when: tuple[str, tuple[str, ...]] | None = None
    # Returns what is wrong with a (stripped, non-empty) value, or None.
    check: Callable[[str], str | None] | None = None

    def applies(self, settings: Mapping[str, Any]) -> bool:
        return self.when is None or settings.get(self.when[0]) in self.when[1]


class AuthMethod:
    key: ClassVar[str]
    label: ClassVar[str]
    fields: ClassVar[tuple[AuthField, ...]] = ()
    # False for methods that cannot log in to IMAP (a relay that needs no auth).
    supports_imap: ClassVar[bool] = True
    # The name of a Test step that obtains a credential before any login ("OAuth token"); "" for none.
    credential_step: ClassVar[str] = ""

    @property
    def setting_fields(self) -> tuple[AuthField, ...]:
        return tuple(f for f in self.fields if not f.secret)

    @property
    def secret_fields(self) -> tuple[AuthField, ...]:
        return tuple(f for f in self.fields if f.secret)

    def secrets_needed(self, settings: Mapping[str, Any]) -> tuple[AuthField, ...]:
        """The secret fields these settings use (a grant's password is not needed by another grant)."""
        return tuple(f for f in self.secret_fields if f.applies(settings))

    def required_secrets(self, settings: Mapping[str, Any]) -> tuple[AuthField, ...]:
        """The secrets a connection with these settings cannot work without: the one definition
        that the form, the connection test, the engine and the project file import all follow."""
        return tuple(f for f in self.secrets_needed(settings) if f.required)

    def obtain_credential(self, config: EmailConfig, secrets: Mapping[str, str], deadline: net.Deadline) -> str:
        """Run the ``credential_step`` and describe its result; raise ``ConnectorError`` when it fails."""
        raise NotImplementedError

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


# Microsoft 365 OAuth2 ------------------------------------------------------------------------------

_GENERIC_TENANTS = {"common", "organizations", "consumers"}
_TENANT = re.compile(r"^[A-Za-z0-9][A-Za-z0-9.-]{0,252}$")
_ADDRESS = re.compile(r"^[^@\s]+@[^@\s]+\.[^@\s]+$")


def _check_tenant(value: str) -> str | None:
    if value.lower() in _GENERIC_TENANTS:
        return f"must be your tenant's id or domain, not “{value}”: a mailbox belongs to one tenant"
    if not _TENANT.match(value):
        return "must be the directory (tenant) id, a GUID, or the tenant's domain (contoso.onmicrosoft.com)"
    return None


def _check_client_id(value: str) -> str | None:
    try:
        uuid.UUID(value)
    except ValueError:
        return "must be the application (client) id, a GUID like 00000000-0000-0000-0000-000000000000"
    return None


def _check_address(value: str) -> str | None:
    return None if _ADDRESS.match(value) else "must be an email address like support@contoso.com"


def _check_authority(value: str) -> str | None:
    try:
        host, _port = oauth.split_authority(value)
    except ValueError:
        host = ""
    if not host or not net.is_valid_hostname(host):
        return "must be a host name with an optional port (login.microsoftonline.com), without https:// or a path"
    allowed = {*MICROSOFT_AUTHORITIES, *(h.strip().lower() for h in setting("MAILWRIGHT_MICROSOFT_AUTHORITIES", ()))}
    if host.lower().rstrip(".") not in allowed:
        # The client secret and the sign-in redirect go to this host: only Microsoft's own clouds.
        return f"must be a Microsoft authority ({', '.join(sorted(allowed))}); others are set by the operator"
    return None


# Microsoft Entra ID's public and sovereign clouds; MAILWRIGHT_MICROSOFT_AUTHORITIES adds others.
MICROSOFT_AUTHORITIES = ("login.microsoftonline.com", "login.microsoftonline.us", "login.chinacloudapi.cn",
                         "login.partner.microsoftonline.cn", "login.microsoftonline.de")


class Microsoft365OAuth(AuthMethod):
    """SASL XOAUTH2 with a token from Microsoft Entra ID (``oauth.py`` obtains and caches it).

    The token is asked for at every login, which is when the server checks it: the cache answers
    while the token is fresh, and a session that outlives it logs in again after its drop.
    """

    key = "oauth2_microsoft365"
    label = "Microsoft 365 (OAuth2)"
    credential_step = "OAuth token"
    fields = (
        AuthField("tenant_id", "Tenant id", check=_check_tenant,
                  help_text="Directory (tenant) id, or the tenant's domain."),
        AuthField("client_id", "Client id", check=_check_client_id,
                  help_text="Application (client) id of the app registration."),
        AuthField("client_secret", "Client secret", secret=True,
                  help_text="The secret's Value from Certificates & secrets."),
        AuthField("mailbox", "Mailbox address", check=_check_address),
        AuthField("grant", "Grant", choices=oauth.GRANTS, default="client_credentials"),
        AuthField("username", "Username", when=("grant", ("password",))),
        AuthField("password", "Password", secret=True, when=("grant", ("password",))),
        AuthField("authority", "Authority host", required=False, default=oauth.DEFAULT_AUTHORITY,
                  check=_check_authority,
                  help_text="login.microsoftonline.com, or your sovereign cloud's. Checked against the system's "
                            "certificate authorities (the custom CA below is for IMAP and SMTP)."),
    )

    def obtain_credential(self, config: EmailConfig, secrets: Mapping[str, str], deadline: net.Deadline) -> str:
        try:
            token = oauth.access_token(config, secrets, deadline=deadline)
        except ConnectorError as exc:
            # The Test line already names the step; elsewhere (run log, health) the prefix says it.
            message = exc.message.removeprefix(f"{self.credential_step}: ")
            raise ConnectorError(message, permanent=exc.permanent) from None
        return token.describe(config.auth["mailbox"])

    def imap_login(self, client: IMAPClient, settings: Mapping[str, Any], secrets: Mapping[str, str]) -> None:
        server = client.server  # a GuardedIMAPClient
        if not client.has_capability("AUTH=XOAUTH2"):
            raise ConnectorError(
                f"{server.host}:{server.port} does not offer XOAUTH2 login (no AUTH=XOAUTH2 among its capabilities)",
                permanent=True,
            )
        _login_with_token("IMAP", client, secrets, lambda token: client.oauth2_login(settings["mailbox"], token))

    def smtp_login(self, smtp: smtplib.SMTP, settings: Mapping[str, Any], secrets: Mapping[str, str]) -> None:
        if not smtp.has_extn("auth"):
            raise smtplib.SMTPNotSupportedError("AUTH")  # errors.py explains it (STARTTLS first, most often)
        server = smtp.server  # a GuardedSMTP
        if "XOAUTH2" not in smtp.esmtp_features["auth"].upper().split():
            raise ConnectorError(
                f"{server.host}:{server.port} does not offer XOAUTH2 login (its AUTH lists only "
                f"{smtp.esmtp_features['auth'].strip() or 'nothing'})",
                permanent=True,
            )

        def login(token: str) -> None:
            # No initial response: a token can be longer than the 512-octet command line many servers
            # keep to, so it goes on its own line after the server's empty "334".
            smtp.auth("XOAUTH2", _XOAuth2Answer(settings["mailbox"], token), initial_response_ok=False)

        _login_with_token("SMTP", smtp, secrets, login)


class _XOAuth2Answer:
    """smtplib's authobject: the XOAUTH2 string at the server's first (empty) challenge; an empty line to the
    JSON error challenge a server sends when it refuses the token, after which it answers 535."""

    def __init__(self, user: str, token: str) -> None:
        self._response = oauth.xoauth2(user, token)

    def __call__(self, challenge: bytes | None = None) -> str:
        return "" if challenge else self._response


def _refusal(exc: Exception) -> str | None:
    """The server's words when ``exc`` is a refused XOAUTH2 login (not a dropped connection or a 4xx)."""
    if isinstance(exc, imaplib.IMAP4.error) and not isinstance(exc, imaplib.IMAP4.abort):
        arg = exc.args[0] if exc.args else ""
        text = arg.decode("utf-8", "replace") if isinstance(arg, bytes) else str(arg)
        return " ".join(text.split()) or "no reason given"
    if isinstance(exc, smtplib.SMTPAuthenticationError) and exc.smtp_code >= 500:
        reply = exc.smtp_error.decode("utf-8", "replace") if isinstance(exc.smtp_error, bytes) else str(exc.smtp_error)
        return f"{exc.smtp_code} {' '.join(reply.split())}"
    return None


def _login_with_token(kind: str, session: Any, secrets: Mapping[str, str], login: Callable[[str], None]) -> None:
    """Log in with a token; a refused cached token is dropped and a new one tried once (revoked early).

    ``session`` is a GuardedIMAPClient or GuardedSMTP: both carry ``config``, ``server`` and ``deadline``.
    """
    config: EmailConfig = session.config
    token = oauth.access_token(config, secrets, deadline=session.deadline)
    reason = _try_login(login, token.value)
    if reason is not None and token.reused:
        # The cache thought it valid: revoked or expired early. One new token, one more try.
        oauth.forget_access_token(config, secrets)
        token = oauth.access_token(config, secrets, deadline=session.deadline)
        reason = _try_login(login, token.value)
    if reason is None:
        return
    oauth.forget_access_token(config, secrets)  # a refused token is not offered again
    mailbox = config.auth["mailbox"]
    if config.auth.get("grant") == "client_credentials":
        need = (f"the app's IMAP.AccessAsApp / SMTP.SendAsApp permission and its Exchange service principal's "
                f"access to {mailbox}")
    else:
        need = f"the IMAP.AccessAsUser.All / SMTP.Send permission and the signed-in user's access to {mailbox}"
    server = session.server
    raise ConnectorError(
        f"OAuth token refused by the {kind} server {server.host}:{server.port}: "
        f"{oauth_redact(reason, token.value)}; check {need}",
        permanent=True,
    )


def _try_login(login: Callable[[str], None], token: str) -> str | None:
    """None when the login worked, else the server's refusal; any other failure is raised as it is."""
    try:
        login(token)
    except Exception as exc:  # noqa: BLE001 - only a refusal is ours to explain; the rest is re-raised
        reason = _refusal(exc)
        if reason is None:
            raise
        return reason
    return None


def oauth_redact(text: str, token: str) -> str:
    """A server echoing the token back must not put it in a message."""
    return text.replace(token, "•••") if token else text


AUTH_METHODS: dict[str, AuthMethod] = {m.key: m for m in (PasswordAuth(), NoAuth(), Microsoft365OAuth())}
