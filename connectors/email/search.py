"""The IMAP SEARCH grammar of Read Email: filters and the operator's raw SEARCH string in, safe arguments out.

Text is tokenised, validated against the SEARCH grammar of RFC 3501 (plus WITHIN's OLDER/YOUNGER)
and re-emitted with our own quoting, so nothing a user types can end the command line, open a
literal or smuggle in another command.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from datetime import date

_MONTHS = ("Jan", "Feb", "Mar", "Apr", "May", "Jun", "Jul", "Aug", "Sep", "Oct", "Nov", "Dec")
# Shared with the settings parser: neither a search string nor a setting line may carry these.
CONTROL = re.compile(r"[\x00-\x1f\x7f]")
ISO_DATE = re.compile(r"^\d{4}-\d{2}-\d{2}$")


class SearchSyntaxError(ValueError):
    """A raw SEARCH string the server would refuse, or that we refuse to send."""


def imap_date(day: date) -> str:
    """``1-Feb-2024``: the IMAP date form (month names are English whatever the locale)."""
    return f"{day.day}-{_MONTHS[day.month - 1]}-{day.year}"


@dataclass(frozen=True)
class Token:
    kind: str  # "atom" (keys, numbers, dates, parentheses) or "string" (user text)
    value: str

    @classmethod
    def atom(cls, value: str) -> Token:
        return cls("atom", value)

    @classmethod
    def string(cls, value: str) -> Token:
        return cls("string", value)


# What each SEARCH key takes after it; "key" is a nested search key (NOT, OR).
_TEXT_KEYS = ("BCC", "BODY", "CC", "FROM", "SUBJECT", "TEXT", "TO")
_DATE_KEYS = ("BEFORE", "ON", "SINCE", "SENTBEFORE", "SENTON", "SENTSINCE")
_FLAG_KEYS = (
    "ALL", "ANSWERED", "DELETED", "DRAFT", "FLAGGED", "NEW", "OLD", "RECENT", "SEEN", "UNANSWERED",
    "UNDELETED", "UNDRAFT", "UNFLAGGED", "UNSEEN",
)  # fmt: skip
SEARCH_KEYS: dict[str, tuple[str, ...]] = {
    **{key: () for key in _FLAG_KEYS},
    **{key: ("text",) for key in _TEXT_KEYS},
    **{key: ("date",) for key in _DATE_KEYS},
    "LARGER": ("number",),
    "SMALLER": ("number",),
    "OLDER": ("number",),
    "YOUNGER": ("number",),
    "KEYWORD": ("flag",),
    "UNKEYWORD": ("flag",),
    "HEADER": ("field", "text"),
    "UID": ("sequence",),
    "NOT": ("key",),
    "OR": ("key", "key"),
}
_ARGUMENT_WORDS = {
    "text": "a text in double quotes",
    "date": "a date like 1-Feb-2024",
    "number": "a whole number",
    "flag": "a keyword (flag name)",
    "field": "a header name",
    "sequence": "UIDs like 1:100",
    "key": "a search key",
}
_SEQUENCE = re.compile(r"^(\d+|\*)(:(\d+|\*))?(,(\d+|\*)(:(\d+|\*))?)*$")
_IMAP_DATE = re.compile(r"^(\d{1,2})-([A-Za-z]{3})-(\d{4})$")
_ATOM = re.compile(r'[^\s()"{]+')
_HEADER_NAME = re.compile(r"^[!-9;-~]+$")
_FLAG_NAME = re.compile(r'^[^\s()"{\\%*\]]+$')


def parse_search(text: str) -> list[Token]:
    """Validate a raw IMAP SEARCH string and return its tokens; ``SearchSyntaxError`` says what is wrong."""
    if "\r" in text or "\n" in text:
        raise SearchSyntaxError("must be a single line")
    if CONTROL.search(text):
        raise SearchSyntaxError("must not contain control characters")
    tokens = _lex(text)
    if not tokens:
        raise SearchSyntaxError("is empty")
    parser = _SearchParser(tokens)
    out: list[Token] = []
    while not parser.at_end():
        out += parser.key()
    return out


def _lex(text: str) -> list[tuple[str, str]]:
    """("open"|"close"|"string"|"atom", text) pairs; quoted strings are unescaped."""
    tokens: list[tuple[str, str]] = []
    i = 0
    while i < len(text):
        char = text[i]
        if char.isspace():
            i += 1
        elif char in "()":
            tokens.append(("open" if char == "(" else "close", char))
            i += 1
        elif char == '"':
            value, i = _quoted(text, i + 1)
            tokens.append(("string", value))
        elif char == "{":
            raise SearchSyntaxError("literals ({n}) are not allowed: put the text in double quotes")
        else:
            match = _ATOM.match(text, i)
            assert match is not None  # every other character starts an atom
            tokens.append(("atom", match.group()))
            i = match.end()
    return tokens


def _quoted(text: str, start: int) -> tuple[str, int]:
    value: list[str] = []
    i = start
    while i < len(text):
        char = text[i]
        if char == '"':
            return "".join(value), i + 1
        if char == "\\":
            if i + 1 >= len(text) or text[i + 1] not in '"\\':
                raise SearchSyntaxError('inside double quotes a backslash may only escape " or \\')
            char = text[i + 1]
            i += 1
        value.append(char)
        i += 1
    raise SearchSyntaxError("a double quote is never closed")


class _SearchParser:
    def __init__(self, tokens: list[tuple[str, str]]) -> None:
        self.tokens = tokens
        self.pos = 0

    def at_end(self) -> bool:
        return self.pos >= len(self.tokens)

    def _next(self, wanted: str) -> tuple[str, str]:
        if self.at_end():
            raise SearchSyntaxError(f"ends where {wanted} was expected")
        token = self.tokens[self.pos]
        self.pos += 1
        return token

    def key(self) -> list[Token]:
        kind, value = self._next("a search key")
        if kind == "open":
            inner: list[Token] = []
            while not self.at_end() and self.tokens[self.pos][0] != "close":
                inner += self.key()
            if self.at_end():
                raise SearchSyntaxError("a ( is never closed")
            self.pos += 1
            if not inner:
                raise SearchSyntaxError("() is empty: put search keys inside")
            return [Token.atom("("), *inner, Token.atom(")")]
        if kind == "close":
            raise SearchSyntaxError("a ) has no matching (")
        if kind == "string":
            raise SearchSyntaxError(f'"{value}" needs a search key in front, like SUBJECT "{value}"')
        name = value.upper()
        if _SEQUENCE.match(value):
            return [Token.atom(value)]  # a bare sequence set: message numbers
        if name not in SEARCH_KEYS:
            raise SearchSyntaxError(f"{value} is not an IMAP search key (text with spaces goes in double quotes)")
        out = [Token.atom(name)]
        for argument in SEARCH_KEYS[name]:
            if argument == "key":
                out += self.key()
            else:
                out.append(self._argument(name, argument))
        return out

    def _argument(self, key: str, argument: str) -> Token:
        wanted = f"{key} needs {_ARGUMENT_WORDS[argument]}"
        if self.at_end():
            raise SearchSyntaxError(wanted)
        kind, value = self.tokens[self.pos]
        if kind in ("open", "close"):
            raise SearchSyntaxError(wanted)
        self.pos += 1
        if argument == "text":
            return Token.string(value)
        if argument == "date":
            return Token.atom(_search_date(value, wanted))
        valid = {
            "number": lambda v: v.isdigit() and v.isascii(),
            "flag": lambda v: bool(_FLAG_NAME.match(v)),
            "field": lambda v: bool(_HEADER_NAME.match(v)),
            "sequence": lambda v: bool(_SEQUENCE.match(v)),
        }[argument]
        if not valid(value):
            raise SearchSyntaxError(f"{wanted}, not {value!r}")
        return Token.string(value) if argument == "field" else Token.atom(value)


def _search_date(value: str, wanted: str) -> str:
    """An IMAP date, also accepting the ISO form people type (2024-02-01)."""
    if ISO_DATE.match(value):
        try:
            return imap_date(date.fromisoformat(value))
        except ValueError:
            pass
    match = _IMAP_DATE.match(value)
    if match and match.group(2).title() in _MONTHS:
        day, month, year = int(match.group(1)), _MONTHS.index(match.group(2).title()) + 1, int(match.group(3))
        try:
            return imap_date(date(year, month, day))
        except ValueError:
            pass
    raise SearchSyntaxError(f"{wanted}, not {value!r}")


def search_arguments(tokens: list[Token]) -> list[bytes]:
    """Encode tokens as SEARCH arguments, parentheses glued to their neighbours.

    Text is a quoted string when it is ASCII. Otherwise it stays raw UTF-8: imapclient sends any
    8-bit argument as a literal (RFC 3501 allows no 8-bit in quoted strings), which also needs
    ``CHARSET UTF-8``.
    """
    out: list[bytes] = []
    opening = b""
    for token in tokens:
        if token == Token.atom("("):
            opening += b"("
        elif token == Token.atom(")"):
            # A ")" cannot be glued to a literal; "ALL" (true for every message, so neutral in
            # a group, whose keys are ANDed) carries it without a stray space before ")".
            out.append(out.pop() + b")" if out[-1].isascii() else b"ALL)")
        else:
            value = token.value
            if token.kind == "atom" or value.isascii():
                item = _quote(value) if token.kind == "string" else value.encode("ascii")
            else:
                item = value.encode("utf-8")
            # After "(" the grammar always has a search key, an ASCII atom, to glue it to.
            out.append(opening + item)
            opening = b""
    if not all(item.isascii() for item in out):
        return [b"CHARSET", b"UTF-8", *out]
    return out


def _quote(value: str) -> bytes:
    return b'"' + value.replace("\\", "\\\\").replace('"', '\\"').encode("ascii") + b'"'
