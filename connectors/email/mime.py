"""Raw messages in, Read Email records out; Send Email records in, messages out.

Reading (``parse_message``) turns the bytes the IMAP reader fetched into the source record of
SPEC §3. Real mail is hostile: wrong or unknown charsets, 8-bit headers, broken encodings,
multiparts without boundaries, truncation. The contract is that *any* bytes give a record, and
whatever had to be repaired is listed in the record's ``defects`` for the engine to log.

To keep that contract the structure is parsed with the ``compat32`` parser, which records
defects rather than raising (the two ways it can still raise, deep nesting and RFC 2231 trouble in
a boundary, are handled here), and every header and body is decoded here rather than by
``email.policy.default``: the default policy decodes headers lazily through a parser that raises
on some hostile values (IndexError, AttributeError...), so its exceptions would surface at every
access. Decoding here is lenient by rule: an unknown charset gives replacement characters.

Building (``build_message``) turns the target record of SPEC §4 into an ``EmailMessage`` ready
for SMTP. It is strict by rule: every address, header name and header value is checked, and the
first problem raises ``InvalidMessage`` naming the field.

Record types, reading side (values are JSON-friendly apart from attachment content):

- ``from``: one display string, ``"Jane Doe <jane@example.com>"`` or ``"jane@example.com"``;
  ``to``, ``cc``, ``reply_to``: lists of such strings (names with specials are quoted, so each
  string can be handed back to ``build_message``).
- ``message_id``, ``in_reply_to``: ``"<id@host>"`` (with brackets) or ``""``; ``references``: a
  list of such ids.
- ``date``: ISO 8601 in UTC (``"2024-03-01T09:30:00+00:00"``) when parseable, else the header
  text as it came, ``""`` when missing.
- ``subject`` and header values: decoded, unfolded, control characters replaced by spaces.
- ``headers``: ``[[name, value], ...]`` in message order, duplicates kept.
- ``text``: the first inline text/plain body, or a plain rendering of the HTML body when there is
  none; ``html``: the first inline text/html body or ``""``. Line ends are ``\\n``.
- ``attachments``: every other leaf part (attached files, inline images, further text parts,
  attached messages as ``message/rfc822``), each ``{filename, content_type, size, content}`` with
  ``content`` as ``bytes`` (an attached message byte for byte as it was attached). ``content`` is
  ``None`` when ``include_attachments`` is false (metadata only), and
  also when the part is larger than ``max_attachment_bytes``, which adds
  ``skipped: "larger than N bytes"``. A part without a file name is named ``part-N.ext``.
- ``size``: ``len(raw)``; ``flags``: a list of str; ``defects``: a list of str.
"""

from __future__ import annotations

import base64
import binascii
import codecs
import html as html_entities
import ipaddress
import mimetypes
import re
from collections.abc import Iterable, Iterator, Mapping
from dataclasses import dataclass
from datetime import UTC, datetime
from email.headerregistry import Address, HeaderRegistry
from email.message import EmailMessage, Message
from email.parser import BytesParser
from email.policy import SMTP, Compat32
from email.utils import format_datetime, getaddresses, make_msgid, parsedate_to_datetime
from functools import lru_cache
from typing import Any, cast

from connectors.email import setaside, wire
from connectors.email.setaside import MARKER, MARKERS, Run, SetAside, StreamedMessage

RECORD_KEYS = (
    "uid",
    "uidvalidity",
    "folder",
    "message_id",
    "in_reply_to",
    "references",
    "date",
    "from",
    "to",
    "cc",
    "reply_to",
    "subject",
    "text",
    "html",
    "headers",
    "attachments",
    "size",
    "flags",
    "defects",
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

# A hostile message can carry thousands of broken parts; the engine logs the list, so cap it.
_MAX_DEFECTS = 100


# ---------------------------------------------------------------------------------------------
# Reading


class _RawHeaders(Compat32):
    """compat32 that hands header values back as they arrived (folds, 8-bit bytes and all).

    All header decoding then happens in this module, where it is lenient and cannot raise.
    """

    def header_fetch_parse(self, name: str, value: str) -> str:
        return value


class _Part(Message):
    """A parsed part that gives its body exactly as it arrived.

    ``Message.get_payload()`` decodes an 8-bit body with its declared charset, lossily, and raises
    when that charset label holds 8-bit bytes; ``get_payload(decode=True)`` applies the stdlib's
    own base64 repair. Neither is what we want, so nothing here calls ``get_payload``.
    """

    def get_content_type(self) -> str:
        # The parser asks this to decide whether to descend into a part. Kept out of message/*
        # parts, it leaves their bytes alone, so an attached message comes back byte for byte
        # instead of being re-serialised (which the stdlib cannot do for every hostile message).
        content_type = super().get_content_type()
        return "application/octet-stream" if content_type.startswith("message/") else content_type

    def get_boundary(self, failobj: Any = None) -> Any:
        # The parser calls this too; the stdlib's RFC 2231 decoding raises on some parameter
        # mixes. No boundary is a case we repair from the body.
        try:
            return super().get_boundary(failobj)
        except (TypeError, ValueError):
            return failobj

    def children(self) -> list[_Part] | None:
        """The sub-parts of a multipart part, None for a leaf."""
        return self._payload if isinstance(self._payload, list) else None

    # The runs set aside before parsing (see ``setaside``); None when none.
    set_aside: SetAside | None = None

    def raw_body(self) -> bytes:
        """The body before any transfer decoding, exactly as it arrived."""
        payload = self._payload
        if not isinstance(payload, str):
            return b""
        if self.set_aside is not None and MARKER in payload:
            return self.set_aside.restore(payload)
        # The bytes parser maps every non-ASCII byte to a lone surrogate; this maps them back.
        return payload.encode("ascii", "surrogateescape")

    def set_aside_body(self) -> Run | None:
        """The body's run when the body is one set-aside run and nothing else."""
        payload = self._payload
        if self.set_aside is None or not isinstance(payload, str):
            return None
        found = MARKERS.fullmatch(payload.strip())
        return self.set_aside.run(int(found.group(1))) if found else None


_PARSE_POLICY = _RawHeaders(message_factory=_Part)


class _Defects:
    """What was repaired, in order, once each, at most ``_MAX_DEFECTS`` of them."""

    def __init__(self) -> None:
        self._seen: dict[str, None] = {}
        self._dropped = 0

    def add(self, text: str) -> None:
        if text in self._seen:
            return
        if len(self._seen) < _MAX_DEFECTS:
            self._seen[text] = None
        else:
            self._dropped += 1

    def as_list(self) -> list[str]:
        items = list(self._seen)
        if self._dropped:
            items.append(f"{self._dropped} more defects not listed")
        return items


def parse_message(
    raw: bytes | StreamedMessage,
    *,
    uid: int,
    uidvalidity: int,
    folder: str,
    flags: Iterable[str | bytes] = (),
    include_attachments: bool = True,
    max_attachment_bytes: int | None = None,
) -> dict[str, Any]:
    """The Read Email record (SPEC §3, plus ``defects``) of one raw message; never raises.

    ``raw`` is the message's bytes, or the ``StreamedMessage`` it was downloaded into. ``flags`` may
    be str or bytes (imapclient gives bytes). See the module docstring for the type of every key.
    """
    if isinstance(raw, StreamedMessage):
        size = raw.size
        collapsed, runs = raw.finish()
    else:
        size = len(raw)
        collapsed, runs = setaside.set_aside(bytes(raw))
    del raw
    defects = _Defects()
    if not collapsed.strip():  # markers stand for runs of text: collapsed is empty only when raw was
        defects.add("message: empty")
    msg, complete = _parse(collapsed, runs)
    if not complete:
        defects.add("message: MIME nesting too deep to follow (the body is read as text)")
    headers = _read_headers(msg, defects)
    content = _read_content(msg, complete, defects, include_attachments, max_attachment_bytes)
    return {
        "uid": uid,
        "uidvalidity": uidvalidity,
        "folder": folder,
        "message_id": next(iter(_message_ids(headers.first("Message-ID"))), ""),
        "in_reply_to": next(iter(_message_ids(headers.first("In-Reply-To"))), ""),
        "references": _message_ids(headers.first("References")),
        "date": _read_date(headers.first("Date"), defects),
        "from": next(iter(_read_addresses([headers.first("From")], "From", defects)), ""),
        "to": _read_addresses(headers.all("To"), "To", defects),
        "cc": _read_addresses(headers.all("Cc"), "Cc", defects),
        "reply_to": _read_addresses(headers.all("Reply-To"), "Reply-To", defects),
        "subject": _decode_header_value(headers.first("Subject"), "Subject", defects),
        "text": content.text,
        "html": content.html,
        "headers": headers.decoded,
        "attachments": content.attachments,
        "size": size,
        "flags": [f.decode("utf-8", "replace") if isinstance(f, bytes) else str(f) for f in flags],
        "defects": defects.as_list(),
    }


def _parse(collapsed: bytes, set_aside: SetAside | None) -> tuple[_Part, bool]:
    """The parsed message, and whether its whole structure could be followed."""
    parser = BytesParser(policy=_PARSE_POLICY)
    try:
        msg, complete = cast(_Part, parser.parsebytes(collapsed)), True
    except RecursionError:
        # The parser recurses once per nesting level; thousands of levels are an attack, not mail.
        msg, complete = cast(_Part, parser.parsebytes(collapsed, headersonly=True)), False
    if set_aside is not None:
        _hand_out(msg, set_aside)
    return msg, complete


def _hand_out(msg: Message, set_aside: SetAside) -> None:
    """Give every part of the tree the runs its body may name; put them back in preambles and epilogues."""

    def restore(text: Any) -> Any:
        if isinstance(text, str) and MARKER in text:
            return set_aside.restore(text).decode("ascii", "surrogateescape")
        return text

    stack = [msg]
    while stack:
        part = stack.pop()
        if isinstance(part._payload, list):
            stack.extend(p for p in part._payload if isinstance(p, Message))
        else:
            part.set_aside = set_aside
        part.preamble = restore(part.preamble)
        part.epilogue = restore(part.epilogue)


# --- headers


class _Headers:
    """The top-level headers: each value 8-bit-decoded and unfolded once, looked up by name.

    Looking one up notes a duplicate: RFC 5322 allows one of each header the record reads.
    """

    def __init__(self, pairs: list[tuple[str, str]], decoded: list[list[str]], defects: _Defects) -> None:
        self._values: dict[str, list[str]] = {}
        for name, value in pairs:
            self._values.setdefault(name.strip().lower(), []).append(value)
        self.decoded = decoded
        self._defects = defects

    def all(self, name: str) -> list[str]:
        values = self._values.get(name.lower(), [])
        if len(values) > 1:
            self._defects.add(f"{name}: {len(values)} headers (all of them are used)")
        return values

    def first(self, name: str) -> str:
        values = self._values.get(name.lower(), [])
        if len(values) > 1:
            self._defects.add(f"{name}: {len(values)} headers (the first is used)")
        return values[0] if values else ""


def _read_headers(msg: Message, defects: _Defects) -> _Headers:
    pairs: list[tuple[str, str]] = []
    decoded: list[list[str]] = []
    for raw_name, raw_value in msg.items():
        name = _clean(_unraw(raw_name, "header name", defects), "header name", defects)
        where = name[:60]  # a hostile name can be megabytes long; defects quote it
        value = _unraw(raw_value, where, defects)
        pairs.append((name, value))
        decoded.append([name, _decode_header_value(value, where, defects)])
    return _Headers(pairs, decoded, defects)


_FOLD = re.compile(r"\r?\n(?=[ \t])")
_CONTROL = re.compile(r"[\x00-\x08\x0a-\x1f\x7f]")
_CONTROL_TO_SPACE = {c: " " for c in [*range(0x00, 0x09), *range(0x0A, 0x20), 0x7F]}


def _unraw(value: str, where: str, defects: _Defects) -> str:
    """A raw header value as text: 8-bit bytes decoded, folds removed, encoded words still encoded."""
    if not value.isascii():
        value = _decode_unlabelled(value.encode("ascii", "surrogateescape"), where, defects)
    return _FOLD.sub("", value)


def _clean(text: str, where: str, defects: _Defects) -> str:
    """No control characters: an encoded CR LF in a subject must not become header injection downstream."""
    if _CONTROL.search(text):
        defects.add(f"{where}: control characters replaced by spaces")
        text = text.translate(_CONTROL_TO_SPACE)
    return text.strip()


def _decode_header_value(value: str, where: str, defects: _Defects) -> str:
    return _clean(_decode_words(value, where, defects), where, defects)


# Lenient on purpose: spaces inside the encoded text (a common bug) and any charset label.
_ENCODED_WORD = re.compile(r"=\?([^?\s]{1,64})\?([bBqQ])\?([^?]*)\?=")


def _decode_words(text: str, where: str, defects: _Defects) -> str:
    """Decode the RFC 2047 encoded words of an unfolded header value."""
    if "=?" not in text:
        return text
    out: list[str] = []
    pending_charset = ""
    pending = bytearray()

    def flush() -> None:
        if pending_charset:
            out.append(_decode_labelled(bytes(pending), pending_charset, where, defects))
        pending.clear()

    position = 0
    for match in _ENCODED_WORD.finditer(text):
        between = text[position : match.start()]
        # Whitespace between two encoded words is not part of the text (RFC 2047 §6.2).
        follows_a_word = pending_charset and not between.strip()
        if not follows_a_word:
            flush()
            pending_charset = ""
            out.append(between)
        charset = match.group(1).split("*", 1)[0]  # RFC 2231 adds "*language"
        encoded = match.group(3).encode("utf-8", "replace")
        if match.group(2) in "bB":
            data, problem = _b64decode(encoded)
            if problem:
                defects.add(f"{where}: {problem} in an encoded word")
        else:
            data = binascii.a2b_qp(encoded, header=True)
        # Adjacent words in one charset are joined before decoding: a character may span two.
        if charset.lower() != pending_charset.lower():
            flush()
            pending_charset = charset
        pending.extend(data)
        position = match.end()
    flush()
    out.append(text[position:])
    return "".join(out)


# --- addresses, ids, date


_SPECIALS = re.compile(r'[()<>@,;:\\".\[\]]')


def _read_addresses(values: list[str], where: str, defects: _Defects) -> list[str]:
    """Display strings of the addresses in header values (8-bit decoded, encoded words still encoded)."""
    if not values:
        return []
    # Split before decoding: a decoded display name may contain a comma or angle brackets.
    found: list[str] = []
    for name, addr in getaddresses(values):
        name = _decode_header_value(name, where, defects)
        addr = _clean(addr, where, defects)
        if addr or name:
            found.append(_display(name, addr))
    # Nothing without an "@" is lost: that is an empty group such as "undisclosed-recipients:;".
    if not found and any("@" in v for v in values):
        defects.add(f"{where}: no address could be read (the header text is kept)")
        found = [_decode_header_value(", ".join(values), where, defects)]
    return found


def _display(name: str, addr: str) -> str:
    if not name:
        return addr
    if _SPECIALS.search(name):
        name = '"' + name.replace("\\", "\\\\").replace('"', '\\"') + '"'
    return f"{name} <{addr}>" if addr else name


_MESSAGE_ID = re.compile(r"<[^<>\s]+>")


def _message_ids(value: str) -> list[str]:
    """The ids in a Message-ID / In-Reply-To / References value, each as ``<id>``."""
    ids = _MESSAGE_ID.findall(value)
    if not ids:  # some mailers leave the brackets out
        ids = [f"<{token}>" for token in (t.strip("<>") for t in value.split()) if token]
    return [i for i in ids if i.isprintable()]


def _read_date(value: str, defects: _Defects) -> str:
    if not value.strip():
        return ""
    text = _decode_header_value(value, "Date", defects)
    try:
        moment = parsedate_to_datetime(text)
        # "-0000" means "zone unknown" and gives a naive datetime; UTC is the honest reading.
        moment = moment.replace(tzinfo=UTC) if moment.tzinfo is None else moment.astimezone(UTC)
    except (TypeError, ValueError, IndexError, OverflowError):
        defects.add("Date: not a valid date (kept as text)")
        return text
    return moment.isoformat()


# --- content


@dataclass
class _Content:
    text: str
    html: str
    attachments: list[dict[str, Any]]


def _read_content(
    msg: _Part, complete: bool, defects: _Defects, include_attachments: bool, max_attachment_bytes: int | None
) -> _Content:
    text: str | None = None
    html: str | None = None
    attachments: list[dict[str, Any]] = []
    for number, (where, part, content_type) in enumerate(_leaves(msg, complete, defects), 1):
        filename = _filename(part, where, defects)
        data = _transfer_decode(part, where, defects)
        inline_body = not filename and _disposition(part) != "attachment"
        if inline_body and content_type == "text/plain" and text is None:
            text = _body_text(data, part, content_type, where, defects)
            continue
        if inline_body and content_type == "text/html" and html is None:
            html = _body_text(data, part, content_type, where, defects)
            continue
        attachment: dict[str, Any] = {
            "filename": filename or f"part-{number}{_extension(content_type)}",
            "content_type": content_type,
            "size": len(data),
            "content": data if include_attachments else None,
        }
        if include_attachments and max_attachment_bytes is not None and len(data) > max_attachment_bytes:
            attachment["content"] = None
            attachment["skipped"] = f"larger than {max_attachment_bytes} bytes"
        attachments.append(attachment)
    html = html or ""
    if text is None:
        text = html_to_text(html) if html else ""
    return _Content(text=text, html=html, attachments=attachments)


def _leaves(msg: _Part, repair: bool, defects: _Defects) -> Iterator[tuple[str, _Part, str]]:
    """``(where, part, content type)`` of every leaf part in document order.

    Iterative on purpose: the tree can be as deep as the parser managed to go. ``repair`` is off
    when the parser gave up on the nesting: re-parsing would only hit the same wall, slowly.
    """
    stack: list[tuple[str, _Part]] = [("", msg)]
    while stack:
        path, part = stack.pop()
        where = f"part {path}" if path else "message"
        for defect in part.defects:
            defects.add(f"{where}: {_defect_text(defect)}")
        content_type = _content_type(part, where, defects)
        children = part.children()
        if children is not None:
            stack.extend(reversed([(f"{path}.{i}" if path else str(i), c) for i, c in enumerate(children, 1)]))
            continue
        if content_type.startswith("multipart/"):
            repaired = _repair_multipart(part, content_type) if repair else None
            if repaired is not None:
                defects.add(f"{where}: {content_type} boundary missing or wrong (guessed from the body)")
                stack.append((path, repaired))
                continue
            defects.add(f"{where}: {content_type} without a usable boundary (read as text/plain)")
            content_type = "text/plain"
        yield where, part, content_type


def _defect_text(defect: Exception) -> str:
    doc = (type(defect).__doc__ or "").strip().splitlines()
    return doc[0].rstrip(".") if doc else type(defect).__name__


_TYPE = re.compile(r"\s*([A-Za-z0-9!#$&^_.+-]+)\s*/\s*([A-Za-z0-9!#$&^_.+-]+)")


def _content_type(part: Message, where: str, defects: _Defects) -> str:
    raw = part.get("content-type")
    if raw is None:
        return part.get_default_type()
    match = _TYPE.match(_unraw(raw, where, defects))
    if not match:
        defects.add(f"{where}: invalid Content-Type (read as text/plain)")
        return "text/plain"
    return f"{match.group(1)}/{match.group(2)}".lower()


# RFC 2046 boundary characters; the first delimiter line of the body gives the boundary away.
_BOUNDARY_LINE = re.compile(rb"^--([0-9A-Za-z'()+_,./:=?-][0-9A-Za-z'()+_,./:=? -]{0,69})[ \t]*\r?$", re.M)


def _repair_multipart(part: _Part, content_type: str) -> _Part | None:
    """The multipart re-parsed with a boundary guessed from its body, or None."""
    body = part.raw_body()
    match = _BOUNDARY_LINE.search(body)
    if not match:
        return None
    head = b'Content-Type: %s; boundary="%s"\r\n\r\n' % (content_type.encode(), match.group(1).rstrip())
    repaired, complete = _parse(*setaside.set_aside(head + body))
    return repaired if complete and repaired.children() is not None else None


def _param(part: Message, name: str, header: str, where: str, defects: _Defects) -> str | None:
    """A MIME parameter decoded by RFC 2231 or RFC 2047, whichever it uses, or None."""
    try:
        value = part.get_param(name, header=header)
    except (TypeError, ValueError):  # the stdlib trips on some mixes of RFC 2231 continuations
        defects.add(f"{where}: unreadable {header} parameters")
        return None
    if value is None:
        return None
    if isinstance(value, tuple):  # RFC 2231: (charset, language, percent-decoded text)
        charset, _language, text = value
        data = text.encode("latin-1", "surrogateescape")
        return _decode_labelled(data, charset or "", where, defects)
    return _decode_words(_unraw(value, where, defects), where, defects)


def _filename(part: Message, where: str, defects: _Defects) -> str:
    name = _param(part, "filename", "Content-Disposition", where, defects)
    if not name:
        name = _param(part, "name", "Content-Type", where, defects)
    return _clean(name or "", f"{where} file name", defects)


def _disposition(part: Message) -> str:
    value = part.get("content-disposition") or ""
    return value.split(";", 1)[0].strip().lower()


def _extension(content_type: str) -> str:
    return mimetypes.guess_extension(content_type) or ".bin"


def _transfer_decode(part: _Part, where: str, defects: _Defects) -> bytes:
    encoding = (part.get("content-transfer-encoding") or "").split(";", 1)[0].strip().lower()
    if encoding == "base64":
        run = part.set_aside_body()
        decoded = run.decoded() if run is not None else None
        if decoded is not None:
            return decoded
    data = part.raw_body()
    if encoding == "base64":
        data, problem = _b64decode(data)
        if problem:
            defects.add(f"{where}: {problem}")
    elif encoding == "quoted-printable":
        if _BAD_QP.search(data):
            defects.add(f"{where}: invalid quoted-printable escapes (kept as they are)")
        data = binascii.a2b_qp(data)
    elif encoding not in ("", "7bit", "8bit", "binary"):
        defects.add(f"{where}: unknown transfer encoding {encoding[:40]!r} (content kept as it is)")
    return data


_BAD_QP = re.compile(rb"=(?![0-9A-Fa-f]{2}|[ \t]*\r?\n|[ \t]*\Z)")
_B64_ALPHABET = b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/"
_B64_DROP = bytes(sorted(set(range(256)) - set(_B64_ALPHABET + b"=")))
# What may appear in base64 text (bytes.isspace() whitespace included): removing it leaves the junk.
_B64_TEXT = _B64_ALPHABET + b"=" + b" \t\n\r\x0b\x0c"


def _b64decode(data: bytes) -> tuple[bytes, str]:
    """Decode as much base64 as there is; the second item names what was wrong, or is empty."""
    problems = []
    if data.translate(None, _B64_TEXT):
        problems.append("invalid characters in base64 (ignored)")
    # Padding in the middle happens when encoded pieces were concatenated: decode each piece.
    pieces = [p for p in data.translate(None, _B64_DROP).split(b"=") if p]
    if len(pieces) > 1:
        problems.append("base64 padding in the middle (decoded piece by piece)")
    decoded = []
    for piece in pieces:
        if len(piece) % 4 == 1:  # a lone trailing character carries no whole byte
            piece = piece[:-1]
            problems.append("base64 cut short (content may be truncated)")
        decoded.append(binascii.a2b_base64(piece + b"=" * (-len(piece) % 4)))
    return b"".join(decoded), "; ".join(dict.fromkeys(problems))


_META_CHARSET = re.compile(rb"""<meta[^>]{0,200}?charset\s*=\s*["']?\s*([A-Za-z0-9._:-]{1,40})""", re.I)


def _body_text(data: bytes, part: Message, content_type: str, where: str, defects: _Defects) -> str:
    charset = _param(part, "charset", "Content-Type", where, defects)
    if not charset and content_type == "text/html" and not data.isascii():
        found = _META_CHARSET.search(data, 0, 4096)
        charset = found.group(1).decode("ascii") if found else None
    text = _decode_labelled(data, charset or "", where, defects)
    if "\x00" in text:  # PostgreSQL cannot store NUL in text
        defects.add(f"{where}: NUL characters replaced")
        text = text.replace("\x00", "\ufffd")
    return text.removeprefix("\ufeff").replace("\r\n", "\n")


# --- charsets


# Labels Python does not know, and labels whose real-world content is a superset (WHATWG reading).
_CHARSET_ALIASES = {
    "x-user-defined": "cp1252",
    "x-mac-roman": "mac-roman",
    "windows-874": "cp874",
    "iso-8859-8-i": "iso8859-8",
    "unicode-1-1-utf-8": "utf-8",
}
_SUPERSETS = {
    "gb2312": "gb18030",
    "gbk": "gb18030",
    "euc_kr": "cp949",
    "shift_jis": "cp932",
    "big5": "big5hkscs",
    "iso8859-1": "cp1252",
}
# "No charset" in practice: RFC 2045's default, and labels that only say "8-bit something".
_UNLABELLED = {"", "unknown-8bit", "x-unknown-8bit", "8bit", "default"}
# Python text codecs that read backslash escapes rather than a charset (others fail the probe below).
_NOT_CHARSETS = {"unicode-escape", "raw-unicode-escape"}
_CHARSET_LABEL = re.compile(r"[a-z0-9._:+()-]{1,40}")


@lru_cache(maxsize=256)
def _codec(label: str) -> str | None:
    """The codec for a charset label: ``""`` means "no real label", None means unknown."""
    label = label.strip().strip("\"'").strip().lower()
    if label in _UNLABELLED:
        return ""
    if not _CHARSET_LABEL.fullmatch(label):
        return None
    label = _CHARSET_ALIASES.get(label, label)
    try:
        name = codecs.lookup(label).name
        # Bytes-to-bytes codecs (base64, zlib...) and idna, punycode, undefined refuse here.
        b"\x80a".decode(name, "replace")
    except (LookupError, UnicodeError):
        return None
    if name in _NOT_CHARSETS:
        return None
    return "" if name == "ascii" else _SUPERSETS.get(name, name)


def _decode_labelled(data: bytes, label: str, where: str, defects: _Defects) -> str:
    codec = _codec(label)
    if codec == "":
        return _decode_unlabelled(data, where, defects)
    if codec is None:
        defects.add(f"{where}: unknown charset {label[:40]!r} (read as utf-8 with replacement characters)")
        return data.decode("utf-8", "replace")
    try:
        return data.decode(codec)
    except UnicodeDecodeError:
        if codec == "cp1252":  # five bytes are undefined in windows-1252 but not in latin-1
            return data.decode("latin-1")
        defects.add(f"{where}: bytes not valid in {label[:40]!r} (replacement characters used)")
        return data.decode(codec, "replace")


def _decode_unlabelled(data: bytes, where: str, defects: _Defects) -> str:
    """Bytes with no (real) charset: UTF-8 if they are, else windows-1252 as mailers mean it."""
    try:
        return data.decode("utf-8")
    except UnicodeDecodeError:
        pass
    defects.add(f"{where}: 8-bit text that is not utf-8 and has no charset (read as windows-1252)")
    return _decode_labelled(data, "cp1252", where, defects)


# --- HTML to text


# Not "head": a missing </head> would swallow the whole document.
_SKIP_CONTENT = {"script", "style", "title", "template"}
_CLOSERS = {name: re.compile(rf"</{name}\b", re.I) for name in _SKIP_CONTENT}
_LINE_TAGS = {
    "p", "div", "br", "tr", "table", "ul", "ol", "h1", "h2", "h3", "h4", "h5", "h6",
    "blockquote", "pre", "hr", "section", "article", "header", "footer", "dl", "dt", "dd",
}  # fmt: skip
_TAG = re.compile(r"<(/?)([A-Za-z][A-Za-z0-9:-]*)[^<>]*>|<[!?][^<>]*>")
_SPACES = re.compile(r"[ \t\r\n\f\v\xa0]+")
_BLANK_LINES = re.compile(r"\n{3,}")


def html_to_text(html: str) -> str:
    """A plain reading of HTML: tags dropped, blocks on their own lines, entities decoded.

    Written as one forward scan so hostile HTML (unclosed tags, a million ``<``) stays linear.
    """
    out: list[str] = []
    position, end = 0, len(html)
    while position < end:
        start = html.find("<", position)
        if start < 0:
            out.append(_SPACES.sub(" ", html[position:]))
            break
        out.append(_SPACES.sub(" ", html[position:start]))
        if html.startswith("<!--", start):
            close = html.find("-->", start + 4)
            position = end if close < 0 else close + 3
            continue
        match = _TAG.match(html, start)
        if not match:  # a "<" that opens no tag is text
            out.append("<")
            position = start + 1
            continue
        position = match.end()
        closing, name = match.group(1), (match.group(2) or "").lower()
        if name in _SKIP_CONTENT and not closing:
            close = _CLOSERS[name].search(html, position)
            position = end if close is None else close.start()
        elif name == "li" and not closing:
            out.append("\n- ")
        elif name in _LINE_TAGS or name == "li":
            out.append("\n")
        elif name in ("td", "th") and closing:
            out.append(" ")
    text = html_entities.unescape("".join(out)).replace("\xa0", " ")
    lines = (line.strip() for line in text.split("\n"))
    return _BLANK_LINES.sub("\n\n", "\n".join(lines)).strip()


# ---------------------------------------------------------------------------------------------
# Building


class InvalidMessage(ValueError):
    """A Send Email record that cannot be sent: ``field`` names the culprit, ``reason`` says why."""

    def __init__(self, field: str, reason: str) -> None:
        super().__init__(f"{field}: {reason}")
        self.field = field
        self.reason = reason


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


@dataclass(frozen=True)
class _Mailbox:
    name: str
    local: str
    domain: str

    @property
    def address(self) -> str:
        return f"{self.local}@{self.domain}"


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
_LINE_BREAK = re.compile(r"[\r\n\x0b\x0c\x1c-\x1e\x85\u2028\u2029]")
_SURROGATE = re.compile("[\ud800-\udfff]")
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
_COMPRESSED = {"gzip": "application/gzip", "bzip2": "application/x-bzip2", "xz": "application/x-xz"}


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
    senders = _mailboxes("from", fields["from"])
    if len(senders) != 1:
        raise InvalidMessage("from", "one sender address is required" if not senders else "only one address allowed")
    to, cc, bcc = (_mailboxes(name, fields[name]) for name in ("to", "cc", "bcc"))
    if not (to or cc or bcc):
        raise InvalidMessage("to", "at least one recipient is required (in to, cc or bcc)")
    reply_to = _mailboxes("reply_to", fields["reply_to"])
    subject = _header_text("subject", fields["subject"])
    in_reply_to = _outgoing_ids("in_reply_to", fields["in_reply_to"])
    references = _outgoing_ids("references", fields["references"])
    custom = _custom_headers(fields["headers"])
    text = _body("text", fields["text"])
    html = _body("html", fields["html"])
    attachments = _attachments(fields["attachments"])
    domain = _ascii_domain(message_id_domain.strip()) if isinstance(message_id_domain, str) else None
    if not domain:
        raise InvalidMessage("message_id_domain", f"{message_id_domain!r} is not a valid domain")

    message = EmailMessage(policy=_SEND_POLICY)
    message_id = make_msgid(domain=domain)
    message["Message-ID"] = message_id
    message["Date"] = format_datetime(datetime.now(UTC))
    message["From"] = _address(senders[0])
    for header, mailboxes in (("To", to), ("Cc", cc), ("Reply-To", reply_to)):
        if mailboxes:
            message[header] = [_address(m) for m in mailboxes]
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
    for index, (filename, content_type, _data) in enumerate(attachments):
        maintype, subtype = content_type.split("/")
        # Encoded while it is sent (``wire``): the part holds a placeholder meanwhile.
        message.add_attachment(b"", maintype=maintype, subtype=subtype, filename=filename)
        message.get_payload()[-1].set_payload(wire.placeholder(token, index))

    recipients: dict[str, str] = {}
    for mailbox in (*to, *cc, *bcc):
        recipients.setdefault(mailbox.address.lower(), mailbox.address)
    return OutgoingMessage(
        message=message, sender=senders[0].address, recipients=list(recipients.values()), message_id=message_id,
        attachments=tuple(data for _filename, _type, data in attachments), placeholder_token=token,
    )


def _merge(record: Mapping[str, Any], defaults: Mapping[str, Any]) -> dict[str, Any]:
    return {f: defaults.get(f) if _is_empty(record.get(f)) else record.get(f) for f in TARGET_FIELDS}


def _is_empty(value: Any) -> bool:
    if isinstance(value, str):
        return not value.strip()
    return value is None or (isinstance(value, (list, tuple, dict)) and not value)


def _header_text(field: str, value: Any) -> str:
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
    # Lone surrogates (from JSON "\\ud800", or bytes decoded with surrogateescape) cannot be encoded.
    if _SURROGATE.search(value):
        raise InvalidMessage(field, "contains characters that are not valid Unicode (lone surrogates)")
    return value


def _mailboxes(field: str, value: Any) -> list[_Mailbox]:
    if value is None:
        return []
    items = [value] if isinstance(value, str) else value
    if not isinstance(items, (list, tuple)):
        raise InvalidMessage(field, "must be an address or a list of addresses")
    found: list[_Mailbox] = []
    for item in items:
        if not isinstance(item, str):
            raise InvalidMessage(field, f"{item!r} is not an address")
        for piece in _split_addresses(_header_text(field, item)):
            # One address per piece, so getaddresses cannot silently drop one ("a@x.org, b@").
            pairs = [(name, addr) for name, addr in getaddresses([piece]) if name or addr]
            mailbox = _mailbox(*pairs[0]) if len(pairs) == 1 else None
            # getaddresses also glues stray words together ("Jane Doe jane@x.org"): insist on what was typed.
            if mailbox is None or pairs[0][1] not in piece:
                raise InvalidMessage(field, f"{piece!r} is not a valid address")
            found.append(mailbox)
    return found


def _split_addresses(text: str) -> list[str]:
    """The comma-separated pieces of an address list, commas in quotes and brackets kept."""
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


_LOCAL_PART = re.compile(r"[A-Za-z0-9!#$%&'*+/=?^_`{|}~-]+(?:\.[A-Za-z0-9!#$%&'*+/=?^_`{|}~-]+)*")
_LABEL = re.compile(r"(?!-)[A-Za-z0-9-]{1,63}(?<!-)")


def _mailbox(name: str, addr: str) -> _Mailbox | None:
    if addr.count("@") != 1:
        return None
    local, domain = addr.split("@")
    if len(local) > 64 or not _LOCAL_PART.fullmatch(local):
        return None
    ascii_domain = _ascii_domain(domain)
    return _Mailbox(name, local, ascii_domain) if ascii_domain else None


def _ascii_domain(domain: str) -> str | None:
    """The domain in ASCII (IDN labels as xn--), or None when it is not a usable domain."""
    if domain.startswith("[") and domain.endswith("]"):
        try:
            ipaddress.ip_address(domain[1:-1].removeprefix("IPv6:"))
        except ValueError:
            return None
        return domain
    try:
        ascii_domain = domain.encode("idna").decode("ascii")
    except UnicodeError:
        return None
    labels = ascii_domain.split(".")
    if len(ascii_domain) > 253 or not all(_LABEL.fullmatch(label) for label in labels):
        return None
    if ascii_domain.lower() != "localhost" and (len(labels) < 2 or labels[-1].isdigit()):
        return None
    return ascii_domain


def _address(mailbox: _Mailbox) -> Address:
    return Address(display_name=mailbox.name, username=mailbox.local, domain=mailbox.domain)


def _outgoing_ids(field: str, value: Any) -> list[str]:
    if value is None:
        return []
    items = [value] if isinstance(value, str) else value
    if not isinstance(items, (list, tuple)):
        raise InvalidMessage(field, "must be a message id or a list of message ids")
    ids = []
    for item in items:
        for token in _header_text(field, item).split():
            core = token[1:-1] if token.startswith("<") and token.endswith(">") else token
            if not core or not core.isprintable() or any(c in core for c in "<> "):
                raise InvalidMessage(field, f"{token!r} is not a message id")
            ids.append(f"<{core}>")
    return ids


def _custom_headers(value: Any) -> list[tuple[str, str | list[Address] | datetime]]:
    """The custom headers, checked, each value ready to assign.

    Headers that the stdlib's registry parses (Sender, Resent-*, Orig-Date) get a parsed value
    here: given as text, its parser would mangle or drop a bad value, or raise on a hostile one.
    """
    if value is None:
        return []
    pairs = list(value.items()) if isinstance(value, Mapping) else value
    if not isinstance(pairs, (list, tuple)) or not all(isinstance(p, (list, tuple)) and len(p) == 2 for p in pairs):
        raise InvalidMessage("headers", "must be a mapping or a list of [name, value] pairs")
    headers: list[tuple[str, str | list[Address] | datetime]] = []
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
    return headers


def _custom_value(lower_name: str, value: Any) -> str | list[Address] | datetime:
    text = _header_text("value", value)
    if lower_name in _ADDRESS_HEADERS:
        return [_address(m) for m in _mailboxes("value", text)]
    if lower_name in _DATE_HEADERS:
        try:
            return parsedate_to_datetime(text)
        except (TypeError, ValueError):
            raise InvalidMessage("value", f"{text!r} is not a date") from None
    return text


def _body(field: str, value: Any) -> str:
    if value is None:
        return ""
    if not isinstance(value, str):
        raise InvalidMessage(field, f"must be text, not {type(value).__name__}")
    return _encodable(field, value)


_MIME_TYPE = re.compile(r"[A-Za-z0-9!#$&^_.+-]+/[A-Za-z0-9!#$&^_.+-]+")


def _attachments(value: Any) -> list[tuple[str, str, bytes]]:
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
        filename = _header_text(f"{field}.filename", filename)
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
