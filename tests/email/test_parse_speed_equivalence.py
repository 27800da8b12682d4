"""Shortcuts taken for speed while reading a message give what the plain stdlib way gives."""

from __future__ import annotations

import random
import re
from email.feedparser import FeedParser
from email.message import Message
from email.parser import BytesParser
from email.utils import getaddresses

import pytest
from django.test import override_settings

from connectors.email.message import addresses, feed
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


def test_the_parser_uses_its_stand_ins() -> None:
    # Each is turned off (silently, by design) when a Python release builds its pattern differently.
    namespace = feed._FeedParser._parsegen.__globals__
    assert namespace["re"] is feed._BoundaryRe
    assert namespace["NLCRE_eol"] is feed._LineEnd
    assert isinstance(feed._FeedParser(policy=feed.PARSE_POLICY)._input, feed._Lines)


@pytest.mark.parametrize("text", ["", "x", "\n", "\r", "\r\n", "\n\r", "\r\r\n", "\n\n", "a\r\n", "a\n\r\n", "a\r\r",
                                  "a\n ", "a\u2028", "a\x85", "a\r\nb", "x" * 5000 + "\r\n"])
def test_the_line_end_found_is_the_patterns(text: str) -> None:
    expected, found = re.compile(feed._LineEnd.PATTERN).search(text), feed._LineEnd.search(text)
    assert (found and (found.span(), found.group(0))) == (expected and (expected.span(), expected.group(0)))


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
        params = part.get_params()
    except (TypeError, ValueError):
        expected = None
    else:  # what the reader took before: the first parameter whose name is the one asked, in any case
        expected = {k.lower(): next(v for n, v in params if n.lower() == k.lower()) for k, _ in params}
    assert parsing._remembered_params(value) == parsing._read_params(value) == expected


@pytest.mark.parametrize("value", [
    None, "", "text/plain", " Text/HTML ; charset=x", "multipart/mixed;boundary=z", "text", "a/b/c", "/", "a/", ";a/b",
    "message/rfc822", "MESSAGE/Delivery-Status", "image/png\r\n\tname=x", "\tapplication/pdf", "x/y; z=\"a;b\"",
])
@pytest.mark.parametrize("default", ["text/plain", "message/rfc822"])
def test_a_parts_content_type_is_the_stdlibs(value: str | None, default: str) -> None:
    part = feed.Part(policy=feed.PARSE_POLICY)
    part.set_default_type(default)
    if value is not None:
        part.set_raw("Content-Type", value)
    expected = Message.get_content_type(part)
    assert part.get_content_type() == ("application/octet-stream" if expected.startswith("message/") else expected)


# --- a body not read as parts is taken whole, past the first empty line

_HEADER_LINES = [
    "From: a@example.com", "Subject: two\n\tlines", " a first line that is a continuation", "From a@example.com Mon",
    "spaced name: value", "not a header line", ":no name", "X-8bit: caf\udce9", "Content-Type: text/plain; boundary=z",
    "Content-Type: multipart/mixed; boundary=z", "Content-Type: multipart/mixed", "Content-Type: message/rfc822",
    "Content-Type: message/delivery-status", "Content-Type: text", "Content-Type: garbled//x; ;;",
    "Content-Type: multipart/digest; boundary=z", "CONTENT-TYPE: Multipart/Alternative; boundary=\"z\"",
    "Content-Type: text/plain\r", "X-Long: " + "y" * 9000, "MIME-Version: 1.0", "X-Empty:", "x:y", "X-Blank: \t",
    "X-Folded:\n\tvalue", "X-Trailing: value \t", "X-Cont: a\n \n\tb", "X-Bare-CR: a\rb", "X-Tab:\tv",
]
_SEPARATORS = ["", "\n", "\r\n", "\r", " \n", "\t\r\n", "x\n", "From x\n", "\n\r", "\r\r\n"]
_BODIES = [
    "", "body\n", " indented\n", "\tindented", "From me\n", "\n\nafter blank lines\n", "Header: in the body\n\nmore\n",
    "caf\udce9\r\n", "--z\nContent-Type: text/plain\n\nin a part\n--z--\n",
    "--z\r\nContent-Type: message/rfc822\r\n\r\nSubject: inner\r\n\r\ninner body\r\n--z--\r\n",
    "no line end", "\r", "\r\n\r\n", "--z\nContent-Type: text/plain\n\nx\n\n--z", "--z\n\nx\n--z\n--z",
    "Reporting-MTA: dns; x\n\nAction: failed\n", "mixed\rends\r\nhere\n\r",
]


def _endings(text: str, style: str) -> str:
    if style == "lf":
        return text
    if style == "mixed":  # every second line break CRLF, the rest a lone CR
        return "".join(line + ("\r\n" if i % 2 else "\r") for i, line in enumerate(text.split("\n")))[:-1]
    return text.replace("\n", {"crlf": "\r\n", "cr": "\r"}[style])


def _boundary_cases() -> list[str]:
    rng = random.Random(20240303)
    cases = []
    for _ in range(3000):
        style = rng.choice(["lf", "crlf", "cr", "mixed"])
        head = "\n".join(rng.sample(_HEADER_LINES, rng.randint(0, 3)))
        head = _endings(head + "\n" if head else "", style)
        separator, body = rng.choice(_SEPARATORS), rng.choice(_BODIES)
        cases.append(head + separator + (_endings(body, style) if rng.random() < 0.7 else body))
    # An empty line cut across two of the pieces the parser is fed.
    cases += ["X-Pad: " + "p" * (8192 - 10 - cut) + "\r\n\r\nbody\r\n" for cut in range(-3, 4)]
    return cases


def test_a_body_taken_whole_is_what_the_stdlib_parser_reads_line_by_line() -> None:
    for text in _boundary_cases():
        raw = text.encode("ascii", "surrogateescape")
        expected = _tree(BytesParser(policy=feed.PARSE_POLICY).parsebytes(raw))
        assert _tree(feed.parse_text(text)) == expected, text[:300]


@pytest.mark.parametrize(("text", "way"), [
    ("From: a@example.com\r\nSubject: x\r\n\r\nline\r\n" * 3, "plain fields"),
    ("From: a@example.com\nContent-Type: message/rfc822\n\nSubject: inner\n\nbody\n", "plain fields"),
    ("From a@example.com Mon\nSubject: x\n\nline\n", "body whole"),
    ("From: a@example.com\nSubject: two\rlines\n\nline\n", "body whole"),
    ("From: a@example.com\nContent-Type: multipart/mixed; boundary=z\n\n--z\n\nx\n--z--\n", "line by line"),
    ("From: a@example.com\nSubject: no empty line\nbody\n", "line by line"),
])
def test_the_parser_is_fed_only_what_the_message_needs(text: str, way: str, monkeypatch: pytest.MonkeyPatch) -> None:
    fed: list[tuple[int, int]] = []
    feed_text = feed._feed

    def spy(parser: FeedParser, text: str, start: int, end: int) -> None:
        fed.append((start, end))
        feed_text(parser, text, start, end)

    monkeypatch.setattr(feed, "_feed", spy)
    feed.parse_text(text)
    taken = "plain fields" if not fed else "body whole" if len(fed) == 1 and fed[0][1] < len(text) else "line by line"
    assert taken == way


# --- addresses in a plain form are read without the stdlib parser

_ADDRESS_PIECES = [
    "a", "Jane", "customer12", "o'neil", "x+tag", "=?utf-8?q?Ren=C3=A9?=", "=?utf-8?b?w6k=?=", "xn--bcher-kva",
    "bücher", "例え", "caf\udce9", ".", "..", "@", "@@", "<", ">", "<>", '"', '\\"', "\\", "(", ")", "(a comment)", ",",
    ";", ":", "[", "]", "[1.2.3.4]", " ", "  ", "\t", "\r\n ", "\r", "\n", "example.org", "undisclosed-recipients:;",
    '"Doe, Jane"', '"a\\"b"', '"unterminated', "<a@b.c", "a@b.c>", "Group: a@b.c, c@d.e;", "\x00", "\x7f", "{", "|",
]


def _address_values(rng: random.Random) -> tuple[str, ...]:
    def plain() -> str:
        address = rng.choice(["a@b.c", "customer7@example.org", "first.last@mail.example.co.uk", "x+y@z"])
        name = rng.choice(["", "Customer 7", "J. Doe", "Jane  Doe", ".dot", '"Quoted, Name"', '""', '"a\tb"',
                           '"a\\b"', '"a\\"b"', '"(no comment)"', "Jane (comment)", "=?utf-8?q?Ren=C3=A9?=", "O'Neil"])
        return rng.choice([address, f"{name} <{address}>", f"{name}<{address}>", f" <{address}> ", f"\t{address} "])

    def nasty() -> str:
        return "".join(rng.choice(_ADDRESS_PIECES) for _ in range(rng.randint(0, 8)))

    def mutated() -> str:
        text, at = plain(), rng.randrange(0, 40)
        return text[:at] + rng.choice(_ADDRESS_PIECES) + text[at + rng.randint(0, 1):]

    return tuple(rng.choice([plain, plain, nasty, mutated])() for _ in range(rng.choice([0, 1, 1, 1, 2, 3])))


def test_addresses_read_directly_are_the_stdlib_parsers() -> None:
    rng = random.Random(20240304)
    direct = 0
    for _ in range(20_000):
        values = _address_values(rng)
        assert addresses._pairs(values) == tuple(getaddresses(values)), values
        direct += all(addresses._PLAIN.fullmatch(value) for value in values) and bool(values)
    assert direct > 5000  # the plain forms do take the direct way


# --- the structure limits are read once, and again after a setting changes


def test_a_limit_read_once_follows_a_change_to_its_setting() -> None:
    raw = b"From: a@example.com\r\nTo: b@example.com\r\nSubject: x\r\n\r\nbody\r\n"
    parsing.parse_message(raw, uid=1, uidvalidity=1, folder="INBOX")
    with override_settings(MAILWRIGHT_MAX_HEADERS=2), pytest.raises(parsing.MessageTooComplex, match="more than 2"):
        parsing.parse_message(raw, uid=1, uidvalidity=1, folder="INBOX")
    assert parsing.parse_message(raw, uid=1, uidvalidity=1, folder="INBOX")["subject"] == "x"
