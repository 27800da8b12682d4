"""Send Email record in, message out (SPEC §4): ``build_message`` gives an ``OutgoingMessage`` for SMTP.

The fields are checked by ``fields``; the header values are written in wire form by
``outgoing_headers`` (not by the email package's header registry, which parses and refolds every
value: most of the cost of a message); the attachments are encoded while being sent, by ``wire``.
"""

from __future__ import annotations

import binascii
import re
from collections.abc import Mapping
from dataclasses import dataclass
from datetime import UTC, datetime
from email.headerregistry import HeaderRegistry
from email.message import EmailMessage, MIMEPart
from email.policy import EmailPolicy
from email.utils import format_datetime, make_msgid
from functools import lru_cache
from typing import Any

from connectors.email.message import outgoing_headers, wire
from connectors.email.message.codec import encode_lines
from connectors.email.message.fields import (
    REMEMBERED_CHARS,
    InvalidMessage,
    Mailbox,
    ascii_domain,
    checked_attachments,
    checked_body,
    custom_headers,
    header_text,
    mailboxes,
    outgoing_ids,
)

TARGET_FIELDS = (
    "from",
    "to",
    "cc",
    "bcc",
    "reply_to",
    "subject",
    "text",
    "html",
    "attachments",
    "headers",
    "in_reply_to",
    "references",
)


@dataclass
class OutgoingMessage:
    """A message ready for SMTP: ``to_wire()`` gives its bytes (CRLF, 7-bit clean).

    ``sender`` and ``recipients`` are the envelope (Bcc included, IDN domains in ASCII form);
    ``message_id`` is the ``<id@domain>`` the message carries. ``message`` has the headers, bodies
    and structure; its attachment parts hold placeholders, and ``attachments`` their bytes, in order.
    Both are None and empty once the message was let go of (``let_go``).
    """

    message: EmailMessage | None
    sender: str
    recipients: list[str]
    message_id: str
    attachments: tuple[bytes, ...] = ()
    placeholder_token: str = ""

    def to_wire(self) -> wire.Wire:
        if self.message is None:
            raise RuntimeError("the message was let go of once its data was sent; build it again to send it again")
        return wire.flatten(self.message, self.placeholder_token, self.attachments)

    def let_go(self) -> None:
        """Drop the message's content (its data is sent): whoever still holds this object holds
        only the envelope, while the server decides; it cannot be sent again."""
        self.message = None
        self.attachments = ()


class _HeaderClasses(HeaderRegistry):
    """The stdlib's header registry, with each header class made once rather than at every header.

    The stock ``__getitem__`` creates a new class each time a header is read; those classes live
    in reference cycles, so a preview reading thousands of headers piles them up until the garbage
    collector's rare full pass.
    """

    def __init__(self) -> None:
        super().__init__()
        self._made: dict[type, type] = {}

    def __getitem__(self, name: str) -> type:
        kind = self.registry.get(name.lower(), self.default_class)
        if kind not in self._made:
            self._made[kind] = super().__getitem__(name)
        return self._made[kind]


# What the generator reads while flattening: kept as text, since parsing them at every message
# through the registry is the cost this module avoids. Every other header is parsed only when
# someone reads it (a preview, a test), as the stdlib would.
_STRUCTURAL = frozenset({"content-type", "content-transfer-encoding", "mime-version"})
_FOLDED_BREAK = re.compile(r"\r(?!\n)|\r?\n(?![ \t])")


class HeaderInjection(ValueError):
    """A header value with a line break of its own: it would start a header of the sender's choosing."""


class _WirePolicy(EmailPolicy):
    """Headers are stored as given: ``outgoing_headers`` has already written them in wire form."""

    def header_store_parse(self, name: str, value: Any) -> tuple[str, str]:
        if not isinstance(value, str):
            raise TypeError(f"{name}: set outgoing headers as text from outgoing_headers, not {type(value).__name__}")
        if ("\n" in value or "\r" in value) and _FOLDED_BREAK.search(value):
            raise HeaderInjection(f"{name}: a line break that does not fold the value")
        return name, value

    def header_fetch_parse(self, name: str, value: str) -> Any:
        if name.lower() in _STRUCTURAL:
            return value.replace("\r\n", "").replace("\n", "")
        return super().header_fetch_parse(name, value)

    def header_max_count(self, name: str) -> None:
        return None  # the headers a record may not repeat (Sender, Orig-Date) are refused by fields.custom_headers


# 7-bit so that no server without 8BITMIME can refuse or mangle the message; lines are written as
# ``outgoing_headers`` folded them, never refolded.
_SEND_POLICY = _WirePolicy(linesep="\r\n", cte_type="7bit", header_factory=_HeaderClasses(), refold_source="none")


def build_message(
    record: Mapping[str, Any],
    *,
    defaults: Mapping[str, Any] | None = None,
    message_id_domain: str,
) -> OutgoingMessage:
    """The message for a Send Email record (SPEC §4), or ``InvalidMessage`` naming the bad field.

    A record field that is empty (None, blank text, empty list) takes the activity's default.
    Addresses come as one comma-separated string or a list of strings; ``headers`` as a mapping
    or a list of ``[name, value]`` pairs; attachments as ``{filename, content_type?, content}``
    with ``content`` as bytes or base64 text. Keys outside ``TARGET_FIELDS`` are ignored.
    """
    fields = _merge(record, defaults or {})
    senders = mailboxes("from", fields["from"])
    if len(senders) != 1:
        raise InvalidMessage("from", "one sender address is required" if not senders else "only one address allowed")
    to, cc, bcc = (mailboxes(name, fields[name]) for name in ("to", "cc", "bcc"))
    if not (to or cc or bcc):
        raise InvalidMessage("to", "at least one recipient is required (in to, cc or bcc)")
    reply_to = mailboxes("reply_to", fields["reply_to"])
    subject = header_text("subject", fields["subject"])
    in_reply_to = outgoing_ids("in_reply_to", fields["in_reply_to"])
    references = outgoing_ids("references", fields["references"])
    custom = custom_headers(fields["headers"])
    text = checked_body("text", fields["text"])
    html = checked_body("html", fields["html"])
    attachments = checked_attachments(fields["attachments"])
    domain = _id_domain(message_id_domain) if isinstance(message_id_domain, str) else None
    if not domain:
        raise InvalidMessage("message_id_domain", f"{message_id_domain!r} is not a valid domain")

    message = EmailMessage(policy=_SEND_POLICY)
    message_id = make_msgid(domain=domain)
    message["Message-ID"] = message_id
    message["Date"] = _date_at(int(datetime.now(UTC).timestamp()))
    message["From"] = _address_field("From", fields["from"], senders)
    for header, field, boxes in (("To", "to", to), ("Cc", "cc", cc), ("Reply-To", "reply_to", reply_to)):
        if boxes:
            message[header] = _address_field(header, fields[field], boxes)
    message["Subject"] = outgoing_headers.unstructured("Subject", subject)
    if in_reply_to:
        message["In-Reply-To"] = outgoing_headers.message_ids("In-Reply-To", in_reply_to)
    if references:
        message["References"] = outgoing_headers.message_ids("References", references)
    _set_custom(message, custom)
    message["MIME-Version"] = "1.0"

    # Only a message with attachments has placeholders to find (and the token costs a urandom call).
    token = wire.new_placeholder_token() if attachments else ""
    streamed: list[bytes] = []
    body = _body(message if not attachments else MIMEPart(policy=_SEND_POLICY), text, html)
    if attachments:
        parts = [body, *(_attachment(token, streamed, *attachment) for attachment in attachments)]
        _multipart(message, "mixed", parts)

    recipients: dict[str, str] = {}
    for mailbox in (*to, *cc, *bcc):
        recipients.setdefault(mailbox.address.lower(), mailbox.address)
    return OutgoingMessage(
        message=message, sender=senders[0].address, recipients=list(recipients.values()), message_id=message_id,
        attachments=tuple(streamed), placeholder_token=token,
    )


# The activity's configured domain or its sender's (a checked host name): a few short texts, each
# the same message after message, and IDNA encoding is a good part of a message's cost.
@lru_cache(maxsize=64)
def _id_domain(text: str) -> str | None:
    return ascii_domain(text.strip())


@lru_cache(maxsize=1)
def _date_at(second: int) -> str:
    # A run's messages come many a second: the date is written once for them all.
    return format_datetime(datetime.fromtimestamp(second, UTC))


def _address_field(name: str, given: Any, boxes: list[Mailbox]) -> str:
    """The header value for ``boxes``, the mailboxes of ``given`` (the record's field)."""
    if isinstance(given, str) and len(given) <= REMEMBERED_CHARS:
        return _remembered_field(name, given)
    return _addresses(name, boxes)


# The same sender and recipients come back record after record: their header is written once.
# Texts are remembered as fields remembers their mailboxes, so within the same bounds.
@lru_cache(maxsize=1024)
def _remembered_field(name: str, text: str) -> str:
    return _addresses(name, mailboxes(name, text))


def _addresses(name: str, boxes: list[Mailbox]) -> str:
    return outgoing_headers.addresses(name, [(m.name, m.address) for m in boxes])


def _set_custom(message: EmailMessage, custom: list[tuple[str, str | list[Mailbox] | datetime]]) -> None:
    for name, value in custom:
        if isinstance(value, datetime):
            message[name] = format_datetime(value)
        elif isinstance(value, list):
            message[name] = _addresses(name, value)
        else:
            message[name] = outgoing_headers.unstructured(name, value)


def _body(part: MIMEPart, text: str, html: str) -> MIMEPart:
    """``part`` holding the text, the HTML, or both as multipart/alternative."""
    if html and text:
        _multipart(part, "alternative", [_text(MIMEPart(policy=_SEND_POLICY), "plain", text),
                                         _text(MIMEPart(policy=_SEND_POLICY), "html", html)])
        return part
    return _text(part, "html", html) if html else _text(part, "plain", text)


def _multipart(part: MIMEPart, subtype: str, parts: list[MIMEPart]) -> None:
    part["Content-Type"] = wire.multipart_type(subtype)
    part.set_payload(parts)


def _text(part: MIMEPart, subtype: str, body: str) -> MIMEPart:
    """A text part, its body encoded once: 7bit when it can be, else quoted-printable or base64,
    whichever is shorter (the email package's choice, made without its per-line Python code)."""
    if body.isascii() and "\r" not in body and max(map(len, body.split("\n"))) <= 78:
        # The usual body goes as it is: no bytes to make, split into lines and join again.
        cte, payload = "7bit", body if body.endswith("\n") else body + "\n"
    else:
        cte, payload = _encoded(body)
    part["Content-Type"] = f'text/{subtype}; charset="utf-8"'
    part["Content-Transfer-Encoding"] = cte
    part.set_payload(payload)
    return part


def _encoded(body: str) -> tuple[str, str]:
    """The transfer encoding and payload of ``body``, its line breaks made LF."""
    lines = body.encode("utf-8").splitlines()
    data = b"\n".join(lines) + b"\n"
    if data.isascii() and max(map(len, lines), default=0) <= 78:
        cte, payload = "7bit", data.decode("ascii")
    else:
        quoted = binascii.b2a_qp(data, istext=True)
        if len(quoted) <= wire.base64_size(len(data)):
            cte, payload = "quoted-printable", quoted.decode("ascii")
        else:
            cte, payload = "base64", encode_lines(data, line_break=b"\n", terminated=True).decode("ascii")
    return cte, payload


def _attachment(token: str, streamed: list[bytes], filename: str, content_type: str, data: bytes) -> MIMEPart:
    part = MIMEPart(policy=_SEND_POLICY)
    maintype = content_type.split("/")[0]
    inline = maintype == "message" and _seven_bit(data)
    if maintype == "message" and not inline:
        # RFC 2046 allows no base64 in a message/* body, and this message is 7-bit (no 8BITMIME
        # needed): an 8-bit or long-lined one travels as octets, under its own file name.
        content_type = "application/octet-stream"
    part["Content-Type"] = content_type
    part["Content-Transfer-Encoding"] = "7bit" if inline else "base64"
    part["Content-Disposition"] = outgoing_headers.disposition(filename)
    if inline:
        # A forwarded message or delivery report goes as it is, 7bit, as RFC 2046 asks.
        part.set_payload(data.decode("ascii"))
    else:
        # Encoded while it is sent (``wire``): the part holds a placeholder meanwhile.
        part.set_payload(wire.placeholder(token, len(streamed)))
        streamed.append(data)
    return part


def _seven_bit(data: bytes) -> bool:
    """Whether ``data`` can be sent as it is in a 7-bit message: ASCII, no NUL, lines of at most 998 octets."""
    if not data.isascii() or b"\0" in data:
        return False
    return all(len(line) <= 998 for line in data.replace(b"\r\n", b"\n").split(b"\n"))


def _merge(record: Mapping[str, Any], defaults: Mapping[str, Any]) -> dict[str, Any]:
    merged = {}
    for field in TARGET_FIELDS:
        value = record.get(field)
        # Most fields are absent: None is told apart before the other empty values.
        merged[field] = defaults.get(field) if value is None or _is_empty(value) else value
    return merged


def _is_empty(value: Any) -> bool:
    if isinstance(value, str):
        return not value.strip()
    return isinstance(value, (list, tuple, dict)) and not value
