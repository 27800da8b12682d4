"""Raw message in, Read Email record out (SPEC §3): ``parse_message``, which never raises.

The structure is parsed by ``feed``, with a ``compat32`` parser that hands values back raw; decoding
is done by ``decode`` and ``headers``. See the package docstring for the record's types.
"""

from __future__ import annotations

import binascii
import mimetypes
import re
from collections.abc import Iterable, Iterator
from dataclasses import dataclass
from email.message import Message
from email.parser import BytesParser
from functools import lru_cache
from typing import Any, cast

from connectors.conf import setting
from connectors.email.message import setaside
from connectors.email.message.addresses import REMEMBERED_CHARS
from connectors.email.message.decode import (
    Defects,
    b64decode,
    clean,
    decode_header_value,
    decode_labelled,
    decode_words,
    unraw,
)
from connectors.email.message.feed import PARSE_POLICY, Part, parse_text
from connectors.email.message.headers import message_ids, read_addresses, read_date, read_headers
from connectors.email.message.html import html_to_text
from connectors.email.message.setaside import MARKER, SetAside, StreamedMessage

try:
    from django.conf import settings as django_settings
    from django.core.signals import setting_changed
except ImportError:  # read outside Django: ``setting`` gives the defaults
    django_settings = setting_changed = None

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


# Below the size limit a message can still hold a million tiny parts or headers: past these it is
# skipped with the reason rather than read (settings of the same names raise them).
MAX_PARTS = 1000
MAX_HEADERS = 1000
MAX_ATTACHMENTS = 500


class MessageTooComplex(ValueError):
    """A message beyond the structure limits: recorded as skipped with this reason, never read."""


# Reading a setting costs about as much as reading a small message's headers: a limit is read once,
# and again after any setting changes (tests override them); before Django is configured, every time.
_limits: dict[str, int] = {}
if setting_changed is not None:
    setting_changed.connect(lambda **_: _limits.clear(), weak=False)


def _limit(name: str, default: int) -> int:
    if name in _limits:
        return _limits[name]
    value = int(setting(f"MAILWRIGHT_{name}", default))
    if django_settings is not None and django_settings.configured:
        _limits[name] = value
    return value



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
    """The Read Email record (SPEC §3, plus ``defects``) of one raw message.

    Raises only ``MessageTooComplex``, for a message beyond the structure limits.

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
    defects = Defects()
    if not collapsed.strip():  # markers stand for runs of text: collapsed is empty only when raw was
        defects.add("message: empty")
    msg, complete = _parse(collapsed, runs)
    if not complete:
        defects.add("message: MIME nesting too deep to follow (the body is read as text)")
    max_headers = _limit("MAX_HEADERS", MAX_HEADERS)
    if len(msg) > max_headers:
        raise MessageTooComplex(f"the message has {len(msg)} header fields, more than {max_headers}")
    headers = read_headers(msg, defects)
    content = _read_content(msg, complete, defects, include_attachments, max_attachment_bytes)
    return {
        "uid": uid,
        "uidvalidity": uidvalidity,
        "folder": folder,
        "message_id": next(iter(message_ids(headers.first("Message-ID"))), ""),
        "in_reply_to": next(iter(message_ids(headers.first("In-Reply-To"))), ""),
        "references": message_ids(headers.first("References")),
        "date": read_date(headers.first("Date"), defects),
        "from": next(iter(read_addresses([headers.first("From")], "From", defects)), ""),
        "to": read_addresses(headers.all("To"), "To", defects),
        "cc": read_addresses(headers.all("Cc"), "Cc", defects),
        "reply_to": read_addresses(headers.all("Reply-To"), "Reply-To", defects),
        "subject": decode_header_value(headers.first("Subject"), "Subject", defects),
        "text": content.text,
        "html": content.html,
        "headers": headers.decoded,
        "attachments": content.attachments,
        "size": size,
        "flags": [f.decode("utf-8", "replace") if isinstance(f, bytes) else str(f) for f in flags],
        "defects": defects.as_list(),
    }


def _parse(collapsed: bytes, set_aside: SetAside | None) -> tuple[Part, bool]:
    """The parsed message, and whether its whole structure could be followed."""
    try:
        msg, complete = parse_text(collapsed.decode("ascii", "surrogateescape")), True
    except RecursionError:
        # The parser recurses once per nesting level; thousands of levels are an attack, not mail.
        msg = cast(Part, BytesParser(policy=PARSE_POLICY).parsebytes(collapsed, headersonly=True))
        complete = False
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


@dataclass
class _Content:
    text: str
    html: str
    attachments: list[dict[str, Any]]


def _read_content(
    msg: Part, complete: bool, defects: Defects, include_attachments: bool, max_attachment_bytes: int | None
) -> _Content:
    text: str | None = None
    html: str | None = None
    attachments: list[dict[str, Any]] = []
    max_parts, max_attachments = _limit("MAX_PARTS", MAX_PARTS), _limit("MAX_ATTACHMENTS", MAX_ATTACHMENTS)
    for number, (where, part, content_type) in enumerate(_leaves(msg, complete, defects), 1):
        if number > max_parts:
            raise MessageTooComplex(f"the message has more than {max_parts} MIME parts")
        params = _Params(part, where, defects)
        filename = _filename(params, where, defects)
        data = _transfer_decode(part, where, defects)
        inline_body = not filename and _disposition(part) != "attachment"
        if inline_body and content_type == "text/plain" and text is None:
            text = _body_text(data, params, content_type, where, defects)
            continue
        if inline_body and content_type == "text/html" and html is None:
            html = _body_text(data, params, content_type, where, defects)
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
        if len(attachments) > max_attachments:
            raise MessageTooComplex(f"the message has more than {max_attachments} attachments")
    html = html or ""
    if text is None:
        text = html_to_text(html) if html else ""
    return _Content(text=text, html=html, attachments=attachments)


def _leaves(msg: Part, repair: bool, defects: Defects) -> Iterator[tuple[str, Part, str]]:
    """``(where, part, content type)`` of every leaf part in document order.

    Iterative on purpose: the tree can be as deep as the parser managed to go. ``repair`` is off
    when the parser gave up on the nesting: re-parsing would only hit the same wall, slowly.
    """
    stack: list[tuple[str, Part]] = [("", msg)]
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


def _content_type(part: Message, where: str, defects: Defects) -> str:
    raw = part.get("content-type")
    if raw is None:
        return part.get_default_type()
    match = _TYPE.match(unraw(raw, where, defects))
    if not match:
        defects.add(f"{where}: invalid Content-Type (read as text/plain)")
        return "text/plain"
    return f"{match.group(1)}/{match.group(2)}".lower()


# RFC 2046 boundary characters; the first delimiter line of the body gives the boundary away.
_BOUNDARY_LINE = re.compile(rb"^--([0-9A-Za-z'()+_,./:=?-][0-9A-Za-z'()+_,./:=? -]{0,69})[ \t]*\r?$", re.M)


def _repair_multipart(part: Part, content_type: str) -> Part | None:
    """The multipart re-parsed with a boundary guessed from its body, or None."""
    body = part.raw_body()
    match = _BOUNDARY_LINE.search(body)
    if not match:
        return None
    head = b'Content-Type: %s; boundary="%s"\r\n\r\n' % (content_type.encode(), match.group(1).rstrip())
    repaired, complete = _parse(*setaside.set_aside(head + body))
    return repaired if complete and repaired.children() is not None else None


class _Params:
    """The MIME parameters of one part, each header's parsed once (on first use) however many are read."""

    def __init__(self, part: Message, where: str, defects: Defects) -> None:
        self._part = part
        self._where = where
        self._defects = defects
        self._parsed: dict[str, dict[str, Any] | None] = {}

    def get(self, name: str, header: str) -> str | None:
        """A parameter decoded by RFC 2231 or RFC 2047, whichever it uses, or None."""
        if header not in self._parsed:
            self._parsed[header] = self._parse(header)
        value = (self._parsed[header] or {}).get(name)
        if value is None:
            return None
        if isinstance(value, tuple):  # RFC 2231: (charset, language, percent-decoded text)
            charset, _language, text = value
            data = text.encode("latin-1", "surrogateescape")
            return decode_labelled(data, charset or "", self._where, self._defects)
        return decode_words(unraw(value, self._where, self._defects), self._where, self._defects)

    def _parse(self, header: str) -> dict[str, Any] | None:
        value = self._part.get(header)
        if value is None:
            return {}
        params = _read_params(value) if len(value) > REMEMBERED_CHARS else _remembered_params(value)
        if params is None:
            self._defects.add(f"{self._where}: unreadable {header} parameters")
        return params


def _read_params(value: str) -> dict[str, Any] | None:
    """``Message.get_params()`` of a header with this value, the first of each name by its name in
    lowercase; None when the stdlib cannot read them.
    """
    holder = Message(policy=PARSE_POLICY)
    holder.set_raw("Content-Type", value)
    try:
        params = holder.get_params()
    except (TypeError, ValueError):  # the stdlib trips on some mixes of RFC 2231 continuations
        return None
    by_name: dict[str, Any] = {}
    for name, param in params:
        by_name.setdefault(name.lower(), param)
    return by_name


# The same few Content-Type values come back message after message; longer values (a hostile
# message's megabyte of parameters) are read but not remembered. What is remembered is shared, never changed.
_remembered_params = lru_cache(maxsize=1024)(_read_params)


def _filename(params: _Params, where: str, defects: Defects) -> str:
    name = params.get("filename", "Content-Disposition")
    if not name:
        name = params.get("name", "Content-Type")
    return clean(name or "", f"{where} file name", defects)


def _disposition(part: Message) -> str:
    value = part.get("content-disposition") or ""
    return value.split(";", 1)[0].strip().lower()


def _extension(content_type: str) -> str:
    return mimetypes.guess_extension(content_type) or ".bin"


def _transfer_decode(part: Part, where: str, defects: Defects) -> bytes:
    encoding = (part.get("content-transfer-encoding") or "").split(";", 1)[0].strip().lower()
    if encoding == "base64":
        run = part.set_aside_body()
        decoded = run.decoded() if run is not None else None
        if decoded is not None:
            return decoded
    data = part.raw_body()
    if encoding == "base64":
        data, problem = b64decode(data)
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
_META_CHARSET = re.compile(rb"""<meta[^>]{0,200}?charset\s*=\s*["']?\s*([A-Za-z0-9._:-]{1,40})""", re.I)


def _body_text(data: bytes, params: _Params, content_type: str, where: str, defects: Defects) -> str:
    charset = params.get("charset", "Content-Type")
    if not charset and content_type == "text/html" and not data.isascii():
        found = _META_CHARSET.search(data, 0, 4096)
        charset = found.group(1).decode("ascii") if found else None
    text = decode_labelled(data, charset or "", where, defects)
    if "\x00" in text:  # PostgreSQL cannot store NUL in text
        defects.add(f"{where}: NUL characters replaced")
        text = text.replace("\x00", "\ufffd")
    text = text.removeprefix("\ufeff")
    # Looking for a lone CR is a fast scan; looking for CR LF stops at every LF of the body, which
    # costs more than decoding it.
    return text.replace("\r\n", "\n") if "\r" in text else text
