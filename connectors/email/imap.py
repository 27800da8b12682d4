"""IMAP sessions for the Email connector: guarded sockets, TLS from ``tls``, translated errors.

``GuardedIMAPClient`` is an ``IMAPClient`` whose connection is opened by ``connectors.net`` (so
the outbound deny-list applies and DNS is asked once) and wrapped in TLS by the context
``build_ssl_context`` makes from the connection's settings. ``open_imap`` is what the engine uses:
connect, STARTTLS when asked, log in through the auth registry, and always log out.
"""

from __future__ import annotations

import contextlib
import imaplib
import socket
from collections.abc import Callable, Iterator, Mapping, Sequence
from typing import Any

from imapclient import IMAPClient, SocketTimeout
from imapclient.imapclient import join_message_ids, seq_to_parenstr_upper
from imapclient.util import to_ints

from connectors import net
from connectors.email.auth import AUTH_METHODS
from connectors.email.config import CLOSE_TIMEOUT, EmailConfig
from connectors.email.errors import check_secrets, starttls_not_offered, translated
from connectors.email.fetched import parse_fetch
from connectors.email.tls import build_ssl_context

# imaplib reads through an 8 KB buffer: a message fetch then takes a socket read or two a small
# message, each letting go of the GIL, which the run's thread then waits to get back behind its
# sender threads. A TLS read gives at most a 16 KB record, so this buffer takes four at once.
READ_BUFFER = 64 * 1024


class _IMAP4OnSocket(imaplib.IMAP4):
    """imaplib's protocol engine on a socket we opened ourselves (guarded, TLS already done)."""

    def __init__(self, host: str, port: int, sock: socket.socket) -> None:
        self._ready_socket = sock
        super().__init__(host, port)  # reads the greeting and the CAPABILITY list

    def _create_socket(self, timeout: float | None) -> socket.socket:
        return self._ready_socket

    def open(self, host: str = "", port: int = imaplib.IMAP4_PORT, timeout: float | None = None) -> None:
        super().open(host, port, timeout)
        # Nothing is read yet. (After STARTTLS imaplib makes its own reader again, of 8 KB.)
        self.file.close()  # imaplib's reader: closing it leaves the socket open
        self.file = self.sock.makefile("rb", buffering=READ_BUFFER)


class GuardedIMAPClient(IMAPClient):
    """An ``IMAPClient`` for one Email connection's IMAP server.

    Connecting happens in the constructor (as in ``IMAPClient``) and fails with a plain-language
    ``ConnectorError``. ``addresses`` reuses a ``net.resolve`` answer; ``deadline`` caps every
    timeout and shuts the socket when the time is up.
    """

    def __init__(
        self,
        config: EmailConfig,
        *,
        addresses: Sequence[net.Address] | None = None,
        deadline: net.Deadline | None = None,
    ) -> None:
        if config.imap is None:
            raise ValueError("this Email connection has no IMAP server")
        self.config = config
        self.server = config.imap
        self.deadline = deadline
        self._addresses = addresses
        super().__init__(
            self.server.host,
            self.server.port,
            ssl=self.server.security == "ssl",
            ssl_context=build_ssl_context(config, self.server),
            timeout=SocketTimeout(config.connect_timeout, config.read_timeout),
        )
        # IMAPClient sets imaplib's debug level to 5 to route its trace to a logger. imaplib then
        # formats every response with %r whatever the log level: a megabyte-sized repr per
        # fetched message (time and memory), and LOGIN and AUTHENTICATE lines in DEBUG logs.
        self._imap.debug = 0

    def fetch(self, messages: Sequence[int], data: Sequence[str], modifiers: Sequence[str] | None = None
              ) -> dict[int, dict[bytes, Any]]:
        """``IMAPClient.fetch``, its responses read by ``fetched.parse_fetch``: the shapes a run asks
        for at every message without imapclient's tokenizer, any other by it."""
        return self.fetch_later(messages, data, modifiers)()

    def fetch_later(self, messages: Sequence[int], data: Sequence[str], modifiers: Sequence[str] | None = None
                    ) -> Callable[[], dict[int, dict[bytes, Any]]]:
        """Send a FETCH now; what it returns reads the answer (``fetch``'s), which the server sends
        meanwhile. FETCHes sent ahead are read in the order they were sent, and before any other
        command: imaplib would give that command their answers (``pieces``)."""
        if not messages:
            return dict
        args = ["FETCH", join_message_ids(messages), seq_to_parenstr_upper(data),
                seq_to_parenstr_upper(modifiers) if modifiers else None]
        if self.use_uid:
            args.insert(0, "UID")
        tag = self._imap._command(*args)

        def read() -> dict[int, dict[bytes, Any]]:
            typ, found = self._imap._command_complete("FETCH", tag)
            self._checkok("fetch", typ, found)
            typ, found = self._imap._untagged_response(typ, found, "FETCH")
            response = parse_fetch(found, self.use_uid, self.normalise_times)
            # Unsolicited responses for other messages are left out, as imapclient does.
            return {message: response[message] for message in to_ints(messages) if message in response}

        return read

    def read_timeout(self) -> float:
        """The read timeout, shortened to what is left of the deadline."""
        if self.deadline is None:
            return self.config.read_timeout
        return self.deadline.cap(self.config.read_timeout)

    @contextlib.contextmanager
    def translating(self, phase: str, secrets: Mapping[str, str] | None = None) -> Iterator[None]:
        """Run IMAP commands with a fresh read timeout; failures come out as ``ConnectorError``."""
        timeout = self.read_timeout()
        with translated(self.server, phase, timeout, secrets):
            net.set_timeout(self.socket(), timeout)
            yield

    def _create_IMAP4(self) -> imaplib.IMAP4:  # noqa: N802 - imapclient's name for this seam
        connect_timeout = self.config.connect_timeout
        with translated(self.server, "connect", connect_timeout):
            sock = net.connect(self.host, self.port, connect_timeout, self.deadline, addresses=self._addresses)
        try:
            timeout = self.read_timeout()
            sock.settimeout(timeout)  # the handshake and the greeting are reads
            if self.ssl:
                with translated(self.server, "tls", timeout):
                    sock = self.ssl_context.wrap_socket(sock, server_hostname=self.host)
                if self.deadline is not None:
                    self.deadline.watch(sock)
            with translated(self.server, "greeting", timeout):
                return _IMAP4OnSocket(self.host, self.port, sock)
        except BaseException:
            sock.close()
            raise

    def _set_read_timeout(self) -> None:
        self.socket().settimeout(self.read_timeout())

    def watch_socket(self) -> None:
        """Put the current socket (a new one after STARTTLS) under the deadline's watch."""
        if self.deadline is not None:
            self.deadline.watch(self.socket())


def connect_imap(
    config: EmailConfig,
    *,
    addresses: Sequence[net.Address] | None = None,
    deadline: net.Deadline | None = None,
) -> GuardedIMAPClient:
    """A connected (greeted, not logged in) client; ``ConnectorError`` when that fails."""
    return GuardedIMAPClient(config, addresses=addresses, deadline=deadline)


def starttls_imap(client: GuardedIMAPClient) -> None:
    """Upgrade the plain connection to TLS; refuse to go on in plain text if STARTTLS is not offered."""
    with client.translating("starttls"):
        if not client.has_capability("STARTTLS"):
            raise starttls_not_offered(client.server)
        client.starttls(client.ssl_context)
    client.watch_socket()


def login_imap(client: GuardedIMAPClient, secrets: Mapping[str, str]) -> None:
    """Log in with the connection's auth method (the only place the secrets meet the client)."""
    check_secrets(client.config, secrets)
    method = AUTH_METHODS[client.config.auth_method]
    with client.translating("login", secrets):
        method.imap_login(client, client.config.auth, secrets)


def close_imap(client: GuardedIMAPClient) -> None:
    """LOGOUT politely if the server still answers, then close the socket whatever happens."""
    out_of_time = client.deadline is not None and client.deadline.remaining() <= 0
    with contextlib.suppress(Exception):
        if not out_of_time:
            client.socket().settimeout(min(client.read_timeout(), CLOSE_TIMEOUT))
            client.logout()  # imaplib shuts the socket down after LOGOUT, answered or not
            return
    with contextlib.suppress(Exception):
        client.shutdown()


@contextlib.contextmanager
def open_imap(
    config: EmailConfig,
    secrets: Mapping[str, str],
    *,
    deadline: net.Deadline | None = None,
) -> Iterator[GuardedIMAPClient]:
    """A logged-in IMAP session for ``config``; logged out and closed when the block ends.

    Raises ``ConnectorError`` for every failure to get there. Commands inside the block should run
    under ``client.translating("what it does")`` to get the same plain-language errors.
    """
    client = connect_imap(config, deadline=deadline)
    try:
        if client.server.security == "starttls":
            starttls_imap(client)
        login_imap(client, secrets)
        yield client
    finally:
        close_imap(client)

