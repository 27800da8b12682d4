"""Shortcuts taken for speed while reading a message give what the plain stdlib way gives."""

from __future__ import annotations

import random
import re
from email.feedparser import FeedParser
from email.parser import BytesParser

import pytest

from connectors.email.message import feed
from connectors.email.message import parse as parsing
from tests.email import hostile_mail as hostile
from tests.email.test_message import _mutate, _tree

SEPARATORS = ["--b", "--", "--===============0690071947970341930==", "--a.b*c+d?(e)[f]{g}|h^$\\", "--\udce9x",
              "-- sp ace"]
ENDINGS = ["", "\n", "\r\n", "\r", "\r\r\n", "\n\n", " \n", "\t \r\n", "x\n", " x"]


def _lines(separator: str) -> list[str]:
    lines = []
    for ending in ENDINGS:
        for after in ("", "--", "---", " ", "-- \t"):
            lines += [separator + after + ending, separator[:-1] + after + ending, "x" + separator + after + ending]
    return lines


@pytest.mark.parametrize("separator", SEPARATORS)
def test_the_boundary_matcher_matches_what_the_compiled_pattern_matches(separator: str) -> None:
    compiled = re.compile(feed._BoundaryRe.HEAD + re.escape(separator) + feed._BoundaryRe.TAIL)
    matcher = feed._BoundaryRe.compile(feed._BoundaryRe.HEAD + separator + feed._BoundaryRe.TAIL)
    for line in _lines(separator):
        expected, found = compiled.match(line), matcher.match(line)
        assert (found is None) == (expected is None), repr(line)
        if expected is not None:
            assert [found.group(g) for g in ("end", "ws", "linesep")] == [
                expected.group(g) for g in ("end", "ws", "linesep")
            ], repr(line)


def test_the_parser_uses_the_boundary_matcher() -> None:
    # Turned off (silently, by design) when a Python release builds the pattern differently.
    assert feed._FeedParser._parsegen is not FeedParser._parsegen


def _messages() -> list[bytes]:
    rng = random.Random(20240302)
    seeds = hostile.seeds()
    specials = [hostile.nested(), hostile.missing_boundary(), hostile.wrong_boundary(),
                hostile.unterminated_multipart(), hostile.boundary_unguessable(), hostile.base64_attached_message()]
    return specials + seeds + [_mutate(rng, rng.choice(seeds)) for _ in range(300)]


def test_the_parse_tree_is_the_stdlib_parsers() -> None:
    for raw in _messages():
        expected = _tree(BytesParser(policy=feed.PARSE_POLICY).parsebytes(raw))
        assert _tree(parsing._parse(raw, None)[0]) == expected, raw


@pytest.mark.parametrize("value", [
    'text/plain; charset="utf-8"', "text/plain; CHARSET=latin1; charset=utf-8", "attachment; filename*=utf-8''%C3%A9",
    'inline; filename*0="a"; filename*1*=utf-8\'\'%41', "text/plain; name*0*=''%41; name*0=B", "text/plain; =x; ;;",
    'application/pdf; name="a;b \\"c\\".pdf"', "x; filename*1=late", "",
])
def test_parameters_read_once_are_the_stdlib_ones(value: str) -> None:
    part = feed.Part(policy=feed.PARSE_POLICY)
    part.set_raw("Content-Type", value)
    try:
        expected = tuple(part.get_params())
    except (TypeError, ValueError):
        expected = None
    assert parsing._remembered_params(value) == parsing._read_params(value) == expected

