"""The checks of a Send Email record's fields, each giving the value ready to set or raising ``InvalidMessage``.

Strict by rule: every address, header name and header value is checked, and the first problem
raises ``InvalidMessage`` naming the field.
"""

from __future__ import annotations

import base64
import ipaddress
import mimetypes
import re
from collections.abc import Mapping
from dataclasses import dataclass
from datetime import datetime
from email.utils import getaddresses, parsedate_to_datetime
from functools import lru_cache
from typing import Any


class InvalidMessage(ValueError):
    """A Send Email record that cannot be sent: ``field`` names the culprit, ``reason`` says why."""

    def __init__(self, field: str, reason: str) -> None:
        super().__init__(f"{field}: {reason}")
        self.field = field
        self.reason = reason


@dataclass(frozen=True)
class Mailbox:
    name: str
    local: str
    domain: str

    @property
    def address(self) -> str:
        return f"{self.local}@{self.domain}"


_LINE_BREAK = re.compile(r"[\r\n\x0b\x0c\x1c-\x1e\x85\u2028\u2029]")
_HEADER_NAME = re.compile(r"[!-9;-~]{1,76}")
_HEADER_FIELDS = {
    "from": "from",
    "to": "to",
    "cc": "cc",
    "bcc": "bcc",
    "reply-to": "reply_to",
    "subject": "subject",
    "in-reply-to": "in_reply_to",
    "references": "references",
}
_OWN_HEADERS = {"message-id", "date", "mime-version"}
_ADDRESS_HEADERS = {"sender", "resent-sender", "resent-from", "resent-to", "resent-cc", "resent-bcc"}
_DATE_HEADERS = {"resent-date", "orig-date"}
# RFC 5322 3.6 allows each of these once; the other headers a record may set can repeat.
_ONE_ONLY = {"sender": "Sender", "orig-date": "Orig-Date"}
_COMPRESSED = {"gzip": "application/gzip", "bzip2": "application/x-bzip2", "xz": "application/x-xz"}


def header_text(field: str, value: Any) -> str:
    if value is None:
        return ""
    if not isinstance(value, str):
        raise InvalidMessage(field, f"must be text, not {type(value).__name__}")
    if _LINE_BREAK.search(value):
        raise InvalidMessage(field, "contains a line break (header injection)")
    if "\x00" in value:
        raise InvalidMessage(field, "contains a NUL character")
    return _encodable(field, value)


def _encodable(field: str, value: str) -> str:
    # Lone surrogates (from JSON "\\ud800", or bytes decoded with surrogateescape) cannot be encoded,
    # and are all UTF-8 refuses; trying it is five times quicker than searching a body for them.
    if not value.isascii():
        try:
            value.encode("utf-8")
        except UnicodeEncodeError:
            raise InvalidMessage(field, "contains characters that are not valid Unicode (lone surrogates)") from None
    return value


def mailboxes(field: str, value: Any) -> list[Mailbox]:
    if value is None:
        return []
    items = [value] if isinstance(value, str) else value
    if not isinstance(items, (list, tuple)):
        raise InvalidMessage(field, "must be an address or a list of addresses")
    found: list[Mailbox] = []
    for item in items:
        if not isinstance(item, str):
            raise InvalidMessage(field, f"{item!r} is not an address")
        try:
            found += _remembered_mailboxes(item) if len(item) <= REMEMBERED_CHARS else _mailboxes_in(item)
        except InvalidMessage as exc:
            raise InvalidMessage(field, exc.reason) from None
    return found


def _mailboxes_in(text: str) -> tuple[Mailbox, ...]:
    """The mailboxes of one address text; ``InvalidMessage`` (its field left to the caller) if it has a bad one."""
    found = []
    for piece in _split_addresses(header_text("", text)):
        # One address per piece, so getaddresses cannot silently drop one ("a@x.org, b@").
        pairs = _pairs(piece)
        mailbox = _mailbox(*pairs[0]) if len(pairs) == 1 else None
        # getaddresses also glues stray words together ("Jane Doe jane@x.org"): insist on what was typed.
        if mailbox is None or pairs[0][1] not in piece:
            raise InvalidMessage("", f"{piece!r} is not a valid address")
        found.append(mailbox)
    return tuple(found)


_ATEXT = r"[A-Za-z0-9!#$%&'*+/=?^_`{|}~-]+"
_DOT_ATOM = rf"{_ATEXT}(?:\.{_ATEXT})*"
_SIMPLE_ADDRESS = rf"{_DOT_ATOM}@[A-Za-z0-9-]+(?:\.[A-Za-z0-9-]+)*"
# "Jane Doe <jane@example.org>" or "jane@example.org" with nothing to quote, unfold or decode: what
# getaddresses makes of it is plain to see (the words, one space apart, and the address as written).
_SIMPLE = re.compile(rf"(?P<name>{_ATEXT}(?: {_ATEXT})*) <(?P<addr>{_SIMPLE_ADDRESS})>|(?P<bare>{_SIMPLE_ADDRESS})")


def _pairs(piece: str) -> list[tuple[str, str]]:
    """The (display name, address) pairs getaddresses finds in ``piece``, without its parser for the usual ones."""
    simple = _SIMPLE.fullmatch(piece)
    if simple:
        return [(simple["name"] or "", simple["addr"] or simple["bare"])]
    return [(name, addr) for name, addr in getaddresses([piece]) if name or addr]


# The same senders and recipients come back record after record, and checking an address text is
# most of the cost of building a message. Longer texts (a hostile record's megabyte of addresses)
# are checked but not remembered; failures are never remembered (lru_cache keeps no exceptions).
REMEMBERED_CHARS = 1000
_remembered_mailboxes = lru_cache(maxsize=4096)(_mailboxes_in)


def _split_addresses(text: str) -> list[str]:
    """The comma-separated pieces of an address list, commas in quotes and brackets kept."""
    if "," not in text:  # one piece: nothing to walk through
        return [text.strip()] if text.strip() else []
    pieces: list[str] = []
    current: list[str] = []
    quoted = escaped = False
    depth = 0
    for char in text:
        if escaped:
            escaped = False
        elif char == "\\" and quoted:
            escaped = True
        elif char == '"':
            quoted = not quoted
        elif not quoted and char in "<(":
            depth += 1
        elif not quoted and char in ">)":
            depth = max(depth - 1, 0)
        elif char == "," and not quoted and depth == 0:
            pieces.append("".join(current))
            current = []
            continue
        current.append(char)
    pieces.append("".join(current))
    return [piece.strip() for piece in pieces if piece.strip()]


_LOCAL_PART = re.compile(_DOT_ATOM)
_LABEL = re.compile(r"(?!-)[A-Za-z0-9-]{1,63}(?<!-)")


def _mailbox(name: str, addr: str) -> Mailbox | None:
    if addr.count("@") != 1:
        return None
    local, domain = addr.split("@")
    if len(local) > 64 or not _LOCAL_PART.fullmatch(local):
        return None
    ascii = ascii_domain(domain)
    return Mailbox(name, local, ascii) if ascii else None


def ascii_domain(domain: str) -> str | None:
    """The domain in ASCII (IDN labels as xn--), or None when it is not a usable domain."""
    if domain.startswith("[") and domain.endswith("]"):
        # RFC 5321's address literals have no IPv6 zone id ("%eth0"), which ipaddress takes and
        # which may hold any text, ">" included (it would end the address in a header or RCPT TO).
        if "%" in domain:
            return None
        try:
            ipaddress.ip_address(domain[1:-1].removeprefix("IPv6:"))
        except ValueError:
            return None
        return domain
    # An ASCII domain is its own IDNA form: the codec would only refuse an empty or overlong label,
    # which _LABEL refuses below.
    try:
        encoded = domain if domain.isascii() else domain.encode("idna").decode("ascii")
    except UnicodeError:
        return None
    labels = encoded.split(".")
    if len(encoded) > 253 or not all(_LABEL.fullmatch(label) for label in labels):
        return None
    if encoded.lower() != "localhost" and (len(labels) < 2 or labels[-1].isdigit()):
        return None
    return encoded


def outgoing_ids(field: str, value: Any) -> list[str]:
    if value is None:
        return []
    items = [value] if isinstance(value, str) else value
    if not isinstance(items, (list, tuple)):
        raise InvalidMessage(field, "must be a message id or a list of message ids")
    ids = []
    for item in items:
        for token in header_text(field, item).split():
            core = token[1:-1] if token.startswith("<") and token.endswith(">") else token
            if not core or not (core.isascii() and core.isprintable()) or any(c in core for c in "<> "):
                raise InvalidMessage(field, f"{token!r} is not a message id")
            ids.append(f"<{core}>")
    return ids


def custom_headers(value: Any) -> list[tuple[str, str | list[Mailbox] | datetime]]:
    """The custom headers, checked, each value ready to write; Sender and Orig-Date at most once.

    Headers that the stdlib's registry parses when read (Sender, Resent-*, Orig-Date) are checked
    and parsed here, as mailboxes or a date: given as text, its parser would mangle or drop a bad
    value, or raise on a hostile one.
    """
    if value is None:
        return []
    pairs = list(value.items()) if isinstance(value, Mapping) else value
    if not isinstance(pairs, (list, tuple)) or not all(isinstance(p, (list, tuple)) and len(p) == 2 for p in pairs):
        raise InvalidMessage("headers", "must be a mapping or a list of [name, value] pairs")
    headers: list[tuple[str, str | list[Mailbox] | datetime]] = []
    for name, text in pairs:
        if not isinstance(name, str) or not _HEADER_NAME.fullmatch(name):
            raise InvalidMessage("headers", f"{name!r} is not a valid header name")
        lower = name.lower()
        if lower in _HEADER_FIELDS:
            raise InvalidMessage("headers", f"{name} is set with the {_HEADER_FIELDS[lower]} field")
        if lower in _OWN_HEADERS or lower.startswith("content-"):
            raise InvalidMessage("headers", f"{name} is set by Mailwright and cannot be overridden")
        try:
            headers.append((name, _custom_value(lower, text)))
        except InvalidMessage as exc:
            raise InvalidMessage("headers", f"the value of {name} {exc.reason}") from None
    seen: set[str] = set()
    for name, _ in headers:  # once every value is checked: a bad value is named before a repeat
        lower = name.lower()
        if lower in _ONE_ONLY:
            if lower in seen:
                raise InvalidMessage("headers", f"only one {_ONE_ONLY[lower]} header is allowed")
            seen.add(lower)
    return headers


def _custom_value(lower_name: str, value: Any) -> str | list[Mailbox] | datetime:
    text = header_text("value", value)
    if lower_name in _ADDRESS_HEADERS:
        return mailboxes("value", text)
    if lower_name in _DATE_HEADERS:
        try:
            return parsedate_to_datetime(text)
        except (TypeError, ValueError):
            raise InvalidMessage("value", f"{text!r} is not a date") from None
    return text


def checked_body(field: str, value: Any) -> str:
    if value is None:
        return ""
    if not isinstance(value, str):
        raise InvalidMessage(field, f"must be text, not {type(value).__name__}")
    return _encodable(field, value)


_MIME_TYPE = re.compile(r"[A-Za-z0-9!#$&^_.+-]+/[A-Za-z0-9!#$&^_.+-]+")


def checked_attachments(value: Any) -> list[tuple[str, str, bytes]]:
    if value is None:
        return []
    if not isinstance(value, (list, tuple)):
        raise InvalidMessage("attachments", "must be a list of attachments")
    found = []
    for index, item in enumerate(value):
        field = f"attachments[{index}]"
        if not isinstance(item, Mapping):
            raise InvalidMessage(field, "must be an object with a filename and a content")
        filename = item.get("filename")
        if not isinstance(filename, str) or not filename.strip():
            raise InvalidMessage(f"{field}.filename", "is required")
        filename = header_text(f"{field}.filename", filename)
        found.append((filename, _attachment_type(field, item.get("content_type"), filename), _content(field, item)))
    return found


def _attachment_type(field: str, given: Any, filename: str) -> str:
    if given:
        if not isinstance(given, str) or not _MIME_TYPE.fullmatch(given.strip()):
            raise InvalidMessage(f"{field}.content_type", f"{given!r} is not a MIME type like image/png")
        content_type = given.strip().lower()
        if content_type.startswith("multipart/"):
            raise InvalidMessage(f"{field}.content_type", "an attachment cannot be multipart")
        return content_type
    guessed, compression = mimetypes.guess_type(filename)
    if compression:
        return _COMPRESSED.get(compression, "application/octet-stream")
    return guessed or "application/octet-stream"


def _content(field: str, item: Mapping[str, Any]) -> bytes:
    content = item.get("content")
    if isinstance(content, (bytes, bytearray, memoryview)):
        return bytes(content)
    if isinstance(content, str):
        try:
            return base64.b64decode("".join(content.split()), validate=True)
        except ValueError:  # binascii.Error, and non-ASCII text
            raise InvalidMessage(f"{field}.content", "is text but not base64 (give bytes or base64)") from None
    if content is None:
        why = f" (skipped when read: {item['skipped']})" if item.get("skipped") else ""
        raise InvalidMessage(f"{field}.content", f"is missing{why}")
    raise InvalidMessage(f"{field}.content", f"must be bytes or base64 text, not {type(content).__name__}")
