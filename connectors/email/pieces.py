"""A large message's pieces (``BODY.PEEK[]<offset.length>``), the next one asked for while one is read.

A large message is downloaded a piece at a time so that it is never in memory whole. Asked for one
after the other, each piece costs a round trip in which the server and the run's thread wait for
each other. So once the server has shown that it names each piece by its origin
(``BODY[]<offset>``, as RFC 3501 says it must), the FETCH of the next piece is sent before the
current one is read: the server sends it meanwhile, and the socket holds it, not the process.

A server may answer the FETCH sent ahead before it completes the earlier one (Dovecot does), so a
piece can come with the previous answer: pieces are taken by their origin, never by their order,
and a piece named otherwise is asked for again on its own. A FETCH sent ahead is answered before
any other command (``settle``), since imaplib would give that command its answer; its piece is kept
for when it is asked for, and a refusal of it stays that piece's (it is asked for again).
"""

from __future__ import annotations

import dataclasses
import imaplib
from collections.abc import Callable
from typing import Any

from connectors.email.fetched import item_named
from connectors.email.imap import GuardedIMAPClient

PIECE_BYTES = 128 * 1024


@dataclasses.dataclass
class _Sent:
    """A FETCH of a piece sent ahead; its answer is read once (``answer``). Its piece may also have
    come with the previous answer (``early``)."""

    client: GuardedIMAPClient
    uid: int
    offset: int
    read: Callable[[], dict[int, dict[bytes, Any]]]
    answered: dict[int, dict[bytes, Any]] | None = None
    early: bytes | None = None

    def answer(self) -> dict[int, dict[bytes, Any]]:
        if self.answered is None:
            self.answered = self.read()
        return self.answered

    def answer_quietly(self) -> bool:
        """Read the answer when it may no longer matter: whether the server gave one (a refusal, of
        a message deleted meanwhile, is the piece's business; a lost connection is raised)."""
        try:
            self.answer()
        except imaplib.IMAP4.abort:
            raise
        except imaplib.IMAP4.error:
            return False
        return True


class PieceReader:
    """The pieces of one source session; holds at most one piece asked for ahead."""

    def __init__(self) -> None:
        self._ahead: _Sent | None = None

    def read(self, client: GuardedIMAPClient, uid: int, offset: int, size: int, ahead: bool
             ) -> tuple[bytes | None, bool]:
        """The piece of message ``uid`` (``size`` bytes announced) at ``offset``, None when the message
        is gone, and whether the server named it by its origin. With ``ahead``, the next piece is
        asked for before this one is read."""
        sent, self._ahead = self._ahead, None
        read_ahead = sent is not None and sent.client is client and (sent.uid, sent.offset) == (uid, offset)
        if not read_ahead:
            if sent is not None and sent.client is client:
                sent.answer_quietly()  # another offset: the server gave a shorter piece than asked
            sent = _Sent(client, uid, offset, client.fetch_later([uid], [_item(offset)]))
        following = offset + PIECE_BYTES
        if ahead and following < size:
            self._ahead = _Sent(client, uid, following, client.fetch_later([uid], [_item(following)]))
        try:
            found = sent.answer().get(uid, {})
        except BaseException:
            self.settle(client)  # the next piece's answer must not be left to the next command
            raise
        if self._ahead is not None:
            self._ahead.early = found.get(_name(following))
        named = found.get(_name(offset), sent.early)
        if named is not None:
            return named, True
        if read_ahead or self._ahead is not None:
            # Named otherwise this time: answers read ahead could not be told apart, so ask again alone.
            self.settle(client)
            return self.read(client, uid, offset, size, ahead=False)
        return item_named(found, b"BODY[]"), False

    def settle(self, client: GuardedIMAPClient) -> None:
        """Read the answer to the FETCH sent ahead, if any, so that another command can go first;
        its piece is kept for when it is asked for (unless the server refused it: then it is asked
        for again)."""
        sent = self._ahead
        if sent is not None and not (sent.client is client and sent.answer_quietly()):
            self._ahead = None

    def forget(self) -> None:
        """The session is gone, and what was sent on it with it."""
        self._ahead = None


def _item(offset: int) -> str:
    return f"BODY.PEEK[]<{offset}.{PIECE_BYTES}>"


def _name(offset: int) -> bytes:
    return b"BODY[]<%d>" % offset
