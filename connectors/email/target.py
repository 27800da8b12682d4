"""The Send Email target: a few SMTP connections per run, and the server's words for every outcome.

Up to the activity's ``max_connections`` connections (``pool``) serve the run's messages, one
message per connection at a time, so the engine sends that many in parallel; they open as needed
and close with QUIT when the session ends. A dropped connection fails that one message
(transient) and the next ``write`` connects again.

Replies decide what a failure means: 4xx is transient (the engine may retry), 5xx permanent
(the message failed, the reply is the reason). A message that some recipients accepted counts
as delivered: sending it again would duplicate it for those who got it, so the refused
recipients are listed in the delivery's reply instead.

smtplib's ``send_message`` drops the final reply to DATA ("250 2.0.0 Ok: queued as 4F2A1"), the
one receipt an operator can look up in the server's logs, so MAIL / RCPT / DATA are sent here.
"""

from __future__ import annotations

import contextlib
import dataclasses
import re
import smtplib
from collections.abc import Callable, Iterator, Mapping
from typing import Any

from connectors import net
from connectors.base import ConnectionFailed, ConnectorError, Delivery, Prepared, TargetSession
from connectors.email.activities import SendSettings
from connectors.email.config import EmailConfig
from connectors.email.message.build import InvalidMessage, OutgoingMessage, build_message
from connectors.email.pool import PooledSession, SessionPool
from connectors.email.smtp import EnvelopeReplies, SMTPSession, end_unused_data, open_smtp, send_data, send_envelope

_MESSAGE_ID = re.compile(r"<[!-;=?-~]+>")  # printable ASCII without "<", ">" or spaces


@dataclasses.dataclass(frozen=True)
class _Outcome:
    """What the server answered to one message: DATA's reply, or the refusal that stopped it."""

    code: int
    reply: str
    refused: dict[str, str] = dataclasses.field(default_factory=dict)  # recipient -> reply, when others took it


class EmailTarget(TargetSession):
    """A Send Email activity, open for one run. Use as a context manager."""

    def __init__(self, config: EmailConfig, secrets: Mapping[str, str], settings: SendSettings,
                 deadline: net.Deadline | None = None) -> None:
        self.config = config
        self.deadline = deadline
        self.secrets = secrets
        self.settings = settings
        self.parallelism = settings.max_connections
        self._pool = SessionPool(self._connect, settings.max_connections)

    def __enter__(self) -> EmailTarget:
        return self

    def __exit__(self, *exc: object) -> None:
        self._pool.close()

    def prepare(self, record: Mapping[str, Any], message_id: str | None = None) -> Prepared:
        """The record with its ``message_id`` (new, or the given one) and its built message;
        ``InvalidMessage`` when it can never be sent."""
        outgoing = self._build(record)
        if message_id:
            outgoing = _with_message_id(outgoing, message_id)
        return Prepared({**record, "message_id": outgoing.message_id}, outgoing.message_id, outgoing)

    def write(self, prepared: Prepared | Mapping[str, Any], written: Callable[[], None] | None = None) -> Delivery:
        """Send a prepared record (or prepare one, keeping a ``message_id`` it already has). With
        ``written``, the built message is let go of once its data is sent (``_submit``)."""
        if not isinstance(prepared, Prepared):
            prepared = self.prepare(prepared, prepared.get("message_id") or None)
        outgoing: OutgoingMessage = prepared.outgoing
        try:
            session = self._pool.take()
        except ConnectorError as exc:
            raise ConnectionFailed(exc.message, permanent=exc.permanent) from None
        try:
            with session.smtp.translating("sending the message", self.secrets):
                outcome = _submit(session.smtp, outgoing, written)
        except ConnectorError:
            self._pool.discard(session)  # gone or in an unknown state: the next write connects again
            raise
        if outcome.code == 421:  # the server is closing the session
            self._pool.discard(session, server_is_full=True)
        else:
            self._pool.give_back(session)
        if outcome.code != 250:
            raise ConnectorError(outcome.reply, permanent=outcome.code >= 500)
        reply = outcome.reply
        if outcome.refused:
            reply += "; not accepted for " + ", ".join(f"{rcpt} ({text})" for rcpt, text in outcome.refused.items())
        return Delivery(reply=reply, message_id=outgoing.message_id)

    def _build(self, record: Mapping[str, Any]) -> OutgoingMessage:
        defaults = self.settings.defaults
        sender = record.get("from")
        if not (isinstance(sender, str) and sender.strip()):  # build_message falls back the same way
            sender = defaults.get("from")
        domain = self.settings.message_id_domain_for(sender if isinstance(sender, str) else "")
        return build_message(record, defaults=defaults, message_id_domain=domain)

    def _connect(self) -> PooledSession:
        closer = contextlib.ExitStack()
        return PooledSession(closer.enter_context(open_smtp(self.config, self.secrets, deadline=self.deadline)), closer)


def _with_message_id(outgoing: OutgoingMessage, message_id: Any) -> OutgoingMessage:
    """The message carrying the id assigned by ``prepare`` (the one the engine's ledger holds)."""
    if not isinstance(message_id, str) or not _MESSAGE_ID.fullmatch(message_id):
        raise InvalidMessage("message_id", f"{message_id!r} is not a message id like <id@example.com>")
    outgoing.message.replace_header("Message-ID", message_id)
    return dataclasses.replace(outgoing, message_id=message_id)


def _submit(smtp: SMTPSession, outgoing: OutgoingMessage, written: Callable[[], None] | None = None) -> _Outcome:
    """MAIL, RCPT per recipient, DATA. A refusal resets the transaction so the session can go on.
    With ``written``, the message is let go of once its last byte is handed over, before the
    server's reply (which may take minutes), and ``written`` is called.

    Network failures raise (smtplib's exceptions); replies never do.
    """
    payload = outgoing.to_wire()
    options = [f"SIZE={payload.size}"] if smtp.has_extn("size") else []
    envelope = send_envelope(smtp, outgoing.sender, options, outgoing.recipients)
    code, text = envelope.mail
    if code != 250:
        _reset(smtp, envelope)
        return _Outcome(code, f"the server refused the sender {outgoing.sender}: {_reply(code, text)}")
    refused = {recipient: (code, _reply(code, text))
               for recipient, (code, text) in zip(outgoing.recipients, envelope.rcpt, strict=True)
               if code not in (250, 251)}
    closing = [text for code, text in refused.values() if code == 421]
    if closing:  # nothing more goes on this session; the message is tried again
        return _Outcome(421, f"the server is closing the connection: {closing[0]}")
    if len(refused) == len(outgoing.recipients):
        _reset(smtp, envelope)
        listed = ", ".join(f"{rcpt} ({text})" for rcpt, (_code, text) in refused.items())
        # Transient while any refusal is: a retry may still reach that recipient.
        return _Outcome(min(code for code, _text in refused.values()), f"the server refused every recipient: {listed}")
    chunks = payload.chunks()
    del payload  # its chunks hold it now, until the last is sent
    if written is not None:
        chunks = _then_let_go(chunks, outgoing, written)
    try:
        code, text = send_data(smtp, chunks, envelope.data)
    except smtplib.SMTPDataError as exc:  # DATA itself refused (no 354)
        code, text = exc.smtp_code, exc.smtp_error
    if code != 250:
        _reset(smtp)
        return _Outcome(code, f"the server refused the message: {_reply(code, text)}")
    return _Outcome(code, _reply(code, text), {rcpt: text for rcpt, (_code, text) in refused.items()})


def _then_let_go(chunks: Iterator[bytes], outgoing: OutgoingMessage, written: Callable[[], None]) -> Iterator[bytes]:
    yield from chunks  # once done, the wire is let go of with the generator's frame
    outgoing.let_go()
    written()


def _reset(smtp: SMTPSession, envelope: EnvelopeReplies | None = None) -> None:
    with contextlib.suppress(smtplib.SMTPException, OSError):
        if envelope is not None:
            end_unused_data(smtp, envelope)
        smtp.rset()


def _reply(code: int, text: bytes | str) -> str:
    words = text.decode("utf-8", "replace") if isinstance(text, bytes) else str(text)
    return " ".join(f"{code} {words}".split())
