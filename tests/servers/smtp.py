"""In-process SMTP servers (aiosmtpd) for tests, with recorded mail and injectable faults.

``SMTPServer(mode=...)`` listens on 127.0.0.1 on a free port, in a thread of its own:

* ``plain``    — no TLS at all (like port 25 without STARTTLS);
* ``starttls`` — cleartext that offers STARTTLS (like 587), optionally requiring it;
* ``ssl``      — implicit TLS from the first byte (like 465).

With ``auth={"user": "password"}`` it offers AUTH PLAIN and LOGIN and, like a real submission
server, refuses MAIL before a successful AUTH. Without ``auth`` it does not advertise AUTH.
With ``xoauth2=check`` it offers AUTH XOAUTH2 too, accepting a login when ``check(user, token)``
is true (tests.servers.idp's ``active_user``); a refused token gets Microsoft's answer: a JSON
error challenge, then 535.

Faults are decided **at the end of DATA** (after the client has sent the whole message), which
is where real servers report most transient errors (greylisting, queue full, content filters):
``smtplib`` then raises ``SMTPDataError`` for a reply and ``SMTPServerDisconnected`` for a drop.
Recipient refusals, the other common failure, can be armed separately with
:meth:`SMTPServer.reject_recipient`. When several faults are armed for one message the first of
these wins: ``drop_next``, ``fail_next``, ``fail_when``, ``fail_always``.
"""

from __future__ import annotations

import asyncio
import base64
import binascii
import email
import email.policy
import logging
import threading
import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from email.message import EmailMessage
from typing import Any, Literal

from aiosmtpd.controller import Controller
from aiosmtpd.smtp import MISSING, SMTP, AuthResult, Envelope, LoginPassword, Session

from .certs import TestCerts
from .dovecot import free_port

Mode = Literal["plain", "starttls", "ssl"]
MODES: tuple[Mode, ...] = ("plain", "starttls", "ssl")
FaultReply = tuple[int, str]
TokenCheck = Callable[[str, str], bool]


class _DropLoginDataNoise(logging.Filter):
    # aiosmtpd 1.4 logs a deprecation warning on every successful AUTH (its own use of
    # Session.login_data); it is not ours to fix and drowns real log lines in test output.
    def filter(self, record: logging.LogRecord) -> bool:
        return "login_data is deprecated" not in record.getMessage()


logging.getLogger("mail.log").addFilter(_DropLoginDataNoise())


@dataclass(frozen=True)
class ReceivedMessage:
    """One message as the server saw it at the end of DATA."""

    mail_from: str
    rcpt_tos: tuple[str, ...]
    raw: bytes
    message: EmailMessage
    ehlo_name: str | None
    auth_user: str | None
    tls: bool
    mail_options: tuple[str, ...] = ()

    @property
    def subject(self) -> str | None:
        return self.message["Subject"]


@dataclass(frozen=True)
class Attempt:
    """Every message that reached the end of DATA, with what the server did about it."""

    message: ReceivedMessage
    outcome: Literal["accepted", "rejected", "dropped"]
    reply: str  # the SMTP reply line sent ("" when dropped)


@dataclass
class _Faults:
    drop_next: int = 0
    fail_next: int = 0
    fail_next_reply: FaultReply = (451, "")
    fail_when: Callable[[ReceivedMessage], FaultReply | None] | None = None
    fail_always: FaultReply | None = None
    rejected_rcpts: dict[str, FaultReply] = field(default_factory=dict)
    reply_delay: float = 0.0  # seconds between storing a message and answering its final dot


def token_of_xoauth2(blob: bytes) -> tuple[str, str]:
    """(user, token) from a decoded SASL XOAUTH2 client response; ("", "") when malformed."""
    fields = dict(part.split("=", 1) for part in blob.decode("utf-8", "replace").split("\x01") if "=" in part)
    auth = fields.get("auth", "")
    return fields.get("user", ""), auth[len("Bearer "):] if auth.startswith("Bearer ") else ""


def _reply_line(code: int, text: str) -> str:
    if not 400 <= code <= 599:
        raise ValueError(f"a fault needs a 4xx or 5xx code, got {code}")
    return f"{code} {text}".rstrip()


class _Handler:
    """aiosmtpd handler; all state lives on the owning SMTPServer, under its lock."""

    def __init__(self, owner: SMTPServer) -> None:
        self.owner = owner

    async def handle_EHLO(
        self, server: SMTP, session: Session, envelope: Envelope, hostname: str, responses: list[str]
    ) -> list[str]:
        # With a handle_EHLO hook aiosmtpd leaves this to us; without it MAIL gets "503 HELO first".
        session.host_name = hostname
        self.owner._record_helo(hostname)
        if self.owner.auth is None and self.owner.xoauth2 is None:
            # aiosmtpd always advertises AUTH; a relay without auth should not.
            responses = [r for r in responses if not r[4:].startswith("AUTH")]
        if self.owner.pipelining:
            # aiosmtpd reads one command line at a time from its buffer, so it serves a pipelined
            # group as it comes; it only never says that it does.
            responses = [*responses[:-1], "250-PIPELINING", responses[-1]]
        return responses

    async def handle_HELO(self, server: SMTP, session: Session, envelope: Envelope, hostname: str) -> str:
        session.host_name = hostname
        self.owner._record_helo(hostname)
        return f"250 {server.hostname}"

    async def handle_MAIL(
        self,
        server: SMTP,
        session: Session,
        envelope: Envelope,
        address: str,
        mail_options: list[str],
    ) -> str:
        # Our own "AUTH required" check instead of aiosmtpd's auth_required: that one warns
        # (UserWarning, an error under -W error) whenever AUTH is allowed without STARTTLS,
        # which is exactly the implicit-TLS and the plain+AUTH variants.
        if b"\nDATA" in bytes(server._reader._buffer).upper():  # type: ignore[attr-defined]
            with self.owner._lock:  # RCPT and DATA came in the same write as MAIL
                self.owner.pipelined_envelopes += 1
        if self.owner.auth_required and not session.authenticated:
            return "530 5.7.0 Authentication required"
        envelope.mail_from = address
        envelope.mail_options.extend(mail_options)
        return "250 OK"

    async def handle_RCPT(
        self,
        server: SMTP,
        session: Session,
        envelope: Envelope,
        address: str,
        rcpt_options: list[str],
    ) -> str:
        reply = self.owner._rcpt_fault(address)
        if reply is not None:
            line = _reply_line(*reply)
            if reply[0] == 421:  # RFC 5321: the server is closing the connection, as it says
                await server.push(line)
                assert server.transport is not None
                server.transport.close()
                await asyncio.sleep(3600)  # connection_lost() cancels this handler task
            return line
        envelope.rcpt_tos.append(address)
        envelope.rcpt_options.extend(rcpt_options)
        return "250 OK"

    async def handle_DATA(self, server: SMTP, session: Session, envelope: Envelope) -> str:
        raw = envelope.original_content or b""
        auth_data = session.auth_data
        record = ReceivedMessage(
            mail_from=envelope.mail_from or "",
            rcpt_tos=tuple(envelope.rcpt_tos),
            raw=raw,
            message=email.message_from_bytes(raw, policy=email.policy.default),  # type: ignore[arg-type]
            ehlo_name=session.host_name,
            auth_user=str(auth_data) if session.authenticated and auth_data is not None else None,
            tls=self.owner.mode == "ssl" or session.ssl is not None,
            mail_options=tuple(envelope.mail_options),
        )
        decision = self.owner._decide(record)
        if decision == "drop":
            assert server.transport is not None
            server.transport.abort()
            # connection_lost() cancels this handler task; never reply.
            await asyncio.sleep(3600)
        delay = self.owner._faults.reply_delay
        if delay and decision.startswith("250"):
            with self.owner._lock:  # how many sessions wait for their reply at once: parallel clients
                self.owner._replying += 1
                self.owner.most_replying_at_once = max(self.owner.most_replying_at_once, self.owner._replying)
            try:
                await asyncio.sleep(delay)  # the message is stored already: a slow server, not a lost one
            finally:
                with self.owner._lock:
                    self.owner._replying -= 1
        return decision

    async def auth_XOAUTH2(self, server: SMTP, args: list[str]) -> AuthResult:  # noqa: N802 - aiosmtpd's hook name
        """SASL XOAUTH2: the client's response (initial or after an empty 334) holds user and bearer token."""
        if len(args) > 1:
            try:
                blob: bytes = base64.b64decode(args[1], validate=True)
            except binascii.Error:
                return AuthResult(success=False, handled=False, message="501 5.5.2 Can't decode base64")
        else:
            answer = await server.challenge_auth("")
            if answer is MISSING:
                return AuthResult(success=False, handled=True)
            blob = answer  # type: ignore[assignment]
        user, token = token_of_xoauth2(blob)
        check = self.owner.xoauth2
        if check is not None and check(user, token):
            return AuthResult(success=True, auth_data=user)
        # As Microsoft and Google do: the reason as a JSON challenge, the client answers with an empty line.
        reason = '{"status":"401","schemes":"bearer","scope":"https://outlook.office365.com/.default"}'
        if await server.challenge_auth(reason) is MISSING:
            return AuthResult(success=False, handled=True)
        return AuthResult(success=False, handled=False, message="535 5.7.3 Authentication unsuccessful")

    def authenticate(
        self, server: SMTP, session: Session, envelope: Envelope, mechanism: str, auth_data: Any
    ) -> AuthResult:
        users = self.owner.auth or {}
        if isinstance(auth_data, LoginPassword):
            login = auth_data.login.decode("utf-8", "replace")
            password = auth_data.password.decode("utf-8", "replace")
            if login in users and users[login] == password:
                return AuthResult(success=True, auth_data=login)
        return AuthResult(success=False, handled=False)


class SMTPServer:
    """An aiosmtpd server on 127.0.0.1 that records mail and fails on demand."""

    host = "127.0.0.1"

    def __init__(
        self,
        mode: Mode = "plain",
        auth: Mapping[str, str] | None = None,
        *,
        certs: TestCerts | None = None,
        wrong_host_cert: bool = False,
        require_starttls: bool = False,
        auth_require_tls: bool = True,
        auth_required: bool | None = None,
        server_name: str = "smtp.mailwright.test",
        data_size_limit: int | None = 33554432,
        port: int | None = None,
        xoauth2: TokenCheck | None = None,
        pipelining: bool = False,
    ) -> None:
        """
        :param certs: TLS material (needed for ``starttls`` and ``ssl``; see tests.servers.certs).
        :param wrong_host_cert: present the ``wrong.example`` certificate (name mismatch tests).
        :param require_starttls: ``starttls`` mode only: refuse everything but EHLO/STARTTLS/QUIT
            before TLS.
        :param auth_require_tls: only offer/accept AUTH after STARTTLS. Pass False to allow AUTH
            on a cleartext connection. Ignored in ``ssl`` mode, which is always TLS.
        :param auth_required: refuse MAIL before AUTH; defaults to "when ``auth`` is given".
        :param server_name: the name in the greeting and EHLO reply (a fixed one: the default,
            socket.getfqdn(), can stall on DNS in a sandbox).
        :param xoauth2: offer AUTH XOAUTH2, accepting a (user, token) this returns True for.
        :param pipelining: advertise PIPELINING (RFC 2920), as Postfix and most providers do;
            ``pipelined_envelopes`` counts the MAIL commands that came with their RCPTs and DATA.
        """
        if mode not in MODES:
            raise ValueError(f"mode must be one of {MODES}, not {mode!r}")
        if mode != "plain" and certs is None:
            raise ValueError(f"mode {mode!r} needs certs (tests.servers.certs.generate_test_certs)")
        if require_starttls and mode != "starttls":
            raise ValueError("require_starttls only makes sense in starttls mode")
        self.mode: Mode = mode
        self.auth: dict[str, str] | None = dict(auth) if auth is not None else None
        self.certs = certs
        self.wrong_host_cert = wrong_host_cert
        self.require_starttls = require_starttls
        # aiosmtpd only counts STARTTLS as TLS; implicit TLS would otherwise never offer AUTH.
        self.auth_require_tls = auth_require_tls and mode == "starttls"
        self.xoauth2 = xoauth2
        self.pipelining = pipelining
        self.pipelined_envelopes = 0
        self.auth_required = (auth is not None or xoauth2 is not None) if auth_required is None else auth_required
        self.server_name = server_name
        self.data_size_limit = data_size_limit
        self.port = port or free_port(self.host)  # kept across stop()/start()
        self._lock = threading.Condition()
        self._messages: list[ReceivedMessage] = []
        self._attempts: list[Attempt] = []
        self._ehlo_names: list[str] = []
        self._faults = _Faults()
        self._replying = 0
        self.most_replying_at_once = 0  # with delay_replies: sessions that waited for their reply together
        self._controller: Controller | None = None

    def __repr__(self) -> str:
        return f"<SMTPServer {self.mode} {self.host}:{self.port} auth={self.auth is not None}>"

    # ------------------------------------------------------------------ lifecycle

    def start(self) -> SMTPServer:
        if self._controller is not None:
            return self
        kwargs: dict[str, Any] = {}
        ssl_context = None
        if self.mode != "plain":
            assert self.certs is not None
            context = self.certs.server_context(wrong_host=self.wrong_host_cert)
            if self.mode == "ssl":
                ssl_context = context
            else:
                kwargs["tls_context"] = context
                kwargs["require_starttls"] = self.require_starttls
        handler = _Handler(self)
        # A Controller owns an event loop that it closes on stop(), so every start() needs a
        # fresh one.
        controller = Controller(
            handler,
            hostname=self.host,
            port=self.port,
            ssl_context=ssl_context,
            server_hostname=self.server_name,
            ident="Mailwright test SMTP",
            authenticator=handler.authenticate,
            auth_require_tls=self.auth_require_tls,
            auth_required=False,  # enforced in _Handler.handle_MAIL
            data_size_limit=self.data_size_limit,
            auth_exclude_mechanism=self._excluded_mechanisms(),
            **kwargs,
        )
        controller.start()
        self._controller = controller
        return self

    def _excluded_mechanisms(self) -> list[str]:
        excluded = [] if self.xoauth2 is not None else ["XOAUTH2"]
        if self.auth is None and self.xoauth2 is not None:
            excluded += ["PLAIN", "LOGIN"]  # an OAuth-only server, like Microsoft 365 with basic auth off
        return excluded

    def stop(self) -> None:
        controller, self._controller = self._controller, None
        if controller is not None:
            controller.stop()

    @property
    def running(self) -> bool:
        return self._controller is not None

    def __enter__(self) -> SMTPServer:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.stop()

    # ------------------------------------------------------------------ what was received

    @property
    def messages(self) -> list[ReceivedMessage]:
        """Accepted messages, oldest first (a snapshot copy)."""
        with self._lock:
            return list(self._messages)

    @property
    def attempts(self) -> list[Attempt]:
        """Every message that reached the end of DATA: accepted, rejected or dropped."""
        with self._lock:
            return list(self._attempts)

    @property
    def ehlo_names(self) -> list[str]:
        """The names clients gave in EHLO/HELO, in order (one per greeting)."""
        with self._lock:
            return list(self._ehlo_names)

    def wait_for_messages(self, count: int, timeout: float = 5.0) -> list[ReceivedMessage]:
        """Block until at least *count* messages were accepted (for code that sends in the
        background); raises TimeoutError with what did arrive."""
        deadline = time.monotonic() + timeout
        with self._lock:
            while len(self._messages) < count:
                remaining = deadline - time.monotonic()
                if remaining <= 0:
                    raise TimeoutError(f"expected {count} message(s) within {timeout}s, got {len(self._messages)}")
                self._lock.wait(remaining)
            return list(self._messages)

    def clear(self) -> None:
        """Forget received messages, attempts and EHLO names (faults stay armed)."""
        with self._lock:
            self._messages.clear()
            self._attempts.clear()
            self._ehlo_names.clear()

    # ------------------------------------------------------------------ faults

    def fail_next(self, n: int = 1, code: int = 451, text: str = "4.3.0 Try again later") -> None:
        """Reply *code* *text* at the end of DATA for the next *n* messages."""
        reply = (code, text)
        _reply_line(*reply)
        with self._lock:
            self._faults.fail_next = n
            self._faults.fail_next_reply = reply

    def fail_always(self, code: int = 554, text: str = "5.7.1 Message rejected") -> None:
        """Reply *code* *text* at the end of DATA to every message until clear_faults()."""
        _reply_line(code, text)
        with self._lock:
            self._faults.fail_always = (code, text)

    def fail_when(self, predicate: Callable[[ReceivedMessage], FaultReply | None]) -> None:
        """Per message: *predicate* returns (code, text) to refuse it, or None to accept it.
        Runs on the server thread; an exception in it becomes a 500 reply from aiosmtpd."""
        with self._lock:
            self._faults.fail_when = predicate

    def drop_next(self, n: int = 1) -> None:
        """Abort the connection (no reply at all) at the end of DATA for the next *n* messages."""
        with self._lock:
            self._faults.drop_next = n

    def delay_replies(self, seconds: float) -> None:
        """Store each message at once but answer its final dot only ``seconds`` later."""
        with self._lock:
            self._faults.reply_delay = seconds

    def reject_recipient(self, address: str, code: int = 550, text: str = "5.1.1 Mailbox unavailable") -> None:
        """Refuse RCPT TO:<address> (case-insensitive) until clear_faults(); a 421 also closes the connection."""
        _reply_line(code, text)
        with self._lock:
            self._faults.rejected_rcpts[address.lower()] = (code, text)

    def clear_faults(self) -> None:
        with self._lock:
            self._faults = _Faults()

    # ------------------------------------------------------------------ called on the server thread

    def _record_helo(self, name: str) -> None:
        with self._lock:
            self._ehlo_names.append(name)

    def _rcpt_fault(self, address: str) -> FaultReply | None:
        with self._lock:
            return self._faults.rejected_rcpts.get(address.lower())

    def _decide(self, record: ReceivedMessage) -> str:
        """The reply for *record* ("drop" for no reply) and the bookkeeping that goes with it."""
        with self._lock:
            faults = self._faults
            predicate = faults.fail_when
            reply: FaultReply | None = None
            if faults.drop_next > 0:
                faults.drop_next -= 1
                self._attempts.append(Attempt(record, "dropped", ""))
                return "drop"
            if faults.fail_next > 0:
                faults.fail_next -= 1
                reply = faults.fail_next_reply
        # The predicate is test code: run it outside the lock so it may call back into us.
        if reply is None and predicate is not None:
            reply = predicate(record)
        with self._lock:
            if reply is None:
                reply = self._faults.fail_always
            if reply is not None:
                line = _reply_line(*reply)
                self._attempts.append(Attempt(record, "rejected", line))
                return line
            line = "250 2.0.0 OK queued"
            self._attempts.append(Attempt(record, "accepted", line))
            self._messages.append(record)
            self._lock.notify_all()
            return line
