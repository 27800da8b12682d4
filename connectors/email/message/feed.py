"""The message tree as the stdlib's feed parser gives it, with values left raw: ``parse_text``.

Two shortcuts make it faster and change nothing in the tree: a multipart's boundary lines are
matched without compiling a pattern for each message, and the body of a message that is not read
as parts is taken whole instead of line by line.
"""

from __future__ import annotations

import re
import types
from email.feedparser import FeedParser
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
        content_type = super().get_content_type()
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


def _without_boundary_compiling(parsegen: Any) -> Any:
    """``FeedParser._parsegen`` reading ``re`` as ``_BoundaryRe``; as it is if its pattern is not the one expected."""
    code = parsegen.__code__
    if _BoundaryRe.HEAD not in code.co_consts or _BoundaryRe.TAIL not in code.co_consts:
        return parsegen
    namespace = {**parsegen.__globals__, "re": _BoundaryRe}
    return types.FunctionType(code, namespace, parsegen.__name__, parsegen.__defaults__, parsegen.__closure__)


class _FeedParser(FeedParser):
    _parsegen = _without_boundary_compiling(FeedParser._parsegen)

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
    parser = _FeedParser(policy=PARSE_POLICY)
    empty_line = _EMPTY_LINE.search(text)
    body = empty_line.end() if empty_line else len(text)
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


def _feed(parser: FeedParser, text: str, start: int, end: int) -> None:
    # In pieces, as ``BytesParser`` feeds it: the parser's buffer never holds a large message at once.
    for piece in range(start, end, _FEED_CHARS):
        parser.feed(text[piece : min(piece + _FEED_CHARS, end)])
