"""An outgoing message as the bytes SMTP DATA carries, produced piece by piece.

``build_message`` leaves every attachment out of the ``EmailMessage``: the part carries a
placeholder line and the attachment's bytes travel beside it. Here the message is flattened once
(headers, text, HTML, MIME structure: small), split at the placeholders, and each attachment is
base64-encoded a slice at a time while it is being sent. Memory for a message is then its
attachments' bytes once, not their bytes plus the base64 text plus the flattened message plus
smtplib's dot-stuffed copy of it.

The pieces are those of ``message.as_bytes()`` with the attachments set as the email package sets
them (tested byte for byte): CRLF line ends, 76 base64 characters a line. The messages
``build_message`` makes (text payloads in ASCII, headers stored in wire form, multiparts with
``multipart_type``'s boundary) are written here directly, as the generator would write them; anything
else goes through the generator.
"""

from __future__ import annotations

import re
import secrets
from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from email.generator import NLCRE, BytesGenerator
from email.message import Message
from io import BytesIO

from connectors.email.message.codec import LINE, encode_lines

_INPUT_PER_LINE = LINE // 4 * 3
# Bytes encoded at a time while sending, ~20 KB on the wire: each sender holds a few such slices and
# their lines while it writes, so a larger slice shows in the run's peak memory beside a large message.
_INPUT_PER_SLICE = _INPUT_PER_LINE * 256


def multipart_type(subtype: str) -> str:
    """The Content-Type of a multipart with a boundary of its own: 128 random bits cannot occur in
    the parts by chance, and "=_" cannot occur in quoted-printable or base64 text at all."""
    return f'multipart/{subtype};\r\n boundary="=_{secrets.token_hex(16)}"'


_OWN_MULTIPART = re.compile(r'multipart/(?:mixed|alternative);\r\n boundary="(=_[0-9a-f]+)"')


def new_placeholder_token() -> str:
    """A token no text of the message can contain by chance, so no text can pose as an attachment."""
    return secrets.token_hex(16)


def placeholder(token: str, index: int) -> str:
    """The payload an attachment part holds until it is sent (one line)."""
    return f"{token}-{index:06d}\n"


@dataclass(frozen=True)
class Wire:
    """A message ready for DATA: ``size`` bytes, yielded by ``chunks()`` (each ending a line but the last)."""

    pieces: tuple[bytes | int, ...]  # flattened text, or the index of an attachment to encode there
    attachments: tuple[bytes, ...]
    size: int

    def chunks(self) -> Iterator[bytes]:
        for piece in self.pieces:
            if isinstance(piece, bytes):
                if piece:
                    yield piece
            else:
                yield from base64_lines(self.attachments[piece])


def flatten(message: Message, token: str, attachments: Sequence[bytes]) -> Wire:
    """``message`` (whose attachment parts hold ``placeholder(token, i)``) with ``attachments`` in place."""
    text = _flatten(message)
    if not attachments:
        return Wire((text,), (), len(text))
    needle = token.encode("ascii") + b"-"
    pieces: list[bytes | int] = []
    size = 0
    start = 0
    while (found := text.find(needle, start)) >= 0:
        index = int(text[found + len(needle) : found + len(needle) + 6])
        end = found + len(needle) + 6
        end += 2  # the placeholder's CRLF
        pieces += [text[start:found], index]
        size += found - start + base64_size(len(attachments[index]))
        start = end
    pieces.append(text[start:])
    size += len(text) - start
    return Wire(tuple(pieces), tuple(attachments), size)


def base64_size(length: int) -> int:
    encoded = (length + 2) // 3 * 4
    return encoded + 2 * -(-encoded // LINE)


def base64_lines(data: bytes) -> Iterator[bytes]:
    """``data`` in base64, ``LINE`` characters and CRLF a line, a slice of about 20 KB at a time."""
    view = memoryview(data)
    for start in range(0, len(view), _INPUT_PER_SLICE):
        yield encode_lines(view[start : start + _INPUT_PER_SLICE], terminated=True)


class _Generator(BytesGenerator):
    """``BytesGenerator`` writing each body in one piece instead of line by line: the same bytes.

    The stock ``_write_lines`` splits a body into lines and writes each one and its line break
    separately, which for a long text is most of the cost of serialising a message.
    """

    def _write_lines(self, lines: str) -> None:
        if lines:
            self.write(lines.replace("\n", self._NL) if "\r" not in lines else NLCRE.sub(self._NL, lines))

    def _handle_message(self, msg: Message) -> None:
        # A message/* part built from bytes (a forwarded message, a delivery report) holds its text,
        # which is written as it is; the stock handlers expect parsed sub-messages.
        if isinstance(msg.get_payload(), str):
            self._handle_text(msg)
        else:
            super()._handle_message(msg)

    def _handle_message_delivery_status(self, msg: Message) -> None:
        if isinstance(msg.get_payload(), str):
            self._handle_text(msg)
        else:
            super()._handle_message_delivery_status(msg)


def _flatten(message: Message) -> bytes:
    """``message.as_bytes()``, byte for byte: written directly when it is one of ours."""
    policy = message.policy
    if policy.linesep == "\r\n" and policy.cte_type == "7bit" and getattr(policy, "refold_source", "") == "none":
        pieces: list[bytes] = []
        try:
            _write(message, pieces)
            return b"".join(pieces)
        except (_Unusual, UnicodeEncodeError):
            pass  # the generator knows what to do with it, or raises as it would have
    fp = BytesIO()
    _Generator(fp, mangle_from_=False, policy=policy).flatten(message, unixfrom=False)
    return fp.getvalue()


class _Unusual(Exception):
    """A part ``_write`` does not write as the generator would: the generator writes the message."""


def _write(part: Message, pieces: list[bytes]) -> None:
    """What the generator writes for ``part``, for ASCII text payloads and our multiparts: each header
    as the policy folds it when it leaves stored values as they are (``refold_source="none"``)."""
    content_type = None
    head: list[str] = []
    for name, value in part.raw_items():
        if not isinstance(value, str):
            raise _Unusual
        if content_type is None and name.lower() == "content-type":
            content_type = value
        head += (name, ": ", "\r\n".join(value.splitlines()), "\r\n")
    head.append("\r\n")
    pieces.append("".join(head).encode("ascii"))
    payload = part._payload  # as the generator reads it
    if isinstance(payload, list):
        _write_multipart(part, content_type, payload, pieces)
    elif isinstance(payload, str) and payload.isascii() and "multipart" not in (content_type or "").lower():
        # Made CRLF as bytes: bytes.replace is several times quicker than str.replace on a long text.
        pieces.append(payload.encode("ascii").replace(b"\n", b"\r\n") if "\r" not in payload
                      else NLCRE.sub("\r\n", payload).encode("ascii"))
    else:  # no body, 8-bit text, a multipart holding text: the generator has its own ways with them
        raise _Unusual


def _write_multipart(part: Message, content_type: str | None, parts: list[Message], pieces: list[bytes]) -> None:
    own = _OWN_MULTIPART.fullmatch(content_type or "")
    if own is None or part.preamble is not None or part.epilogue is not None:
        raise _Unusual
    boundary = own.group(1).encode("ascii")
    pieces.append(b"--" + boundary + b"\r\n")
    for index, sub in enumerate(parts):
        if index:
            pieces.append(b"\r\n--" + boundary + b"\r\n")
        _write(sub, pieces)
    pieces.append(b"\r\n--" + boundary + b"--\r\n")
