"""The message tree as the stdlib's feed parser gives it, with values left raw: ``parse_text``.

Two shortcuts make it faster and change nothing in the tree: a multipart's boundary lines are
matched without compiling a pattern for each message, and the body of a message that is not read
as parts is taken whole instead of line by line.
"""

from __future__ import annotations

import re
import types
from email.feedparser import BufferedSubFile, FeedParser
from email.message import Message
from email.policy import Compat32
from typing import Any, cast

from connectors.email.message.setaside import MARKER, MARKERS, Run, SetAside


class _RawHeaders(Compat32):
    """compat32 that hands header values back as they arrived (folds, 8-bit bytes and all).

    All header decoding then happens in ``decode`` and ``headers``, where it is lenient and cannot raise.
    """

    def header_fetch_parse(self, name: str, value: str) -> str:
        return value


class Part(Message):
    """A parsed part that gives its body exactly as it arrived.

    ``Message.get_payload()`` decodes an 8-bit body with its declared charset, lossily, and raises
    when that charset label holds 8-bit bytes; ``get_payload(decode=True)`` applies the stdlib's
    own base64 repair. Neither is what we want, so nothing that reads a message calls ``get_payload``.
    """

    def get_content_type(self) -> str:
        # The parser asks this to decide whether to descend into a part. Kept out of message/*
        # parts, it leaves their bytes alone, so an attached message comes back byte for byte
        # instead of being re-serialised (which the stdlib cannot do for every hostile message).
        # It asks several times a part: the stdlib's reading of the value is inlined.
        value = self.get("content-type", _MISSING)
        content_type = self.get_default_type() if value is _MISSING else _declared_type(value)
        return "application/octet-stream" if content_type.startswith("message/") else content_type

    def get_boundary(self, failobj: Any = None) -> Any:
        # The parser calls this too; the stdlib's RFC 2231 decoding raises on some parameter
        # mixes. No boundary is a case we repair from the body.
        try:
            return super().get_boundary(failobj)
        except (TypeError, ValueError):
            return failobj

    def children(self) -> list[Part] | None:
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


PARSE_POLICY = _RawHeaders(message_factory=Part)
_MISSING = object()


def _declared_type(value: str) -> str:
    """``Message.get_content_type`` of a part whose Content-Type has this value."""
    content_type = value.partition(";")[0].strip().lower()
    return content_type if content_type.count("/") == 1 else "text/plain"


class _BoundaryRe:
    """Stands in for ``re`` in the feedparser's ``_parsegen``, whose only use of it is the pattern of a
    multipart's boundary line: ``escape`` the separator, ``compile`` it between ``HEAD`` and ``TAIL``.

    Boundaries are random, so that pattern is new for every message, the ``re`` cache never has it,
    and compiling it costs more than parsing a small message. ``compile`` gives an object that
    matches the same lines (the separator as a prefix, then ``TAIL``, which is compiled once) and
    gives the same groups, without compiling anything.
    """

    HEAD = "(?P<sep>"
    TAIL = r")(?P<end>--)?(?P<ws>[ \t]*)(?P<linesep>\r\n|\r|\n)?$"
    _AFTER_SEPARATOR = re.compile(TAIL[1:])

    def __init__(self, separator: str) -> None:
        self._separator = separator

    @staticmethod
    def escape(separator: str) -> str:
        return separator  # ``compile`` takes it back out of the pattern by position, unescaped

    @classmethod
    def compile(cls, pattern: str) -> _BoundaryRe:
        return cls(pattern[len(cls.HEAD) : -len(cls.TAIL)])

    def match(self, line: str) -> re.Match[str] | None:
        if not line.startswith(self._separator):
            return None
        return self._AFTER_SEPARATOR.match(line, len(self._separator))


class _LineEnd:
    """Stands in for the feedparser's ``NLCRE_eol`` in ``_parsegen``, which searches a part's whole
    payload (and a preamble's last line, an epilogue) for the line break that ends it.

    A search tries the pattern at every position, 30 us for a 5 KB body; this tries it only where
    the break can start, and gives the same match.
    """

    PATTERN = r"(\r\n|\r|\n)\Z"
    _PATTERN = re.compile(PATTERN)

    @classmethod
    def search(cls, text: str) -> re.Match[str] | None:
        return cls._PATTERN.match(text, len(text) - 2 if text.endswith("\r\n") else max(len(text) - 1, 0))


def _with_stand_ins(parsegen: Any) -> Any:
    """``FeedParser._parsegen`` reading ``re`` as ``_BoundaryRe`` and ``NLCRE_eol`` as ``_LineEnd``;
    each is left as it is if what it stands in for is not the one expected.
    """
    namespace = dict(parsegen.__globals__)
    code = parsegen.__code__
    if _BoundaryRe.HEAD in code.co_consts and _BoundaryRe.TAIL in code.co_consts:
        namespace["re"] = _BoundaryRe
    if getattr(namespace.get("NLCRE_eol"), "pattern", None) == _LineEnd.PATTERN:
        namespace["NLCRE_eol"] = _LineEnd
    return types.FunctionType(code, namespace, parsegen.__name__, parsegen.__defaults__, parsegen.__closure__)


class _Lines(BufferedSubFile):
    """The parser's line buffer, giving back a line with fewer steps when it cannot be a false end.

    The parser tests every line of a multipart's body against each enclosing boundary's matcher.
    When all of them are ``_BoundaryRe``'s, a line that does not start with ``--`` matches none (each
    wants its separator, ``--`` and the boundary, as a prefix), so it is handed back untested.
    """

    def __init__(self) -> None:
        super().__init__()
        self._other_matchers = 0  # false-end tests on the stack that are not boundary matchers

    def push_eof_matcher(self, pred: Any) -> None:
        self._other_matchers += not isinstance(getattr(pred, "__self__", None), _BoundaryRe)
        super().push_eof_matcher(pred)

    def pop_eof_matcher(self) -> Any:
        pred = super().pop_eof_matcher()
        self._other_matchers -= not isinstance(getattr(pred, "__self__", None), _BoundaryRe)
        return pred

    def __next__(self) -> Any:
        lines = self._lines
        # An empty line here is one the parser put back at the end of the text: it is an end too.
        if lines and not self._other_matchers and lines[0] and not lines[0].startswith("--"):
            return lines.popleft()
        line = self.readline()
        if line == "":
            raise StopIteration
        return line


class _FeedParser(FeedParser):
    _parsegen = _with_stand_ins(FeedParser._parsegen)

    def __init__(self, *, policy: Compat32) -> None:
        super().__init__(policy=policy)
        self._input = _Lines()

    def reads_lines(self) -> bool:
        """Whether, its headers read, the message's body is read as every line left, joined.

        It is unless ``_parsegen``'s own tests send it to read parts; then the parser may already
        be inside one, so the message is the first on its stack, not the current one.
        """
        return self._msgstack[0].get_content_maintype() not in ("message", "multipart")


_FEED_CHARS = 8192
# An empty line ended by LF, after a line break as the parser splits lines: CRLF, LF, or a CR not before LF.
_EMPTY_LINE = re.compile(r"(?:\r\n|\r(?!\n)|\n)\r?\n")


def parse_text(text: str) -> Part:
    """What ``BytesParser(policy=PARSE_POLICY).parsebytes`` gives for the bytes ``text`` decodes
    from (surrogateescape). Raises RecursionError for nesting deeper than the parser can follow.
    """
    empty_line = _EMPTY_LINE.search(text)
    body = empty_line.end() if empty_line else len(text)
    if empty_line is not None and (msg := _plain_message(text, empty_line.start(), body)) is not None:
        return msg
    parser = _FeedParser(policy=PARSE_POLICY)
    # No header line is empty, so fed through one the parser has read the whole header block (an
    # empty line ended by LF: the text fed splits into the very lines the whole message does).
    _feed(parser, text, 0, body)
    if empty_line is not None and parser.reads_lines():
        # The lines not yet read, joined, are what it had left of the text fed, then the rest of it.
        msg = cast(Part, parser.close())
        msg._payload += text[body:]
        return msg
    _feed(parser, text, body, len(text))
    return cast(Part, parser.close())


# A header field as the parser reads it when its lines are plain: a name, then after the colon the
# rest of its first line and its continuation lines, each ended by CRLF or LF (a lone CR would
# split a line where this does not).
_FIELD = re.compile(r"([!-9;-~]++):([^\r\n]*+(?:\r?\n[ \t][^\r\n]*+)*+)(?:\r?\n|\Z)")


def _plain_message(text: str, head_end: int, body: int) -> Part | None:
    """What the parser gives for a message whose header block (up to ``head_end``) is only plain
    fields and whose body is not read as parts; None for any other message, left to the parser.

    Such a block gives no defect, and the parser keeps each field as compat32 reads it: the name, and
    the value with the blanks after the colon and the last line break taken off.
    """
    fields = []
    position = 0
    while position < head_end:
        field = _FIELD.match(text, position, head_end)
        if field is None or field.end() == head_end != field.end(2):  # a block ended by an empty line of its own
            return None
        fields.append((field.group(1), field.group(2).lstrip(" \t")))
        position = field.end()
    msg = Part(policy=PARSE_POLICY)
    msg._headers = fields
    if not fields or msg.get_content_maintype() == "multipart":
        return None
    msg._payload = text[body:]
    return msg


def _feed(parser: FeedParser, text: str, start: int, end: int) -> None:
    # In pieces, as ``BytesParser`` feeds it: the parser's buffer never holds a large message at once.
    for piece in range(start, end, _FEED_CHARS):
        parser.feed(text[piece : min(piece + _FEED_CHARS, end)])
