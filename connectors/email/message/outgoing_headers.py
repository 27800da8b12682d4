"""Outgoing header values in wire form, written directly rather than through ``email.headerregistry``.

The registry parses every value it is given into a token tree and folds it back out: for a run of
thousands of messages that was most of the cost of building one. The values here are built from
fields already checked by ``fields`` (no line breaks; addresses and message ids in ASCII), so
nothing needs parsing or checking again, and the message's policy (``build``) refuses any line
break that does not fold a value, whoever sets the header. What is left is RFC 5322/2047 formatting:

- text that is not plain printable ASCII goes in RFC 2047 encoded words (UTF-8, ``q`` or ``b``,
  whichever is shorter), each at most 75 characters and never splitting a character, as the email
  package's ``Charset`` writes them; file names as RFC 2231 parameters (``email.utils``);
- a display name is a phrase of atoms, a quoted string when it has specials, or encoded words;
- lines are folded at whitespace to at most 78 characters; a token that cannot be split (an
  address, a message id) may make its line longer, never beyond what it is;
- control characters in text end up inside encoded words.

Each function returns the value as it follows ``Name: `` on the wire, continuation lines joined by
CRLF and a space or tab; ``field`` gives the whole header line.
"""

from __future__ import annotations

import re
from collections.abc import Callable, Iterable
from email.charset import Charset
from email.utils import encode_rfc2231
from itertools import repeat

LIMIT = 78  # RFC 5322 2.1.1: lines SHOULD be at most 78 characters
_EW_LIMIT = 75  # RFC 2047 2: an encoded word is at most 75 characters
_FOLD = "\r\n"
_WHITESPACE = re.compile(r"([ \t]+)")
_ATEXT = re.compile(r"[A-Za-z0-9!#$%&'*+/=?^_`{|}~-]+")
_UTF8 = Charset("utf-8")


def field(name: str, value: str) -> str:
    """The header line ``Name: value`` with its CRLF, ``value`` being one of this module's results."""
    return f"{name}: {value}\r\n"


def unstructured(name: str, text: str) -> str:
    """An unstructured value (Subject, a custom header): plain words as they are, the rest as encoded words."""
    if len(name) + 2 + len(text) <= LIMIT and _plain(text) and text.strip(" ") == text:
        return text  # the common case: short printable ASCII, nothing to do
    return _fold(name, _words(text, _plain, _ew_room(name)))


def addresses(name: str, mailboxes: Iterable[tuple[str, str]]) -> str:
    """An address list from ``(display name, local@domain)`` pairs: ``Name <a@b>, c@d``."""
    pieces: list[tuple[str, str]] = []
    room = _ew_room(name)
    for display_name, addr_spec in mailboxes:
        if pieces:
            pieces[-1] = (pieces[-1][0], pieces[-1][1] + ",")
        words = _phrase(display_name, room)
        pieces += words
        pieces.append((" ", f"<{addr_spec}>" if words else addr_spec))
    return _fold(name, pieces)


def message_ids(name: str, ids: Iterable[str]) -> str:
    """Message-ID, In-Reply-To, References: ``<id>`` tokens as given, separated by spaces."""
    return _fold(name, [(" ", token) for token in ids])


def disposition(filename: str) -> str:
    """``attachment; filename=...``: quoted when printable ASCII, else RFC 2231 (``filename*=utf-8''...``),
    in numbered sections (RFC 2231 3) when one line would not hold it."""
    if _plain(filename) and len(filename) <= 60:
        escaped = filename.replace("\\", "\\\\").replace('"', '\\"')
        return _fold("Content-Disposition", [("", "attachment;"), (" ", f'filename="{escaped}"')])
    value = encode_rfc2231(filename, "utf-8")  # utf-8''%C3%A9...
    # 50 characters of the name a line keeps " filename*NN*=...;" within 78; the first line also
    # carries the "utf-8''" the value begins with.
    size = len("utf-8''") + 50
    if len(value) <= size:
        return _fold("Content-Disposition", [("", "attachment;"), (" ", f"filename*={value}")])
    sections, start = [], 0
    while start < len(value):
        end = min(start + size, len(value))
        # A %XX escape stays whole: a reader decodes each section's escapes on their own.
        percent = value.rfind("%", max(start, end - 2), end)
        if percent >= 0 and end < len(value):
            end = percent
        sections.append(value[start:end])
        start, size = end, 50
    pieces = [("", "attachment;")]
    for number, section in enumerate(sections):
        pieces.append((" ", f"filename*{number}*={section}{';' if number < len(sections) - 1 else ''}"))
    return _fold("Content-Disposition", pieces)


# --- pieces: (whitespace before, token) pairs, folded at the whitespace


def _fold(name: str, pieces: list[tuple[str, str]]) -> str:
    lines: list[str] = []
    line = f"{name}:"
    bare = True  # nothing but the name on this line yet
    for space, token in pieces:
        space = space or " " if bare and not lines else space
        if not bare and len(line) + len(space) + len(token) > LIMIT and space:
            lines.append(line)
            line = space + token
        else:
            line += space + token
        bare = False
    lines.append(line)
    first = lines[0]
    lines[0] = first[len(name) + 2 :] if first.startswith(f"{name}: ") else first[len(name) + 1 :]
    return _FOLD.join(lines)


def _words(text: str, keep: Callable[[str], bool], room: int) -> list[tuple[str, str]]:
    """``text`` split at its spaces and tabs; the words ``keep`` refuses (or too long for a line), with
    the whitespace between neighbouring ones, become encoded words: adjacent encoded words are joined
    when read, so only one run of them can carry that whitespace. Leading and trailing whitespace is
    dropped, as readers drop it."""
    parts = _WHITESPACE.split(text.strip(" \t"))  # word, space, word, ..., word
    pieces: list[tuple[str, str]] = []
    pending: list[str] = []  # words, and the whitespace between them, still to encode
    pending_space = ""
    for index in range(0, len(parts), 2):
        word = parts[index]
        space = parts[index - 1] if index else ""
        if keep(word) and len(word) <= room:
            if pending:
                pieces += _encoded(pending_space, "".join(pending), room)
                pending = []
            pieces.append((space, word))
        elif pending:
            pending += [space, word]
        else:
            pending_space, pending = space, [word]
    if pending:
        pieces += _encoded(pending_space, "".join(pending), room)
    return pieces


def _phrase(display_name: str, room: int) -> list[tuple[str, str]]:
    """A display name as phrase pieces: atoms, one quoted string, or atoms and encoded words."""
    display_name = display_name.strip(" \t")
    if not display_name:
        return []
    words = display_name.split(" ")
    if all(_ATEXT.fullmatch(word) for word in words) and len(display_name) <= 60:
        return [(" ", word) for word in words]
    if _plain(display_name) and len(display_name) <= 60:
        return [(" ", '"' + display_name.replace("\\", "\\\\").replace('"', '\\"') + '"')]
    return [(" " if index == 0 else space, token)
            for index, (space, token) in enumerate(_words(display_name, _atom, room))]


def _encoded(space: str, text: str, room: int) -> list[tuple[str, str]]:
    """``text`` as encoded words of at most ``room`` characters, the first after ``space``."""
    word = _UTF8.header_encode(text)
    # header_encode_lines gives this same one word when it fits, but finds that out by encoding the
    # text again a character at a time: 4.3 µs against 1.4 µs for "— Grüße".
    words = [word] if len(word) <= room else _UTF8.header_encode_lines(text, repeat(room))
    return [(space if index == 0 else " ", word) for index, word in enumerate(words)]


def _plain(text: str) -> bool:
    """Whether ``text`` can go on the wire as it is: printable ASCII that no reader would take for an
    encoded word."""
    return text.isascii() and text.isprintable() and "=?" not in text


def _atom(word: str) -> bool:
    return _ATEXT.fullmatch(word) is not None and "=?" not in word


def _ew_room(name: str) -> int:
    # Each encoded word fits on the first line after "Name: ", and on any continuation line.
    return max(40, min(_EW_LIMIT, LIMIT - len(name) - 2))
