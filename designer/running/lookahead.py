"""How far a run reads ahead of its target.

While the target's connections take messages, the run's thread reads, maps and builds the next
ones: up to ``MAX_MESSAGES`` held (built, queued or sent but not yet recorded), of which one at most
larger than ``LARGE_MESSAGE_BYTES`` and the others, with the batch being downloaded,
``MAX_BYTES`` together. Memory then holds one large message, never two.
"""

from __future__ import annotations

from collections.abc import Sequence

MAX_MESSAGES = 64
LARGE_MESSAGE_BYTES = 256 * 1024
MAX_BYTES = 512 * 1024


def too_much_for(held: Sequence[int], size: int) -> bool:
    """Whether a download of ``size`` bytes must wait beside messages of the ``held`` sizes."""
    if not held:
        return False
    if len(held) >= MAX_MESSAGES:
        return True
    if size > LARGE_MESSAGE_BYTES:  # a large message: never beside another
        return max(held) > LARGE_MESSAGE_BYTES
    return sum(n for n in held if n <= LARGE_MESSAGE_BYTES) + size > MAX_BYTES
