"""Acknowledging delivered messages in the source (mark read, move, delete), in batches.

One round trip and one ledger update for many messages: a batch goes when ``ACK_BATCH`` wait or
the oldest has waited ``ACK_INTERVAL_SECONDS`` (checked at every step of the run, waits included),
and whatever is left when the run ends.
"""

from __future__ import annotations

import time
from dataclasses import dataclass
from typing import Any

from connectors.base import ConnectorError, SourceKey
from designer.models import LedgerEntry
from designer.running.context import RunAborted, RunContext
from designer.running.ledger import Ledger

# Each batch costs two IMAP round trips and a transaction on the run's thread; a crash before one
# goes only leaves its messages "sent", for the next run to mark without sending them again.
ACK_BATCH = 200
ACK_INTERVAL_SECONDS = 2.0
# Failed acknowledgements in a row that stop a run: the source no longer answers.
ACK_FAILURE_LIMIT = 2


@dataclass
class PendingAck:
    """A message waiting for its after-read action."""

    key: SourceKey
    row: LedgerEntry | None  # None: a skipped message, whose ledger row stays "skipped"
    earlier: bool = False  # sent by an earlier run: this run records that it acknowledged it
    summary: dict[str, str] | None = None


class Acknowledgements:
    """The after-read actions waiting for a batch, by action."""

    def __init__(self, ctx: RunContext, source: Any, ledger: Ledger) -> None:
        self.ctx = ctx
        self.source = source
        self.ledger = ledger
        self._pending: dict[str, list[PendingAck]] = {}  # after-read action -> messages waiting for it
        self._pending_since = 0.0
        self._failed_ack_batches = 0


    def add(self, pending: PendingAck, action: str) -> None:
        """Queue the after-read action; the queue is applied in one go when full or old enough."""
        if not any(self._pending.values()):
            self._pending_since = time.monotonic()
        self._pending.setdefault(action, []).append(pending)
        if sum(len(batch) for batch in self._pending.values()) >= ACK_BATCH:
            self.flush()
        else:
            self.flush_if_due()

    def flush_if_due(self) -> None:
        """Apply the queue once its oldest has waited ``ACK_INTERVAL_SECONDS``: the run calls this at
        every step, waits on the target included, so a message is marked soon after its delivery even
        when no other follows it."""
        if any(self._pending.values()) and time.monotonic() - self._pending_since >= ACK_INTERVAL_SECONDS:
            self.flush()

    def flush(self, final: bool = False) -> None:
        """Apply the queued after-read actions, then mark their ledger rows acknowledged.

        A failure leaves those rows "sent": the next run acknowledges them without sending again.
        ``ACK_FAILURE_LIMIT`` in a row stop the run (unless it is ending anyway).
        """
        pending, self._pending = self._pending, {}
        error: ConnectorError | None = None
        for action, batch in pending.items():
            if action != "leave":
                try:
                    self.source.acknowledge([p.key for p in batch], action)
                except ConnectorError as exc:
                    error = exc
                    delivered = sum(1 for p in batch if p.row is not None)
                    self.ctx.unacknowledged += delivered
                    positions = ", ".join(str(p.key.position) for p in batch[:10]) + (", …" if len(batch) > 10 else "")
                    self.ctx.log(f"could not {action.replace('_', ' ')} message(s) {positions}: {exc}", "error")
                    self._failed_ack_batches += 1
                    continue
                self._failed_ack_batches = 0
            self.ledger.mark_acknowledged(batch)
        # Every batch was tried first: each one that failed is counted and logged, none is forgotten.
        if error is not None and self._failed_ack_batches >= ACK_FAILURE_LIMIT and not final:
            raise RunAborted(f"the source stopped answering: {error}")
