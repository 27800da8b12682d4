"""Send Email record in, message out (SPEC §4): ``build_message`` gives an ``OutgoingMessage`` for SMTP.

The fields are checked by ``fields``; the attachments are encoded while being sent, by ``wire``.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from datetime import UTC, datetime
from email.headerregistry import HeaderRegistry
from email.message import EmailMessage
from email.policy import SMTP
from email.utils import format_datetime, make_msgid
from typing import Any

from connectors.email.message import wire
from connectors.email.message.fields import (
    InvalidMessage,
    ascii_domain,
    checked_attachments,
    checked_body,
    custom_headers,
    header_address,
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


@dataclass(frozen=True)
class OutgoingMessage:
    """A message ready for SMTP: ``to_wire()`` gives its bytes (CRLF, 7-bit clean).

    ``sender`` and ``recipients`` are the envelope (Bcc included, IDN domains in ASCII form);
    ``message_id`` is the ``<id@domain>`` the message carries. ``message`` has the headers, bodies
    and structure; its attachment parts hold placeholders, and ``attachments`` their bytes, in order.
    """

    message: EmailMessage
    sender: str
    recipients: list[str]
    message_id: str
    attachments: tuple[bytes, ...] = ()
    placeholder_token: str = ""

    def to_wire(self) -> wire.Wire:
        return wire.flatten(self.message, self.placeholder_token, self.attachments)


class _HeaderClasses(HeaderRegistry):
    """The stdlib's header registry, with each header class made once rather than at every header.

    The stock ``__getitem__`` creates a new class each time a header is set; those classes live
    in reference cycles, so a run building thousands of messages piles them up until the garbage
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


# 7-bit so that no server without 8BITMIME can refuse or mangle the message.
_SEND_POLICY = SMTP.clone(cte_type="7bit", header_factory=_HeaderClasses())


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
    domain = ascii_domain(message_id_domain.strip()) if isinstance(message_id_domain, str) else None
    if not domain:
        raise InvalidMessage("message_id_domain", f"{message_id_domain!r} is not a valid domain")

    message = EmailMessage(policy=_SEND_POLICY)
    message_id = make_msgid(domain=domain)
    message["Message-ID"] = message_id
    message["Date"] = format_datetime(datetime.now(UTC))
    message["From"] = header_address(senders[0])
    for header, boxes in (("To", to), ("Cc", cc), ("Reply-To", reply_to)):
        if boxes:
            message[header] = [header_address(m) for m in boxes]
    message["Subject"] = subject
    if in_reply_to:
        message["In-Reply-To"] = " ".join(in_reply_to)
    if references:
        message["References"] = " ".join(references)
    for name, value in custom:
        try:
            message[name] = value
        except ValueError:  # a second Sender: the registry allows one
            raise InvalidMessage("headers", f"only one {name} header is allowed") from None

    if html and text:
        message.set_content(text)
        message.add_alternative(html, subtype="html")
    elif html:
        message.set_content(html, subtype="html")
    else:
        message.set_content(text)
    token = wire.new_placeholder_token()
    streamed: list[bytes] = []
    for filename, content_type, data in attachments:
        maintype, subtype = content_type.split("/")
        inline = maintype == "message" and _seven_bit(data)
        if maintype == "message" and not inline:
            # RFC 2046 allows no base64 in a message/* body, and this message is 7-bit (no 8BITMIME
            # needed): an 8-bit or long-lined one travels as octets, under its own file name.
            maintype, subtype = "application", "octet-stream"
        message.add_attachment(b"", maintype=maintype, subtype=subtype, filename=filename)
        part = message.get_payload()[-1]
        if inline:
            # A forwarded message or delivery report goes as it is, 7bit, as RFC 2046 asks.
            part.replace_header("Content-Transfer-Encoding", "7bit")
            part.set_payload(data.decode("ascii"))
        else:
            # Encoded while it is sent (``wire``): the part holds a placeholder meanwhile.
            part.set_payload(wire.placeholder(token, len(streamed)))
            streamed.append(data)

    recipients: dict[str, str] = {}
    for mailbox in (*to, *cc, *bcc):
        recipients.setdefault(mailbox.address.lower(), mailbox.address)
    return OutgoingMessage(
        message=message, sender=senders[0].address, recipients=list(recipients.values()), message_id=message_id,
        attachments=tuple(streamed), placeholder_token=token,
    )


def _seven_bit(data: bytes) -> bool:
    """Whether ``data`` can be sent as it is in a 7-bit message: ASCII, no NUL, lines of at most 998 octets."""
    if not data.isascii() or b"\0" in data:
        return False
    return all(len(line) <= 998 for line in data.replace(b"\r\n", b"\n").split(b"\n"))


def _merge(record: Mapping[str, Any], defaults: Mapping[str, Any]) -> dict[str, Any]:
    return {f: defaults.get(f) if _is_empty(record.get(f)) else record.get(f) for f in TARGET_FIELDS}


def _is_empty(value: Any) -> bool:
    if isinstance(value, str):
        return not value.strip()
    return value is None or (isinstance(value, (list, tuple, dict)) and not value)
