"""Shortcuts taken for speed while building a message give what the plain stdlib way gives."""

from __future__ import annotations

import random
from email.utils import getaddresses

import pytest

from connectors.email.message import fields

NAMES = ["Jane", "Doe", "O'Brien", "a.b", "x-y", "7", "a+b", "..", ".", "-", "Jörg", '"Doe, J"', "(c)", "{x}"]
LOCALS = ["a", "a.b", "a..b", ".a", "a.", "a+b", "x_y", "o'neil", "a!b", "j{x}", "x" * 65, "ü", '"q"']
DOMAINS = ["example.com", "localhost", "a-b.c", "-x.com", "x..com", "x.com.", ".x", "ex_ample.com", "1.2.3.4",
           "bücher.de", "[1.2.3.4]", "[IPv6:::1]", "a" * 64 + ".com", "EXAMPLE.COM", ""]
SHAPES = ["{a}", "{n} <{a}>", "<{a}>", "{n}  <{a}>", "{n} {a}", "{n}<{a}>", "{n} <{a}>x", "{n}\t<{a}>", "{a} ({n})"]


def _address_texts(count: int) -> list[str]:
    rng = random.Random(5)
    texts = []
    for _ in range(count):
        name = " ".join(rng.choice(NAMES) for _ in range(rng.randrange(0, 4)))
        address = f"{rng.choice(LOCALS)}@{rng.choice(DOMAINS)}"
        texts.append(rng.choice(SHAPES).format(n=name, a=address).strip())
    return texts


def test_an_address_reads_as_getaddresses_reads_it() -> None:
    texts = _address_texts(20_000)

    assert sum(fields._SIMPLE.fullmatch(text) is not None for text in texts) > 500  # the shortcut is taken
    for text in texts:
        assert fields._pairs(text) == [(n, a) for n, a in getaddresses([text]) if n or a], text


@pytest.mark.parametrize("domain", ["a..b", ".a", "a" * 64 + ".com", "x." + "a" * 64])
def test_an_ascii_domain_the_idna_codec_refuses_is_refused(domain: str) -> None:
    # ascii_domain takes an ASCII domain as it is, without the codec, whose checks its own include.
    with pytest.raises(UnicodeError):
        domain.encode("idna")

    assert fields.ascii_domain(domain) is None
