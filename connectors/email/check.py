"""The Test button of an Email connection: each server checked step by step, in words.

IMAP: resolve, connect (TLS and greeting), STARTTLS, login, select INBOX. SMTP: resolve, connect,
EHLO, STARTTLS, login, and QUIT without sending anything. A failed step ends that server's
checks; the other server is still checked. Each server runs under one ``Deadline`` of
2 × (connect + read) seconds, which caps every socket timeout and shuts the socket down when it
passes, so a Test never hangs however the server behaves.
"""

from __future__ import annotations

import logging
import ssl
from collections.abc import Callable, Generator, Iterator, Mapping
from typing import Any, TypeVar

from connectors import net
from connectors.base import CheckStep, ConnectorError
from connectors.email.auth import AUTH_METHODS, AuthMethod
from connectors.email.config import EmailConfig, ServerSettings
from connectors.email.errors import translated
from connectors.email.imap import (
    GuardedIMAPClient,
    close_imap,
    connect_imap,
    login_imap,
    starttls_imap,
)
from connectors.email.smtp import (
    SMTPSession,
    close_smtp,
    connect_smtp,
    ehlo_smtp,
    login_smtp,
    starttls_smtp,
)
from connectors.email.tls import describe_tls

logger = logging.getLogger(__name__)

T = TypeVar("T")


def check_email_connection(config: EmailConfig, secrets: Mapping[str, str]) -> Iterator[CheckStep]:
    """Yield one ``CheckStep`` per step, IMAP first, then SMTP; servers not configured are skipped.

    An auth method with a ``credential_step`` (OAuth: get a token) runs it first; if it fails the
    servers are still reached, but their login steps are not tried.
    """
    no_login = ""
    method = AUTH_METHODS[config.auth_method]
    if method.credential_step:
        try:
            yield from _credential(method, config, secrets)
        except _Stop:
            no_login = f"not tried: the {method.credential_step} step failed"
    if config.imap is not None:
        yield from _check_imap(config, secrets, no_login)
    if config.smtp is not None:
        yield from _check_smtp(config, secrets, no_login)


def server_budget(config: EmailConfig) -> float:
    """The most one server's checks may take, in seconds."""
    return 2 * (config.connect_timeout + config.read_timeout)


class _Stop(Exception):
    """A step failed: the rest of this server's steps are skipped."""


def _step(
    name: str, deadline: net.Deadline, action: Callable[..., tuple[T, str]], *args: Any, budget_of: str = ""
) -> Generator[CheckStep, None, T]:
    """Run ``action(*args)`` → (value, detail); yield the step's line; raise ``_Stop`` if it failed.

    ``budget_of`` names whose time the deadline is, for its messages ("this server's checks").
    """
    budget_of = budget_of or "this server's checks"
    if deadline.expired:
        yield CheckStep(name, False, f"not tried: {budget_of} used up their {deadline.seconds:g} s")
        raise _Stop
    try:
        value, detail = action(*args)
    except ConnectorError as exc:
        message = exc.message
        if deadline.expired:
            # The deadline shut the socket: whatever the library said next is an echo of that.
            message = f"gave up: {budget_of} took longer than {deadline.seconds:g} s"
        yield CheckStep(name, False, message)
        raise _Stop from None
    except Exception as exc:  # noqa: BLE001 - a bug must show as a failed line, not a broken page
        logger.exception("Email check step %r crashed", name)
        yield CheckStep(name, False, f"unexpected {type(exc).__name__}; the error is logged")
        raise _Stop from None
    yield CheckStep(name, True, detail)
    return value


def _resolve(server: ServerSettings, config: EmailConfig, deadline: net.Deadline) -> tuple[list[net.Address], str]:
    timeout = deadline.cap(config.connect_timeout)
    with translated(server, "resolve", timeout):
        addresses = net.resolve(server.host, server.port, timeout)
    return addresses, f"{server.host} resolves to {', '.join(a.ip for a in addresses)}"


def _credential(method: AuthMethod, config: EmailConfig, secrets: Mapping[str, str]) -> Iterator[CheckStep]:
    """The auth method's own step (an OAuth token), bounded like a server's checks; ``_Stop`` when it fails."""
    with net.Deadline(server_budget(config)) as deadline:
        yield from _step(method.credential_step, deadline, _obtain, method, config, secrets, deadline,
                         budget_of=f"the {method.credential_step} step")


def _obtain(method: AuthMethod, config: EmailConfig, secrets: Mapping[str, str],
            deadline: net.Deadline) -> tuple[None, str]:
    return None, method.obtain_credential(config, secrets, deadline)


def _not_tried(reason: str) -> tuple[None, str]:
    raise ConnectorError(reason)


# IMAP -------------------------------------------------------------------------------------------


def _check_imap(config: EmailConfig, secrets: Mapping[str, str], no_login: str = "") -> Iterator[CheckStep]:
    server = config.imap
    assert server is not None
    client: GuardedIMAPClient | None = None
    with net.Deadline(server_budget(config)) as deadline:
        try:
            addresses = yield from _step("IMAP resolve", deadline, _resolve, server, config, deadline)
            client = yield from _step("IMAP connect", deadline, _imap_connect, config, addresses, deadline)
            if server.security == "starttls":
                yield from _step("IMAP STARTTLS", deadline, _imap_starttls, client)
            if no_login:
                yield from _step("IMAP login", deadline, _not_tried, no_login)
            yield from _step("IMAP login", deadline, _imap_login, client, secrets)
            yield from _step("IMAP select INBOX", deadline, _imap_inbox, client)
        except _Stop:
            pass
        finally:
            if client is not None:
                close_imap(client)


def _imap_connect(
    config: EmailConfig, addresses: list[net.Address], deadline: net.Deadline
) -> tuple[GuardedIMAPClient, str]:
    client = connect_imap(config, addresses=addresses, deadline=deadline)
    sock = client.socket()
    peer = _peer(sock)
    tls = describe_tls(sock, client.server, config)
    if client.server.security == "starttls":
        tls = "plain text until STARTTLS"
    # No greeting banner: it would tell any user which software answers on an address they chose.
    return client, f"connected to {peer} over {tls}"


def _imap_starttls(client: GuardedIMAPClient) -> tuple[None, str]:
    starttls_imap(client)
    return None, f"upgraded to {describe_tls(client.socket(), client.server, client.config)}"


def _imap_login(client: GuardedIMAPClient, secrets: Mapping[str, str]) -> tuple[None, str]:
    login_imap(client, secrets)
    return None, f"logged in{_as_whom(client.config)}"


def _imap_inbox(client: GuardedIMAPClient) -> tuple[None, str]:
    with client.translating("select INBOX"):
        selected = client.select_folder("INBOX", readonly=True)
    with client.translating("search INBOX for unseen messages"):
        unseen = len(client.search(["UNSEEN"]))
    exists = int(selected.get(b"EXISTS", 0))
    return None, f"{_count(exists, 'message')}, {unseen} unseen"


# SMTP -------------------------------------------------------------------------------------------


def _check_smtp(config: EmailConfig, secrets: Mapping[str, str], no_login: str = "") -> Iterator[CheckStep]:
    server = config.smtp
    assert server is not None
    smtp: SMTPSession | None = None
    with net.Deadline(server_budget(config)) as deadline:
        try:
            addresses = yield from _step("SMTP resolve", deadline, _resolve, server, config, deadline)
            smtp = yield from _step("SMTP connect", deadline, _smtp_connect, config, addresses, deadline)
            yield from _step("SMTP EHLO", deadline, _smtp_ehlo, smtp)
            if server.security == "starttls":
                yield from _step("SMTP STARTTLS", deadline, _smtp_starttls, smtp)
            if no_login:
                yield from _step("SMTP login", deadline, _not_tried, no_login)
            yield from _step("SMTP login", deadline, _smtp_login, smtp, secrets)
        except _Stop:
            pass
        finally:
            if smtp is not None:
                close_smtp(smtp)


def _smtp_connect(
    config: EmailConfig, addresses: list[net.Address], deadline: net.Deadline
) -> tuple[SMTPSession, str]:
    smtp = connect_smtp(config, addresses=addresses, deadline=deadline)
    tls = describe_tls(smtp.sock, smtp.server, config) if smtp.sock is not None else "?"
    if smtp.server.security == "starttls":
        tls = "plain text until STARTTLS"
    return smtp, f"connected to {_peer(smtp.sock)} over {tls}"


def _smtp_ehlo(smtp: SMTPSession) -> tuple[None, str]:
    ehlo_smtp(smtp)
    return None, f"as {smtp.local_hostname}: {summarize_extensions(smtp)}"


def _smtp_starttls(smtp: SMTPSession) -> tuple[None, str]:
    starttls_smtp(smtp)
    tls = describe_tls(smtp.sock, smtp.server, smtp.config) if smtp.sock is not None else "?"
    return None, f"upgraded to {tls}; now offers {summarize_extensions(smtp)}"


def _smtp_login(smtp: SMTPSession, secrets: Mapping[str, str]) -> tuple[None, str]:
    if smtp.config.auth_method == "none":
        return None, "no authentication configured (relay without login)"
    login_smtp(smtp, secrets)
    return None, f"logged in{_as_whom(smtp.config)}; no mail sent"


def summarize_extensions(smtp: SMTPSession) -> str:
    """The EHLO answer in one line: "SIZE 35 MB, 8BITMIME, STARTTLS, AUTH PLAIN LOGIN, …"."""
    if not smtp.does_esmtp:
        return "no ESMTP extensions (the server only answered HELO)"
    parts = []
    for name, value in smtp.esmtp_features.items():
        name = name.upper()
        if name == "SIZE" and value.strip().isdigit() and int(value) > 0:
            parts.append(f"SIZE {int(value) / 1_048_576:.0f} MB")
        elif name == "AUTH":
            parts.append(f"AUTH {' '.join(value.split()) or '(no mechanisms)'}")
        else:
            parts.append(name)
    if "AUTH" not in (p.split()[0] for p in parts):
        encrypted = isinstance(smtp.sock, ssl.SSLSocket)
        parts.append("no AUTH before STARTTLS" if smtp.has_extn("starttls") and not encrypted else "no AUTH")
    return ", ".join(parts) or "no extensions"


# Shared bits ------------------------------------------------------------------------------------


def _peer(sock: Any) -> str:
    try:
        host, port = sock.getpeername()[:2]
    except (OSError, AttributeError):
        return "?"
    return f"[{host}]:{port}" if ":" in host else f"{host}:{port}"


def _as_whom(config: EmailConfig) -> str:
    who = config.auth.get("username") or config.auth.get("mailbox")
    return f" as {who}" if who else ""


def _count(n: int, noun: str) -> str:
    return f"{n} {noun}" if n == 1 else f"{n} {noun}s"
