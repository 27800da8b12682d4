"""One place that turns what socket, ssl, imaplib/imapclient and smtplib raise into words.

Every network call of the Email connector runs inside ``translated(server, phase, timeout, ...)``
and comes out as a ``ConnectorError`` whose message names the server, says what went wrong in
terms a user can act on ("choose security ssl"), and whose ``permanent`` flag tells the engine
whether retrying can help.

The phase matters as much as the exception: a timeout while waiting for a greeting on a plain
port means "this is a TLS port", while a timeout on a later command just means "slow server".
Known phases are ``resolve``, ``connect``, ``tls`` (implicit TLS handshake), ``greeting``,
``starttls`` and ``login``; any other phase is a command described in words ("select INBOX").

Library exceptions can carry secrets (a ``UnicodeEncodeError`` holds the whole LOGIN line), so a
message is only ever built from server replies and our own words, never from ``repr``/``args``,
and any secret value that still shows up is masked.
"""

from __future__ import annotations

import imaplib
import re
import smtplib
import socket
import ssl
from collections.abc import Iterable, Iterator, Mapping
from contextlib import contextmanager

from imapclient.exceptions import CapabilityError

from connectors.base import ConnectorError, is_stop_exception
from connectors.email.auth import AUTH_METHODS
from connectors.email.config import EmailConfig, ServerSettings
from connectors.net import ResolveTimeout

# OpenSSL's reasons when the bytes that arrived are not a TLS record: a plain server has sent its
# greeting ("* OK", "220 ...") where a ServerHello should be. The names differ across versions.
_NOT_TLS_REASONS = {
    "WRONG_VERSION_NUMBER",
    "RECORD_LAYER_FAILURE",
    "PACKET_LENGTH_TOO_LONG",
    "HTTP_REQUEST",
    "UNEXPECTED_EOF_WHILE_READING",
    "UNKNOWN_PROTOCOL",
}
_HOSTNAME_MISMATCH_CODES = {62, 64}  # X509_V_ERR_HOSTNAME_MISMATCH, X509_V_ERR_IP_ADDRESS_MISMATCH
_MASK = "•••"
_MAX_SERVER_TEXT = 300


@contextmanager
def translated(
    server: ServerSettings,
    phase: str,
    timeout: float,
    secrets: Mapping[str, str] | None = None,
) -> Iterator[None]:
    """Run the block; re-raise anything it raises as a plain-language ``ConnectorError``.

    ``timeout`` is the limit the block ran under (it appears in "timed out after N s"); pass the
    ``secrets`` when the block may see them so that none can reach a message.
    """
    try:
        yield
    except ConnectorError:  # told in words already, and its kind (e.g. an unknown outcome) matters
        raise
    except Exception as exc:  # noqa: BLE001 - every failure becomes a message, a bug's included
        if is_stop_exception(exc):  # a time limit stops the run; it is no failure of the server's
            raise
        # "from None": the original may hold a secret in its args; keep it out of tracebacks.
        raise translate(exc, server=server, phase=phase, timeout=timeout, secrets=secrets) from None


def translate(
    exc: BaseException,
    *,
    server: ServerSettings,
    phase: str,
    timeout: float,
    secrets: Mapping[str, str] | None = None,
) -> ConnectorError:
    """The ``ConnectorError`` that tells a user what ``exc`` means at this phase with this server."""
    error = _explain(exc, _Context(server, phase, timeout))
    message = redact(error.message, (secrets or {}).values())
    return ConnectorError(message, permanent=error.permanent)


def redact(text: str, secrets: Iterable[str]) -> str:
    """``text`` with every secret value masked (values shorter than 3 characters would mask noise)."""
    for value in sorted((s for s in secrets if isinstance(s, str) and len(s) >= 3), key=len, reverse=True):
        text = text.replace(value, _MASK)
    return text


def check_secrets(config: EmailConfig, secrets: Mapping[str, str]) -> None:
    """Fail early, in words, when a secret the auth method needs was never stored."""
    required = AUTH_METHODS[config.auth_method].required_secrets(config.auth)
    missing = [f.label.lower() for f in required if not secrets.get(f.name)]
    if missing:
        raise ConnectorError(
            f"no {' or '.join(missing)} is stored for this connection: enter it in the connection's settings",
            permanent=True,
        )


class _Context:
    def __init__(self, server: ServerSettings, phase: str, timeout: float) -> None:
        self.server = server
        self.phase = phase
        self.timeout = timeout

    @property
    def address(self) -> str:
        host = f"[{self.server.host}]" if ":" in self.server.host else self.server.host
        return f"{host}:{self.server.port}"

    @property
    def plain_connection(self) -> bool:
        """No TLS before the greeting: the modes where a TLS-only port stays silent."""
        return self.server.security in ("none", "starttls")

    @property
    def what(self) -> str:
        return {
            "resolve": "the DNS lookup",
            "connect": "connecting",
            "tls": "the TLS handshake",
            "greeting": "the greeting",
            "starttls": "STARTTLS",
            "login": "login",
        }.get(self.phase, self.phase)

    @property
    def doing(self) -> str:
        if self.phase == "resolve":
            return f"looking up {self.server.host}"
        if self.phase == "connect":
            return f"connecting to {self.address}"
        return f"{self.what} at {self.address}"

    def seconds(self) -> str:
        return f"{self.timeout:g} s"


def _explain(exc: BaseException, ctx: _Context) -> ConnectorError:
    if isinstance(exc, ConnectorError):
        return exc
    for explain in (_dns, _tls, _timeout, _greeting, _refused, _starttls, _login, _smtp_reply, _closed, _imap_reply):
        error = explain(exc, ctx)
        if error is not None:
            return error
    if isinstance(exc, OSError) and exc.strerror:
        return ConnectorError(f"network error during {ctx.doing}: {exc.strerror}")
    # A bug or an exception nobody foresaw: name it, but show its text only outside login,
    # the one phase where a library holds the password.
    detail = "" if ctx.phase == "login" else f": {_clip(str(exc))}"
    return ConnectorError(f"unexpected {type(exc).__name__} during {ctx.doing}{detail}")


def _dns(exc: BaseException, ctx: _Context) -> ConnectorError | None:
    if isinstance(exc, ResolveTimeout):
        return ConnectorError(f"timed out after {ctx.seconds()} looking up {ctx.server.host}")
    if not isinstance(exc, socket.gaierror):
        return None
    if exc.errno in (socket.EAI_AGAIN,):
        return ConnectorError(f"could not look up {ctx.server.host} (temporary DNS failure)")
    return ConnectorError(f"name not found: {ctx.server.host} (check the host name)", permanent=True)


def _tls(exc: BaseException, ctx: _Context) -> ConnectorError | None:
    if not isinstance(exc, ssl.SSLError):
        return None
    # The C library sets these; an SSLError raised by Python code may lack them.
    reason = getattr(exc, "reason", None)
    if isinstance(exc, ssl.SSLCertVerificationError):
        why = getattr(exc, "verify_message", None) or reason or "verification failed"
        if getattr(exc, "verify_code", None) in _HOSTNAME_MISMATCH_CODES:
            advice = f"connect with a host name the certificate names, not {ctx.server.host}"
        else:
            advice = "turn on 'accept self-signed / custom CA' or give the CA PEM"
        return ConnectorError(f"certificate not trusted: {why} ({ctx.address}); {advice}", permanent=True)
    if ctx.phase == "tls" and (isinstance(exc, ssl.SSLEOFError) or reason in _NOT_TLS_REASONS):
        return ConnectorError(
            f"the server did not answer TLS on port {ctx.server.port}: "
            "it looks like a plain port — choose security starttls or none",
            permanent=True,
        )
    why = reason or _clip(str(exc))
    if ctx.phase in ("tls", "starttls"):
        return ConnectorError(f"TLS handshake with {ctx.address} failed: {why}", permanent=True)
    return ConnectorError(f"the TLS connection to {ctx.address} broke during {ctx.what}: {why}")


def _timeout(exc: BaseException, ctx: _Context) -> ConnectorError | None:
    timed_out = isinstance(exc, TimeoutError) or (
        isinstance(exc, smtplib.SMTPServerDisconnected) and isinstance(exc.__context__, TimeoutError)
    )
    if not timed_out:
        return None
    if ctx.phase == "greeting" and ctx.plain_connection:
        return ConnectorError(
            f"no greeting from {ctx.address} within {ctx.seconds()}: "
            "this port probably expects TLS: choose security ssl"
        )
    if ctx.phase == "connect":
        return ConnectorError(
            f"timed out after {ctx.seconds()} connecting to {ctx.address} "
            "(is the host up? a firewall may be dropping the connection)"
        )
    return ConnectorError(f"timed out after {ctx.seconds()} waiting for {ctx.doing}")


def _greeting(exc: BaseException, ctx: _Context) -> ConnectorError | None:
    """No usable greeting: garbage (a TLS port answering our silence), an early close, or a refusal."""
    if ctx.phase != "greeting":
        return None
    garbage = isinstance(exc, smtplib.SMTPConnectError) and exc.smtp_code == -1
    garbage = garbage or (isinstance(exc, imaplib.IMAP4.abort) and "unexpected response" in str(exc))
    closed = isinstance(exc, (smtplib.SMTPServerDisconnected, ConnectionResetError, EOFError))
    closed = closed or (isinstance(exc, imaplib.IMAP4.abort) and "EOF" in str(exc))
    if (garbage or closed) and ctx.plain_connection:
        what = "an unreadable greeting" if garbage else "no greeting (the connection closed)"
        return ConnectorError(
            f"{what} from {ctx.address}: this port probably expects TLS: choose security ssl",
            permanent=garbage,
        )
    if garbage or closed:
        return ConnectorError(f"{ctx.address} closed the connection or sent no greeting")
    # The refusal's text is the server's banner: only its reply code is shown (SPEC §9, no probing).
    if isinstance(exc, smtplib.SMTPConnectError):
        return ConnectorError(
            f"{ctx.address} refused the session (reply code {exc.smtp_code})", permanent=exc.smtp_code >= 500
        )
    if isinstance(exc, imaplib.IMAP4.error):  # a "* BYE" greeting, or not IMAP4 at all
        return ConnectorError(f"{ctx.address} refused the session")
    return None


def _refused(exc: BaseException, ctx: _Context) -> ConnectorError | None:
    if isinstance(exc, ConnectionRefusedError):
        return ConnectorError(
            f"connection refused by {ctx.address} (is the port right? is the server running?)"
        )
    if ctx.phase == "connect" and isinstance(exc, OSError) and exc.strerror:
        return ConnectorError(f"cannot reach {ctx.address}: {exc.strerror}")
    return None


def _starttls(exc: BaseException, ctx: _Context) -> ConnectorError | None:
    if ctx.phase != "starttls":
        return None
    if isinstance(exc, (smtplib.SMTPNotSupportedError, CapabilityError)) or "TLS not supported" in str(exc):
        return starttls_not_offered(ctx.server)
    if isinstance(exc, smtplib.SMTPResponseException):
        return ConnectorError(
            f"{ctx.address} refused STARTTLS: {_smtp_text(exc)}", permanent=exc.smtp_code >= 500
        )
    return None


def starttls_not_offered(server: ServerSettings) -> ConnectorError:
    """The server on this port does not offer STARTTLS; we never fall back to plain text."""
    return ConnectorError(
        f"{server.host}:{server.port} does not offer STARTTLS, so the connection would not be "
        "encrypted: choose security ssl (with the server's TLS port) or none",
        permanent=True,
    )


def _login(exc: BaseException, ctx: _Context) -> ConnectorError | None:
    if ctx.phase != "login":
        return None
    if isinstance(exc, smtplib.SMTPAuthenticationError):
        if 400 <= exc.smtp_code < 500:
            return ConnectorError(f"authentication failed for now: {_smtp_text(exc)}")
        return ConnectorError(f"authentication rejected: {_smtp_text(exc)}", permanent=True)
    if isinstance(exc, smtplib.SMTPNotSupportedError):
        return ConnectorError(
            f"{ctx.address} does not offer AUTH on this connection (many servers offer it only "
            "after STARTTLS): choose security starttls or ssl, or authentication none for a relay",
            permanent=True,
        )
    if isinstance(exc, smtplib.SMTPException) and "No suitable authentication method" in str(exc):
        return ConnectorError(
            f"{ctx.address} offers no login mechanism we speak (PLAIN, LOGIN or CRAM-MD5)",
            permanent=True,
        )
    if isinstance(exc, UnicodeError):
        return ConnectorError(
            f"the user name or password contains characters {ctx.address} cannot take "
            "(only ASCII can be sent at login)",
            permanent=True,
        )
    if isinstance(exc, imaplib.IMAP4.error) and not isinstance(exc, imaplib.IMAP4.abort):
        return ConnectorError(f"authentication rejected: {_server_text(exc)}", permanent=True)
    return None


def _smtp_reply(exc: BaseException, ctx: _Context) -> ConnectorError | None:
    if isinstance(exc, smtplib.SMTPResponseException):
        return ConnectorError(
            f"{ctx.address} answered {_smtp_text(exc)} during {ctx.what}",
            permanent=exc.smtp_code >= 500,
        )
    return None


def _closed(exc: BaseException, ctx: _Context) -> ConnectorError | None:
    closed = isinstance(exc, (smtplib.SMTPServerDisconnected, imaplib.IMAP4.abort, ConnectionError, EOFError))
    if closed:
        return ConnectorError(f"{ctx.address} closed the connection during {ctx.what}")
    return None


def _imap_reply(exc: BaseException, ctx: _Context) -> ConnectorError | None:
    if isinstance(exc, imaplib.IMAP4.error):  # a NO or BAD reply to a command
        return ConnectorError(f"{ctx.doing} failed: {_server_text(exc)}", permanent=True)
    return None


def _server_text(exc: BaseException) -> str:
    """The server's words from an imaplib/imapclient error, without Python's b'...' wrapping."""
    arg = exc.args[0] if exc.args else ""
    text = arg.decode("utf-8", "replace") if isinstance(arg, bytes) else str(arg)
    text = re.sub(r"""\bb(['"])(.*?)\1""", r"\2", text)
    text = re.sub(r"^\w+ failed: ", "", text)  # imapclient's "<command> failed: " prefix
    return _clip(text.strip()) or "no reason given"


def _smtp_text(exc: smtplib.SMTPResponseException) -> str:
    reply = exc.smtp_error
    text = reply.decode("utf-8", "replace") if isinstance(reply, bytes) else str(reply)
    return _clip(f"{exc.smtp_code} {' '.join(text.split())}")


def _clip(text: str) -> str:
    text = " ".join(text.split())
    return text if len(text) <= _MAX_SERVER_TEXT else text[: _MAX_SERVER_TEXT - 1] + "…"
