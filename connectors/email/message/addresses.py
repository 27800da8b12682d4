"""Address lists read with the email package's parser, remembered: the same senders and recipients
come back message after message, and the parser is the costliest step of reading one.

Most senders are new, though, and most values are one address in a plain form, which is read
here directly, giving what the parser gives for it; anything else goes to the parser.
"""

from __future__ import annotations

import re
from collections.abc import Sequence
from email.utils import getaddresses
from functools import lru_cache

# Longer header values (a hostile message's megabyte of addresses) are parsed but not remembered.
REMEMBERED_CHARS = 1000

# RFC 5322 atext. The parser also takes dots into a display name's words, and joins the words with
# one space whatever the run of blanks between them; a quoted name it gives as it is, so one with a
# quoted-pair (which it unescapes) is left to it. Possessive: a long value is never backtracked over.
_ATOM = r"[A-Za-z0-9!#$%&'*+/=?^_`{|}~-]++"
_WORD = r"[A-Za-z0-9!#$%&'*+/=?^_`{|}~.-]++"
_ADDRESS = rf"{_ATOM}(?:\.{_ATOM})*+@{_ATOM}(?:\.{_ATOM})*+"
_PLAIN = re.compile(
    rf'[ \t]*+(?:(?P<bare>{_ADDRESS})'
    rf'|(?:"(?P<quoted>[ \t!#-\[\]-~]*+)"|(?P<phrase>{_WORD}(?:[ \t]++{_WORD})*+))?[ \t]*+<(?P<angled>{_ADDRESS})>)'
    r"[ \t]*+"
)


def address_pairs(values: Sequence[str]) -> tuple[tuple[str, str], ...]:
    """``getaddresses(values)``: (display name, address) pairs."""
    values = tuple(values)
    if sum(len(value) for value in values) > REMEMBERED_CHARS:
        return _pairs(values)
    return _remembered(values)


def _pairs(values: tuple[str, ...]) -> tuple[tuple[str, str], ...]:
    """``getaddresses(values)``, read directly when every value is one address in a plain form."""
    pairs = []
    for value in values:
        found = _PLAIN.fullmatch(value)
        if found is None:
            return tuple(getaddresses(values))
        bare, quoted, phrase, angled = found.groups()
        if bare is not None:
            pairs.append(("", bare))
        elif quoted is not None:
            pairs.append((quoted, angled))
        else:
            pairs.append((" ".join(phrase.split()) if phrase else "", angled))
    return tuple(pairs)


_remembered = lru_cache(maxsize=4096)(_pairs)
