"""FETCH responses of the shapes a run asks for at every message, read without imapclient's tokenizer.

imapclient reads a response through a general tokenizer that goes through it in Python, a few
tokens at a time: for a batch of small messages that costs about as much as reading them did. A
response made only of ``UID n``, ``RFC822.SIZE n``, ``FLAGS (...)`` and at most one ``BODY[]<n>``
literal, what the size probe and the body batches get back, is read here with regular expressions
into exactly what imapclient's ``parse_fetch_response`` gives; any other response goes to it whole.
"""

from __future__ import annotations

import re
from collections.abc import Mapping, Sequence
from typing import Any

from imapclient.response_parser import parse_fetch_response

# A flag imapclient reads as bytes: an atom (with its backslash for a system flag) that is not a
# number; ``NIL`` it reads as None, so a response holding one goes to it.
_FLAG = rb"\\?[A-Za-z0-9$!#&'+\-.:;<=>?@^_`|~]*[A-Za-z$!#&'+\-.:;<=>?@^_`|~][A-Za-z0-9$!#&'+\-.:;<=>?@^_`|~]*"
_NUMBER = rb"(?:0|[1-9][0-9]*)"  # imapclient leaves 0123 as bytes
_ITEM = rb"(?:UID|RFC822\.SIZE) %s|FLAGS \((?:%s(?: %s)*)?\)" % (_NUMBER, _FLAG, _FLAG)
_ITEMS = rb"(?:%s)(?: (?:%s))*" % (_ITEM, _ITEM)
_ONE_ITEM = re.compile(rb"(UID|RFC822\.SIZE) ([0-9]+)|FLAGS \(([^)]*)\)")
_LINE = re.compile(rb"([0-9]+) \((%s)?\)" % _ITEMS)
_LITERAL_HEAD = re.compile(rb"([0-9]+) \((?:(%s) )?(BODY\[\](?:<[0-9]+>)?) \{([0-9]+)\}" % _ITEMS)
_LITERAL_TAIL = re.compile(rb"(?: (%s))?\)" % _ITEMS)


class _OtherShape(Exception):
    """A response this module leaves to imapclient."""


def item_named(facts: Mapping[bytes, Any], prefix: bytes) -> Any:
    """The item of a message's FETCH answer whose name starts with ``prefix`` (servers echo partial
    and header items with their own spelling, e.g. ``BODY[]<0>``), or None."""
    return next((value for name, value in facts.items() if name.startswith(prefix)), None)


def parse_fetch(data: Sequence[Any], uid_is_key: bool = True, normalise_times: bool = True) -> dict[int, dict]:
    """What ``imapclient.response_parser.parse_fetch_response(data, normalise_times, uid_is_key)``
    gives for imaplib's FETCH ``data``."""
    try:
        return _parse_plain(data, uid_is_key)
    except _OtherShape:
        return parse_fetch_response(list(data), normalise_times, uid_is_key)


def _parse_plain(data: Sequence[Any], uid_is_key: bool) -> dict[int, dict]:
    parsed: dict[int, dict] = {}
    position = 0
    while position < len(data):
        element = data[position]
        if isinstance(element, bytes):
            seq, items = _match(_LINE, element).groups()
            facts = _items(items)
            position += 1
        elif isinstance(element, tuple) and len(element) == 2 and position + 1 < len(data):
            head, literal = element
            seq, before, name, size = _match(_LITERAL_HEAD, head).groups()
            if not isinstance(literal, bytes) or len(literal) != int(size):
                raise _OtherShape
            facts = _items(before)
            facts[name] = literal
            facts.update(_items(_match(_LITERAL_TAIL, data[position + 1]).group(1)))
            position += 2
        else:
            raise _OtherShape
        uid = facts.pop(b"UID", None) if uid_is_key else None
        parsed.setdefault(int(seq) if uid is None else uid, {}).update({b"SEQ": int(seq), **facts})
    return parsed


def _match(pattern: re.Pattern[bytes], text: Any) -> re.Match[bytes]:
    match = pattern.fullmatch(text) if isinstance(text, bytes) else None
    if match is None:
        raise _OtherShape
    return match


def _items(text: bytes | None) -> dict[bytes, Any]:
    facts: dict[bytes, Any] = {}
    for match in _ONE_ITEM.finditer(text or b""):
        name, number, flags = match.groups()
        if name is not None:
            facts[name] = int(number)
            continue
        facts[b"FLAGS"] = tuple(flags.split())
        if b"NIL" in facts[b"FLAGS"]:
            raise _OtherShape
    return facts
