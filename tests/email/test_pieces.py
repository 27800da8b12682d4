"""A large message's pieces: the next one asked for while one is read, each taken by its origin."""

from __future__ import annotations

import imaplib
import random
from collections.abc import Callable
from typing import Any

import pytest

from connectors.email.imap import GuardedIMAPClient
from connectors.email.message.parse import parse_message
from connectors.email.pieces import PIECE_BYTES, PieceReader
from tests.email.test_source_target import message, source
from tests.servers.dovecot import Mailbox


@pytest.fixture
def exchanges(monkeypatch: pytest.MonkeyPatch) -> list[tuple[str, str]]:
    """Every FETCH as ("sent", items) when it goes to the server and ("read", items) when its answer is read."""
    events: list[tuple[str, str]] = []
    original = GuardedIMAPClient.fetch_later

    def spy(self: GuardedIMAPClient, messages: Any, data: Any, modifiers: Any = None) -> Any:
        events.append(("sent", " ".join(data)))
        read = original(self, messages, data, modifiers)

        def logged() -> Any:
            events.append(("read", " ".join(data)))
            return read()

        return logged

    monkeypatch.setattr(GuardedIMAPClient, "fetch_later", spy)
    return events


def _whole(mailbox: Mailbox, uid: int) -> bytes:
    with mailbox.client() as other:
        other.select_folder("INBOX", readonly=True)
        return other.fetch([uid], ["BODY.PEEK[]"])[uid][b"BODY[]"]


def test_dovecot_sends_the_next_piece_while_the_run_reads_one(mailbox: Mailbox, exchanges: list) -> None:
    attachment = random.Random(8).randbytes(600_000)
    large = mailbox.append("INBOX", message("large", attachment=attachment))

    with source(mailbox) as inbox:
        [item] = list(inbox.fetch(inbox.candidates()))

    raw = _whole(mailbox, large)
    assert item.record == parse_message(raw, uid=large, uidvalidity=item.record["uidvalidity"], folder="INBOX")
    pieces = [(event, items) for event, items in exchanges if items.startswith("BODY.PEEK[]<")
              and not items.startswith(f"BODY.PEEK[]<0.{PIECE_BYTES + 1}>")]
    names = [f"BODY.PEEK[]<{n * PIECE_BYTES}.{PIECE_BYTES}>" for n in range(len(raw) // PIECE_BYTES + 1)]
    # The first piece shows that Dovecot names pieces by origin; from then on each one is asked for
    # before the one before it is read.
    assert pieces[:2] == [("sent", names[0]), ("read", names[0])]
    for n in range(1, len(names) - 1):
        assert pieces.index(("sent", names[n + 1])) < pieces.index(("read", names[n])), pieces
    assert [items for event, items in pieces if event == "sent"] == names  # each piece asked for once


def test_another_command_between_two_pieces_reads_the_one_sent_ahead_first(mailbox: Mailbox) -> None:
    attachment = random.Random(9).randbytes(500_000)
    small = mailbox.append("INBOX", message("small"))
    large = mailbox.append("INBOX", message("large", attachment=attachment))

    with source(mailbox) as inbox:
        keys = inbox.candidates()

        def mark_the_small_one_read(_size: int) -> None:
            inbox.acknowledge([keys[0]], "mark_read")  # as a run's acknowledgements do, between pieces

        items = list(inbox.fetch(keys, make_room=mark_the_small_one_read))

    raw = _whole(mailbox, large)
    assert [item.key.position for item in items] == [small, large]
    assert items[1].record == parse_message(raw, uid=large, uidvalidity=items[1].record["uidvalidity"],
                                            folder="INBOX")
    assert mailbox.flags() == {small: {"\\Seen"}, large: set()}


class _Client:
    """A server answering piece FETCHes from ``raw``: ``early`` puts the answer to the next FETCH in
    with the one before (as Dovecot may), ``name`` says how each piece is named in the answer, and
    a FETCH of an offset in ``refuse`` is answered NO."""

    def __init__(self, raw: bytes, early: bool, name: Callable[[int], bytes], refuse: tuple[int, ...] = ()) -> None:
        self.raw, self.early, self.name, self.refuse = raw, early, name, refuse
        self.sent: list[int] = []
        self._answered: set[int] = set()  # FETCHes (by their place in ``sent``) whose answer went out

    def fetch_later(self, messages: list[int], data: list[str]) -> Callable[[], dict]:
        request = len(self.sent)
        self.sent.append(int(data[0].split("<")[1].split(".")[0]))

        def read() -> dict:
            answer: dict[bytes, bytes] = {}
            for n in [request, request + 1] if self.early else [request]:
                if n < len(self.sent) and n not in self._answered:
                    self._answered.add(n)
                    if self.sent[n] in self.refuse:
                        if n == request:
                            raise imaplib.IMAP4.error("FETCH failed: [EXPUNGEISSUED] the message no longer exists")
                        continue
                    answer[self.name(self.sent[n])] = self.raw[self.sent[n] : self.sent[n] + PIECE_BYTES]
            return {messages[0]: answer} if answer else {}

        return read


@pytest.mark.parametrize("early", [False, True])
def test_each_piece_is_taken_by_its_origin_whichever_answer_brings_it(early: bool) -> None:
    raw = random.Random(10).randbytes(5 * PIECE_BYTES + 100)
    client = _Client(raw, early, lambda offset: b"BODY[]<%d>" % offset)
    reader, got, named = PieceReader(), b"", False
    while len(got) < len(raw):
        piece, named = reader.read(client, 7, len(got), len(raw), ahead=named)  # type: ignore[arg-type]
        got += piece
    assert got == raw
    assert client.sent == [n * PIECE_BYTES for n in range(6)]  # each asked for once, no more


def test_a_server_that_does_not_name_its_pieces_gets_one_fetch_at_a_time() -> None:
    raw = random.Random(12).randbytes(3 * PIECE_BYTES + 5)
    client = _Client(raw, early=True, name=lambda _offset: b"BODY[]")
    reader, got, named, reads = PieceReader(), b"", False, 0
    while len(got) < len(raw):
        before = len(client.sent)
        piece, named = reader.read(client, 7, len(got), len(raw), ahead=named)  # type: ignore[arg-type]
        assert len(client.sent) == before + 1 and not named
        got += piece
        reads += 1
    assert got == raw and reads == 4


def _read_all(reader: PieceReader, client: _Client, size: int) -> bytes:
    got, named = b"", False
    while len(got) < size:
        piece, named = reader.read(client, 7, len(got), size, ahead=named)  # type: ignore[arg-type]
        got += piece
    return got


def test_a_server_that_names_only_the_first_piece_by_its_origin_loses_none_of_the_others() -> None:
    raw = random.Random(13).randbytes(4 * PIECE_BYTES + 9)
    client = _Client(raw, early=True, name=lambda offset: b"BODY[]<0>" if offset == 0 else b"BODY[]")
    assert _read_all(PieceReader(), client, len(raw)) == raw


def test_a_refused_fetch_sent_ahead_is_not_the_next_commands_failure() -> None:
    raw = random.Random(14).randbytes(4 * PIECE_BYTES)
    client = _Client(raw, early=False, name=lambda offset: b"BODY[]<%d>" % offset, refuse=(2 * PIECE_BYTES,))
    reader = PieceReader()
    first, named = reader.read(client, 7, 0, len(raw), ahead=False)  # type: ignore[arg-type]
    reader.read(client, 7, PIECE_BYTES, len(raw), ahead=named)  # type: ignore[arg-type]  # asks for the third ahead
    reader.settle(client)  # type: ignore[arg-type]  # another command (an acknowledgement) comes first: no error
    with pytest.raises(imaplib.IMAP4.error):  # the refusal is the third piece's, when it is asked for again
        reader.read(client, 7, 2 * PIECE_BYTES, len(raw), ahead=True)  # type: ignore[arg-type]
    reader.settle(client)  # type: ignore[arg-type]  # and nothing of it is left for the command after


def test_a_piece_read_for_another_command_is_kept_for_when_it_is_asked_for() -> None:
    raw = random.Random(15).randbytes(3 * PIECE_BYTES + 1)
    client = _Client(raw, early=False, name=lambda offset: b"BODY[]<%d>" % offset)
    reader = PieceReader()
    first, named = reader.read(client, 7, 0, len(raw), ahead=False)  # type: ignore[arg-type]
    second, named = reader.read(client, 7, PIECE_BYTES, len(raw), ahead=named)  # type: ignore[arg-type]
    reader.settle(client)  # type: ignore[arg-type]
    third, _named = reader.read(client, 7, 2 * PIECE_BYTES, len(raw), ahead=False)  # type: ignore[arg-type]
    assert first + second + third == raw[: 3 * PIECE_BYTES]
    assert client.sent == [0, PIECE_BYTES, 2 * PIECE_BYTES]  # the third was not asked for twice
