"""SMTP sessions for the Email connector: guarded sockets, our TLS rules, translated errors.

``GuardedSMTP`` / ``GuardedSMTP_SSL`` are smtplib's classes with one seam replaced: the socket
comes from ``connectors.net`` (deny-list, one DNS answer) and TLS from ``tls.build_ssl_context``.
``open_smtp`` is what the engine uses: greeting, EHLO, STARTTLS when asked, AUTH through the auth
registry, and always QUIT.
"""

from __future__ import annotations

import contextlib
import dataclasses
import functools
import ipaddress
import smtplib
import socket
from collections.abc import Iterable, Iterator, Mapping, Sequence

from connectors import net
from connectors.base import OutcomeUnknown, is_stop_exception
from connectors.conf import setting
from connectors.email.auth import AUTH_METHODS
from connectors.email.config import CLOSE_TIMEOUT, EmailConfig, ServerSettings
from connectors.email.errors import check_secrets, starttls_not_offered, translate, translated
from connectors.email.tls import build_ssl_context

# RFC 5321 4.5.3.2.6: a server may take 10 minutes to answer the end of the data.
DATA_REPLY_TIMEOUT = 600.0


class _Guarded:
    """What both SMTP classes share; each defines ``_get_socket``, smtplib's seam."""

    config: EmailConfig
    server: ServerSettings
    deadline: net.Deadline | None
    greeting: str
    sock: socket.socket | None

    def _init_guard(
        self,
        config: EmailConfig,
        addresses: Sequence[net.Address] | None,
        deadline: net.Deadline | None,
    ) -> None:
        if config.smtp is None:
            raise ValueError("this Email connection has no SMTP server")
        self.config = config
        self.server = config.smtp
        self.deadline = deadline
        self.greeting = ""
        self._addresses = addresses

    def read_timeout(self) -> float:
        """The read timeout, shortened to what is left of the deadline."""
        if self.deadline is None:
            return self.config.read_timeout
        return self.deadline.cap(self.config.read_timeout)

    @contextlib.contextmanager
    def translating(self, phase: str, secrets: Mapping[str, str] | None = None) -> Iterator[None]:
        """Run SMTP commands with a fresh read timeout; failures come out as ``ConnectorError``."""
        timeout = self.read_timeout()
        with translated(self.server, phase, timeout, secrets):
            if self.sock is not None:
                net.set_timeout(self.sock, timeout)
            yield

    @contextlib.contextmanager
    def one_write(self) -> Iterator[None]:
        """The commands ``putcmd`` formats inside the block go out together when it ends (PIPELINING)."""
        held: list[str] = []
        self.send = held.append  # smtplib's putcmd hands each command line to send
        try:
            yield
        finally:
            del self.send
        self.send("".join(held))

    def watch_socket(self) -> None:
        """Put the current socket (a new one after STARTTLS) under the deadline's watch."""
        if self.deadline is not None and self.sock is not None:
            self.deadline.watch(self.sock)

    def _guarded_socket(self, host: str, port: int) -> socket.socket:
        timeout = self.config.connect_timeout
        with translated(self.server, "connect", timeout):
            sock = net.connect(host, port, timeout, self.deadline, addresses=self._addresses)
        sock.settimeout(self.read_timeout())  # from here on everything is a read
        return sock


class GuardedSMTP(_Guarded, smtplib.SMTP):
    """A plain-text SMTP session (security ``none``, or ``starttls`` before the upgrade)."""

    def __init__(
        self,
        config: EmailConfig,
        *,
        addresses: Sequence[net.Address] | None = None,
        deadline: net.Deadline | None = None,
    ) -> None:
        self._init_guard(config, addresses, deadline)
        self.ssl_context = build_ssl_context(config, self.server)
        # No host yet: connecting is a separate, translated step. A local_hostname is given so
        # smtplib does not call socket.getfqdn(), a DNS lookup with no timeout.
        super().__init__(local_hostname=config.ehlo_name or "localhost", timeout=config.connect_timeout)
        self._host = self.server.host  # smtplib's STARTTLS checks the certificate against _host

    def _get_socket(self, host: str, port: int, timeout: float) -> socket.socket:
        return self._guarded_socket(host, port)


class GuardedSMTP_SSL(_Guarded, smtplib.SMTP_SSL):  # noqa: N801 - named after smtplib.SMTP_SSL
    """An SMTP session over implicit TLS (security ``ssl``, port 465)."""

    def __init__(
        self,
        config: EmailConfig,
        *,
        addresses: Sequence[net.Address] | None = None,
        deadline: net.Deadline | None = None,
    ) -> None:
        self._init_guard(config, addresses, deadline)
        self.ssl_context = build_ssl_context(config, self.server)
        super().__init__(
            local_hostname=config.ehlo_name or "localhost", timeout=config.connect_timeout, context=self.ssl_context
        )
        self._host = self.server.host

    def _get_socket(self, host: str, port: int, timeout: float) -> socket.socket:
        sock = self._guarded_socket(host, port)
        try:
            with translated(self.server, "tls", sock.gettimeout() or self.config.read_timeout):
                tls = self.context.wrap_socket(sock, server_hostname=host)
        except BaseException:
            sock.close()
            raise
        if self.deadline is not None:
            self.deadline.watch(tls)
        return tls


SMTPSession = GuardedSMTP | GuardedSMTP_SSL


def connect_smtp(
    config: EmailConfig,
    *,
    addresses: Sequence[net.Address] | None = None,
    deadline: net.Deadline | None = None,
) -> SMTPSession:
    """A connected, greeted session (no EHLO yet); ``ConnectorError`` when that fails."""
    cls = GuardedSMTP_SSL if config.smtp is not None and config.smtp.security == "ssl" else GuardedSMTP
    smtp = cls(config, addresses=addresses, deadline=deadline)
    try:
        with translated(smtp.server, "greeting", smtp.read_timeout()):
            code, message = smtp.connect(smtp.server.host, smtp.server.port)
            if code != 220:
                raise smtplib.SMTPConnectError(code, message)
    except BaseException:
        smtp.close()
        raise
    smtp.greeting = f"{code} {message.decode('utf-8', 'replace')}"
    if not config.ehlo_name:
        smtp.local_hostname = _address_literal(smtp.sock)
    return smtp


def ehlo_smtp(smtp: SMTPSession) -> None:
    """EHLO (HELO for an old server), which fills ``smtp.esmtp_features``."""
    with smtp.translating("EHLO"):
        code, reply = smtp.ehlo()
        if not 200 <= code < 300:
            code, reply = smtp.helo()
            if not 200 <= code < 300:
                raise smtplib.SMTPHeloError(code, reply)


def starttls_smtp(smtp: SMTPSession) -> None:
    """Upgrade to TLS and EHLO again; refuse to go on in plain text if STARTTLS is not offered."""
    with smtp.translating("starttls"):
        if not smtp.has_extn("starttls"):
            raise starttls_not_offered(smtp.server)
        smtp.starttls(context=smtp.ssl_context)
    smtp.watch_socket()
    ehlo_smtp(smtp)  # RFC 3207: what the server said before TLS no longer counts


def login_smtp(smtp: SMTPSession, secrets: Mapping[str, str]) -> None:
    """AUTH with the connection's auth method (a no-op for a relay with method ``none``)."""
    check_secrets(smtp.config, secrets)
    method = AUTH_METHODS[smtp.config.auth_method]
    with smtp.translating("login", secrets):
        method.smtp_login(smtp, smtp.config.auth, secrets)


Reply = tuple[int, bytes]

# smtplib's quoting parses the address again with email.utils (10-25 us each, on the sender's
# thread, under the GIL): a run sends from one sender to the same few recipients.
_quoted = functools.lru_cache(maxsize=1024)(smtplib.quoteaddr)


@dataclasses.dataclass(frozen=True)
class EnvelopeReplies:
    """What the server answered to MAIL FROM, to each RCPT TO it was sent, and to DATA when DATA
    went with them (PIPELINING; None otherwise)."""

    mail: Reply
    rcpt: list[Reply]
    data: Reply | None = None


def send_envelope(smtp: SMTPSession, sender: str, options: Sequence[str], recipients: Sequence[str]) -> EnvelopeReplies:
    """MAIL FROM, then RCPT TO for each recipient.

    Where the server offers PIPELINING (RFC 2920), as most do, MAIL, the RCPTs and DATA go in one
    write and their replies are read in order: a message takes two round trips, not four. Otherwise
    one command at a time, and no RCPT after a refused MAIL.
    """
    optionlist = "".join(f" {option}" for option in options)
    commands = [("mail", f"FROM:{_quoted(sender)}{optionlist}")]
    commands += [("rcpt", f"TO:{_quoted(recipient)}") for recipient in recipients]
    pipelined = smtp.has_extn("pipelining")
    if pipelined:
        commands.append(("data", ""))
        with smtp.one_write():
            for command in commands:
                smtp.putcmd(*command)
    replies: list[Reply] = []
    for command in commands:
        replies.append(smtp.getreply() if pipelined else smtp.docmd(*command))
        if replies[-1][0] == 421:
            # The server is closing the connection: no other reply comes, and its 421 answers the
            # rest (the session is then given up as a full server's).
            replies += [replies[-1]] * (len(commands) - len(replies))
            break
        if not pipelined and replies[0][0] != 250:
            break  # no RCPT after a refused MAIL
    if pipelined:
        return EnvelopeReplies(replies[0], replies[1:-1], replies[-1])
    return EnvelopeReplies(replies[0], replies[1:])


def end_unused_data(smtp: SMTPSession, envelope: EnvelopeReplies) -> None:
    """End a pipelined DATA that the server took although it took no recipient: it waits for a
    message, which, empty, goes to nobody."""
    if envelope.data is not None and envelope.data[0] == 354:
        smtp.send(b".\r\n")
        smtp.getreply()


def send_data(smtp: SMTPSession, chunks: Iterable[bytes], answered: Reply | None = None) -> Reply:
    """DATA with the message streamed from ``chunks``; the server's final reply. ``answered``: the
    reply to a DATA already sent (``send_envelope`` with PIPELINING).

    smtplib's ``data`` wants the whole message as one bytes object and makes two more copies of it
    (dot-stuffed, terminated); here each chunk is dot-stuffed and sent as it comes. Raises
    ``SMTPDataError`` when the server does not answer DATA with 354, as smtplib does.
    """
    code, reply = answered or smtp.docmd("data")
    if code != 354:
        raise smtplib.SMTPDataError(code, reply)
    at_line_start = True
    held = b""  # the last chunk goes out together with the end of the data: one write, not two
    for chunk in chunks:
        if not chunk:
            continue
        if held:
            smtp.send(held)
        # RFC 5321 4.5.2: a line that starts with "." gets one more. Looking for a dot first is some 50
        # times quicker than the search for a line break and a dot, and base64 text has no dot at all.
        held = chunk.replace(b"\n.", b"\n..") if b"." in chunk else chunk
        if at_line_start and chunk[:1] == b".":
            held = b"." + held
        at_line_start = chunk[-1:] == b"\n"
    # From the final dot on, the server may have stored the message: a lost reply is no failure to
    # retry but an unknown outcome, and the reply gets the time RFC 5321 gives it, not a read timeout.
    wait = data_reply_timeout(smtp)
    try:
        smtp.send(held + (b".\r\n" if at_line_start else b"\r\n.\r\n"))
        if smtp.sock is not None:
            net.set_timeout(smtp.sock, wait)
        return smtp.getreply()
    except Exception as exc:  # noqa: BLE001 - whatever broke, the message may be delivered
        if is_stop_exception(exc):
            raise
        error = translate(exc, server=smtp.server, phase="DATA", timeout=wait)
        raise OutcomeUnknown(f"{error.message}; the server may have accepted the message") from None


def data_reply_timeout(smtp: SMTPSession) -> float:
    """How long to wait for the reply to the end of the data: RFC 5321 4.5.3.2.6's 10 minutes by
    default (``MAILWRIGHT_SMTP_DATA_REPLY_TIMEOUT``), never past the deadline."""
    seconds = float(setting("MAILWRIGHT_SMTP_DATA_REPLY_TIMEOUT", DATA_REPLY_TIMEOUT))
    return smtp.deadline.cap(seconds) if smtp.deadline is not None else seconds


def close_smtp(smtp: SMTPSession) -> None:
    """QUIT politely if the server still answers, then close the socket whatever happens."""
    out_of_time = smtp.deadline is not None and smtp.deadline.remaining() <= 0
    with contextlib.suppress(Exception):
        if not out_of_time and smtp.sock is not None:
            smtp.sock.settimeout(min(smtp.read_timeout(), CLOSE_TIMEOUT))
            smtp.quit()
    smtp.close()


@contextlib.contextmanager
def open_smtp(
    config: EmailConfig,
    secrets: Mapping[str, str],
    *,
    deadline: net.Deadline | None = None,
) -> Iterator[SMTPSession]:
    """An SMTP session ready for MAIL FROM (EHLO, STARTTLS when asked, AUTH); QUIT when the block ends.

    Raises ``ConnectorError`` for every failure to get there. Commands inside the block should run
    under ``smtp.translating("what it does")`` to get the same plain-language errors.
    """
    smtp = connect_smtp(config, deadline=deadline)
    try:
        ehlo_smtp(smtp)
        if smtp.server.security == "starttls":
            starttls_smtp(smtp)
        login_smtp(smtp, secrets)
        yield smtp
    finally:
        close_smtp(smtp)


def _address_literal(sock: socket.socket | None) -> str:
    """Our own address as an RFC 5321 address literal, for EHLO when no name is configured.

    Better than smtplib's default, ``socket.getfqdn()``: that is a reverse DNS lookup nobody can
    time out, and on a container it rarely names anything the server can check.
    """
    if sock is None:
        return "[127.0.0.1]"
    address = ipaddress.ip_address(sock.getsockname()[0].split("%", 1)[0])
    if isinstance(address, ipaddress.IPv6Address):
        if address.ipv4_mapped is not None:
            return f"[{address.ipv4_mapped}]"
        return f"[IPv6:{address}]"
    return f"[{address}]"
