"""FETCH responses read without imapclient's tokenizer give what imapclient gives (connectors.email.fetched)."""

from __future__ import annotations

import random
from typing import Any

import imapclient.imapclient
import pytest
from imapclient.response_parser import parse_fetch_response

from connectors.email import fetched
from tests.email.test_source_target import message, source

FLAGS = [b"\\Seen", b"\\Answered", b"\\Flagged", b"\\Deleted", b"\\Draft", b"\\Recent", b"$Forwarded", b"$MDNSent",
         b"NonJunk", b"a.b", b"1.5", b"-1", b"123", b"0123", b"NIL", b"nil", b"\\*", b'"quoted"', b"x(y"]
LITERALS = [b"", b")", b"Subject: {5}\r\n\r\n)) (", b"From: a@example.org\r\n\r\nbody\r\n", bytes(range(256))]


def _item(rng: random.Random) -> bytes:
    kind = rng.choice(["uid", "size", "flags", "flags", "date", "lower"])
    if kind == "uid":
        return b"UID " + rng.choice([b"1", b"42", b"0", b"007", b"4294967295"])
    if kind == "size":
        return b"RFC822.SIZE " + rng.choice([b"0", b"5040", b"0123", b"NIL"])
    if kind == "flags":
        return b"FLAGS (" + b" ".join(rng.sample(FLAGS, rng.randint(0, 3))) + b")"
    if kind == "date":
        return b'INTERNALDATE "05-Dec-2026 20:02:42 +0000"'
    return b"uid 9"


def _response(rng: random.Random) -> list[Any]:
    seq = rng.choice([b"1", b"17", b"017"])
    before = [_item(rng) for _ in range(rng.randint(0, 3))]
    after = [_item(rng) for _ in range(rng.randint(0, 2))]
    if rng.random() < 0.5:
        return [seq + b" (" + b" ".join(before + after) + b")"]
    literal = rng.choice(LITERALS)
    size = len(literal) + rng.choice([0, 0, 0, 1])
    name = rng.choice([b"BODY[]<0>", b"BODY[]", b"BODY[HEADER.FIELDS (SUBJECT)]", b"RFC822"])
    head = seq + b" (" + b"".join(item + b" " for item in before) + name + b" {%d}" % size
    return [(head, literal), b"".join(b" " + item for item in after) + b")"]


def _imapclients(data: list[Any], uid_is_key: bool) -> Any:
    try:
        return dict(parse_fetch_response(list(data), True, uid_is_key))
    except Exception as exc:  # noqa: BLE001 - the same error is what equivalence means here
        return type(exc)


def _ours(data: list[Any], uid_is_key: bool) -> Any:
    try:
        return fetched.parse_fetch(data, uid_is_key)
    except Exception as exc:  # noqa: BLE001
        return type(exc)


@pytest.mark.parametrize("uid_is_key", [True, False])
def test_generated_responses_read_as_imapclient_reads_them(uid_is_key: bool) -> None:
    rng = random.Random(11)
    plain = 0
    for _ in range(20_000):
        data = [piece for _ in range(rng.randint(1, 4)) for piece in _response(rng)]
        assert _ours(data, uid_is_key) == _imapclients(data, uid_is_key), data
        try:
            fetched._parse_plain(data, uid_is_key)
            plain += 1
        except fetched._OtherShape:
            pass
    assert plain > 500  # the fast reading is what was compared, not only imapclient against itself


def test_what_dovecot_answers_a_run_reads_the_fast_way(mailbox: Any, monkeypatch: pytest.MonkeyPatch) -> None:
    answers: list[list[Any]] = []
    original = fetched._parse_plain

    def spy(data: Any, uid_is_key: bool) -> Any:
        answers.append(list(data))
        return original(data, uid_is_key)

    monkeypatch.setattr(fetched, "_parse_plain", spy)
    for n in range(3):
        mailbox.append("INBOX", message(f"m{n}"))
    with mailbox.client() as other:
        other.select_folder("INBOX")
        other.add_flags(other.search("ALL")[:1], [b"$Forwarded", b"\\Flagged"])
    with source(mailbox) as inbox:
        items = list(inbox.fetch(inbox.candidates()))

    assert [item.record["subject"] for item in items] == ["m0", "m1", "m2"]
    assert len(answers) == 2  # the sizes and flags, then the bodies
    for data in answers:
        assert original(data, True) == dict(parse_fetch_response(list(data), True, True))
    assert imapclient.imapclient.parse_fetch_response is parse_fetch_response  # imapclient itself is untouched
