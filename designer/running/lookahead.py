"""How far a run reads ahead of its target.

While the target's connections take messages, the run's thread reads, maps and builds the next
ones: up to ``MAX_MESSAGES`` held (built, queued or sent but not yet recorded), of which
``LARGE_AT_ONCE`` at most larger than ``LARGE_MESSAGE_BYTES`` and the others, with the batch being
downloaded, ``MAX_BYTES`` together. Memory then holds two large messages, never three: one being
sent while the next downloads (``memory``: what a sent one freed is reused).
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from typing import TYPE_CHECKING

from connectors.base import Prepared
from designer.running.ledger import debug_copy

if TYPE_CHECKING:
    from designer.running.pipeline import Flight

MAX_MESSAGES = 64
LARGE_MESSAGE_BYTES = 256 * 1024
LARGE_AT_ONCE = 2
MAX_BYTES = 512 * 1024


def too_much_for(held: Sequence[int], size: int) -> bool:
    """Whether a download of ``size`` bytes must wait beside messages of the ``held`` sizes."""
    held = [n for n in held if n]  # a message sent and let go of holds nothing
    if not held:
        return False
    if len(held) >= MAX_MESSAGES:
        return True
    if size > LARGE_MESSAGE_BYTES:  # downloaded beside fewer than LARGE_AT_ONCE large ones
        return sum(1 for n in held if n > LARGE_MESSAGE_BYTES) >= LARGE_AT_ONCE
    return sum(n for n in held if n <= LARGE_MESSAGE_BYTES) + size > MAX_BYTES


def let_go_of_sent(flights: Iterable[Flight]) -> None:
    """Let go of the messages the target took whose "sent" is not recorded yet: their record needs
    only what the ledger keeps of them (attachments by name and size), and they hold nothing more."""
    for flight in flights:
        ready, future = flight.ready, flight.future
        if ready.size and future.done() and not future.cancelled() and future.exception() is None:
            ready.prepared = Prepared(debug_copy(ready.prepared.record), ready.prepared.message_id)
            ready.size = 0
