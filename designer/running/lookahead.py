"""How far a run reads ahead of its target.

While the target's connections take messages, the run's thread reads, maps and builds the next
ones: up to ``MAX_MESSAGES`` held (built, queued or sent but not yet recorded), of which
``LARGE_AT_ONCE`` at most larger than ``LARGE_MESSAGE_BYTES`` and the others, with the batch being
downloaded, ``MAX_BYTES`` together. A large message whose data is sent holds nothing while the
server decides (``let_go``). Memory then holds two large messages, never three: one being sent
while the next downloads (``memory``: what a sent one freed is reused), however many connections
wait for the server's answer.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from typing import TYPE_CHECKING

from connectors.base import Delivery, Prepared
from designer.running.ledger import debug_copy

if TYPE_CHECKING:
    from designer.running.pipeline import Ready

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


def letting_go(write: Callable[..., Delivery], made_room: Callable[[], None]) -> Callable[[Ready], Delivery]:
    """``write`` for the sender threads: each large message is let go of on its thread once its data
    is sent, while the server decides (the target says so: ``written``; the run's thread waiting for
    room is told, ``made_room``), any other once the target took it, before its outcome is given."""

    def send(ready: Ready) -> Delivery:
        def written() -> None:
            let_go(ready)
            made_room()

        # A small one is let go of once answered: waking the run's thread for each would cost more than it frees.
        delivery = write(ready.prepared, written if ready.size > LARGE_MESSAGE_BYTES else None)
        let_go(ready)
        return delivery

    return send


def let_go(ready: Ready) -> None:
    """Until its outcome is recorded, ``ready`` needs only what the ledger keeps of its message
    (attachments by name and size) and holds nothing more; sending it again means reading it again
    (``Ready.emptied``)."""
    if ready.emptied:
        return
    record = ready.prepared.record
    kept = debug_copy(record)
    record.clear()  # in place: the target holds the same record until the server answers
    record.update(kept)
    ready.prepared = Prepared(record, ready.prepared.message_id)
    ready.size = 0
    ready.emptied = True
