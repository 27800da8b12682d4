"""A message read from its source once more, to send it again: its content was let go of once its
data was sent (``lookahead.let_go``), and the server then answered with a temporary failure."""

from __future__ import annotations

from typing import TYPE_CHECKING

from connectors.base import ConnectorError, Prepared, SourceSession, TargetSession
from designer.running.ledger import Ledger
from designer.running.transform import transform_in_run

if TYPE_CHECKING:
    from designer.running.pipeline import Ready


def read_again(ready: Ready, source: SourceSession, target: TargetSession, ledger: Ledger) -> bool:
    """Read and build ``ready``'s message again, under its Message-ID (the receiver sees one message
    tried twice). False when that failed (recorded as failed for now: the next run tries again)."""
    prepared, error = _read_and_build(ready, source, target, ledger)
    if prepared is None:
        ledger.fail(ready.key, ready.row, ready.summary, f"not sent again: {error}", transient=True,
                    rendered=ready.prepared.record)
        return False
    ready.prepared, ready.emptied = prepared, False
    return True


def _read_and_build(ready: Ready, source: SourceSession, target: TargetSession, ledger: Ledger
                    ) -> tuple[Prepared | None, str]:
    try:
        items = list(source.fetch([ready.key]))  # one message: the source's own limits apply, as at the first read
    except ConnectorError as exc:
        return None, f"reading it again from the source failed: {exc}"
    if not items:
        return None, "it is no longer in the source folder"
    if items[0].record is None:
        return None, items[0].skip_reason or "it could not be read again"
    result = transform_in_run(ledger.ctx.operation, items[0].record, target, ready.key,
                              apply_condition=False, message_id=ready.prepared.message_id)  # it held at the first read
    if result.prepared is None:
        return None, result.error
    return result.prepared, ""
