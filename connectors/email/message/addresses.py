"""Address lists read with the email package's parser, remembered: the same senders and recipients
come back message after message, and the parser is the costliest step of reading one."""

from __future__ import annotations

from collections.abc import Sequence
from email.utils import getaddresses
from functools import lru_cache

# Longer header values (a hostile message's megabyte of addresses) are parsed but not remembered.
REMEMBERED_CHARS = 1000


def address_pairs(values: Sequence[str]) -> tuple[tuple[str, str], ...]:
    """``getaddresses(values)``: (display name, address) pairs."""
    values = tuple(values)
    if sum(len(value) for value in values) > REMEMBERED_CHARS:
        return tuple(getaddresses(values))
    return _remembered(values)


@lru_cache(maxsize=4096)
def _remembered(values: tuple[str, ...]) -> tuple[tuple[str, str], ...]:
    return tuple(getaddresses(values))
