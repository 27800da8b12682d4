"""Lenient text decoding for the read side: charsets, RFC 2047 encoded words, base64 that may be broken.

Every function takes ``where`` (what is being decoded, for the message) and a ``Defects`` list, and
never raises: whatever had to be repaired is noted there instead.
"""

from __future__ import annotations

import binascii
import codecs
import re
from functools import lru_cache

# A hostile message can carry thousands of broken parts; the engine logs the list, so cap it.
_MAX_DEFECTS = 100


class Defects:
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


_FOLD = re.compile(r"\r?\n(?=[ \t])")
_CONTROL = re.compile(r"[\x00-\x08\x0a-\x1f\x7f]")
_CONTROL_TO_SPACE = {c: " " for c in [*range(0x00, 0x09), *range(0x0A, 0x20), 0x7F]}


def unraw(value: str, where: str, defects: Defects) -> str:
    """A raw header value as text: 8-bit bytes decoded, folds removed, encoded words still encoded."""
    if not value.isascii():
        value = _decode_unlabelled(value.encode("ascii", "surrogateescape"), where, defects)
    return _FOLD.sub("", value) if "\n" in value else value  # the test is far cheaper than the pattern


def clean(text: str, where: str, defects: Defects) -> str:
    """No control characters: an encoded CR LF in a subject must not become header injection downstream."""
    # isprintable() is false for every control character, and far cheaper than the pattern.
    if not text.isprintable() and _CONTROL.search(text):
        defects.add(f"{where}: control characters replaced by spaces")
        text = text.translate(_CONTROL_TO_SPACE)
    return text.strip()


def decode_header_value(value: str, where: str, defects: Defects) -> str:
    return clean(decode_words(value, where, defects), where, defects)


# Lenient on purpose: spaces inside the encoded text (a common bug) and any charset label.
_ENCODED_WORD = re.compile(r"=\?([^?\s]{1,64})\?([bBqQ])\?([^?]*)\?=")


def decode_words(text: str, where: str, defects: Defects) -> str:
    """Decode the RFC 2047 encoded words of an unfolded header value."""
    if "=?" not in text:
        return text
    out: list[str] = []
    pending_charset = ""
    pending = bytearray()

    def flush() -> None:
        if pending_charset:
            out.append(decode_labelled(bytes(pending), pending_charset, where, defects))
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
            data, problem = b64decode(encoded)
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


_B64_ALPHABET = b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/"
_B64_DROP = bytes(sorted(set(range(256)) - set(_B64_ALPHABET + b"=")))
# What may appear in base64 text (bytes.isspace() whitespace included): removing it leaves the junk.
_B64_TEXT = _B64_ALPHABET + b"=" + b" \t\n\r\x0b\x0c"


def b64decode(data: bytes) -> tuple[bytes, str]:
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


def decode_labelled(data: bytes, label: str, where: str, defects: Defects) -> str:
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


def _decode_unlabelled(data: bytes, where: str, defects: Defects) -> str:
    """Bytes with no (real) charset: UTF-8 if they are, else windows-1252 as mailers mean it."""
    try:
        return data.decode("utf-8")
    except UnicodeDecodeError:
        pass
    defects.add(f"{where}: 8-bit text that is not utf-8 and has no charset (read as windows-1252)")
    return decode_labelled(data, "cp1252", where, defects)
