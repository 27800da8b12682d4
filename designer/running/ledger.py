"""The delivery ledger of one run: a row per message, written before each side effect, and the run's records.

Rows are keyed by (operation, connection, scope, epoch, position) plus the record's identity; the
README's "How delivery works" tells the states and the windows that remain.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import TYPE_CHECKING, Any

from django.db import transaction
from django.db.models import QuerySet
from django.utils import timezone

from connectors.base import Delivery, SourceKey
from designer.models import LedgerEntry, RunRecord
from designer.running.context import RunContext
from designer.running.rows import insert_rows, unsaved, update_rows
from designer.running.variables import masked

if TYPE_CHECKING:
    from designer.running.acks import PendingAck
    from designer.running.pipeline import Ready

# Runs in which a message may fail for a reason of its own before it is quarantined.
QUARANTINE_RUNS = 3
# What an older UIDVALIDITY's row of a message still says of it once its folder was recreated: delivered
# (acknowledged only), given up on (not sent again unless replayed), or maybe sent (resent only under
# its Message-ID). A skipped one is simply judged again.
CARRIED_OVER = (LedgerEntry.State.SENT, LedgerEntry.State.ACKNOWLEDGED, LedgerEntry.State.FAILED,
                LedgerEntry.State.QUARANTINED, LedgerEntry.State.SENDING, LedgerEntry.State.IN_DOUBT,
                LedgerEntry.State.RETRY)
# Ledger look-ups are chunked to stay under SQLite's limit on query parameters.
LOOKUP_CHUNK = 500


def ledger_rows(operation_id: int, connection_id: int,
                 keys: Sequence[SourceKey]) -> dict[tuple[str, int, int], LedgerEntry]:
    rows: dict[tuple[str, int, int], LedgerEntry] = {}
    by_scope: dict[tuple[str, int], list[int]] = {}
    for key in keys:
        by_scope.setdefault((key.scope, key.epoch), []).append(key.position)
    for (scope, epoch), positions in by_scope.items():
        for start in range(0, len(positions), LOOKUP_CHUNK):
            chunk = positions[start : start + LOOKUP_CHUNK]
            for row in LedgerEntry.objects.filter(
                operation_id=operation_id, connection_id=connection_id, scope=scope, epoch=epoch, position__in=chunk
            ):
                rows[(row.scope, row.epoch, row.position)] = row
    return rows


def _other_epoch_rows(operation_id: int, connection_id: int, scope: str, epoch: int) -> QuerySet[LedgerEntry]:
    """The rows of ``scope`` under another epoch than ``epoch`` that still say something of their
    message (``CARRIED_OVER``)."""
    return LedgerEntry.objects.filter(operation_id=operation_id, connection_id=connection_id, scope=scope,
                                      state__in=CARRIED_OVER).exclude(epoch=epoch)


def known_under_other_epochs(operation_id: int, connection_id: int, scope: str, epoch: int) -> bool:
    return _other_epoch_rows(operation_id, connection_id, scope, epoch).exists()


def earlier_epoch_row(operation_id: int, connection_id: int, key: SourceKey) -> LedgerEntry | None:
    """The same message (by Message-ID) under an older UIDVALIDITY: a row that delivered it, else the latest."""
    if not key.identity:
        return None
    rows = _other_epoch_rows(operation_id, connection_id, key.scope, key.epoch).filter(identity=key.identity)
    delivered = rows.filter(state__in=(LedgerEntry.State.SENT, LedgerEntry.State.ACKNOWLEDGED)).first()
    return delivered or rows.order_by("-updated_at", "-pk").first()


def first_record_facts(ledger_ids: list[int]) -> dict[int, dict[str, str]]:
    """Subject, sender and recipients of each ledger row's first run record, in one query."""
    facts: dict[int, dict[str, str]] = {}
    if not ledger_ids:
        return facts  # Django compiles the whole query before it finds that an empty IN matches nothing
    records = RunRecord.objects.filter(ledger_id__in=ledger_ids).order_by("ledger_id", "id")
    for ledger_id, subject, sender, recipients in records.values_list("ledger_id", "subject", "sender", "recipients"):
        facts.setdefault(ledger_id, {"subject": subject, "from": sender, "to": recipients})
    return facts


def debug_copy(message: dict[str, Any]) -> dict[str, Any]:
    """What debug mode stores of a rendered message: attachments by name and size only."""
    copy = {k: v for k, v in message.items() if k != "attachments"}
    attachments = message.get("attachments") or []
    if isinstance(attachments, list):
        copy["attachments"] = [
            {"filename": a.get("filename", ""), "size": a.get("size") or len(a.get("content") or b"")}
            for a in attachments
            if isinstance(a, dict)
        ]
    plain = (str, int, float, bool, list, dict, type(None))
    return {k: (v if isinstance(v, plain) else str(v)) for k, v in copy.items()}


class Ledger:
    """Ledger rows and run records of one run, for one source connection."""

    def __init__(self, ctx: RunContext, connection_id: int) -> None:
        self.ctx = ctx
        self.connection_id = connection_id
        # (scope, epoch) -> whether this operation delivered anything from the scope under another epoch.
        self._other_epochs: dict[tuple[str, int], bool] = {}

    def earlier_epoch_row(self, key: SourceKey) -> LedgerEntry | None:
        """``earlier_epoch_row``, looked for only when the ledger holds a row of ``key``'s scope under
        another epoch (asked once per scope and run).

        Only then can a new message be one known before its folder was recreated. The answer
        cannot change during the run: the operation's lease keeps other runs of it out, and this
        run only writes rows under the epoch it reads.
        """
        scope = (key.scope, key.epoch)
        if scope not in self._other_epochs:
            self._other_epochs[scope] = known_under_other_epochs(self.ctx.operation.pk, self.connection_id, *scope)
        return earlier_epoch_row(self.ctx.operation.pk, self.connection_id, key) if self._other_epochs[scope] else None


    def new_row(self, key: SourceKey, state: str, **fields: Any) -> LedgerEntry:
        return LedgerEntry.objects.create(
            connection_id=self.connection_id, scope=key.scope, epoch=key.epoch, position=key.position,
            identity=key.identity[:998], state=state, operation=self.ctx.operation, **fields,
        )

    def carry_over(self, key: SourceKey, earlier: LedgerEntry) -> LedgerEntry:
        """This epoch's row for a message that ``earlier``, an older epoch's row, knew (``earlier_epoch_row``)."""
        delivered = earlier.state in (LedgerEntry.State.SENT, LedgerEntry.State.ACKNOWLEDGED)
        return self.new_row(
            key, LedgerEntry.State.SENT if delivered else earlier.state, out_message_id=earlier.out_message_id,
            reply=f"delivered before the folder was recreated: {earlier.reply}"[:2000] if delivered else "",
            error=earlier.error, attempts=earlier.attempts, poison_runs=earlier.poison_runs,
        )

    def save_row(self, key: SourceKey, row: LedgerEntry | None, state: str, **fields: Any) -> LedgerEntry:
        if row is None:
            return self.new_row(key, state, **fields)
        row.state = state
        for name, value in fields.items():
            setattr(row, name, value)
        row.save()
        return row

    def record(self, key: SourceKey, row: LedgerEntry | None, summary: dict[str, str], status: str,
                error: str = "", rendered: dict[str, Any] | None = None) -> RunRecord:
        record = self.unsaved_record(key, row, summary, status, error, rendered)
        record.save()
        return record

    def unsaved_record(self, key: SourceKey, row: LedgerEntry | None, summary: dict[str, str], status: str,
                       error: str = "", rendered: dict[str, Any] | None = None) -> RunRecord:
        secrets = self.ctx.operation.project.secret_values
        delivered = masked(self._delivered(rendered), secrets) if rendered is not None else {}
        return unsaved(
            RunRecord, run_id=self.ctx.run.pk, ledger_id=row.pk if row is not None else None, position=key.position,
            identity=key.identity[:998], subject=summary.get("subject", "")[:2000],
            sender=summary.get("from", "")[:2000], recipients=summary.get("to", "")[:5000], status=status,
            error=error[:10000], delivered_to=delivered.get("to", "")[:5000],
            delivered_subject=delivered.get("subject", "")[:2000],
            rendered=masked(debug_copy(rendered), secrets) if rendered is not None and self.ctx.debug else None,
        )

    def _delivered(self, rendered: dict[str, Any]) -> dict[str, str]:
        """The rendered message as its target summarises it (to, subject...)."""
        target = self.ctx.operation.target
        if target is None:
            return {}
        try:
            return target.connection.connector_type.record_summary(rendered)
        except LookupError:
            return {}

    def fail(self, key: SourceKey, row: LedgerEntry | None, summary: dict[str, str], error: str,
              transient: bool, rendered: dict[str, Any] | None = None, poison: bool = False) -> None:
        """Record a failure. ``poison``: it is about this message (its content, the mapping), so after
        ``QUARANTINE_RUNS`` runs it is quarantined instead of blocking every later run."""
        state = LedgerEntry.State.RETRY if transient else LedgerEntry.State.FAILED
        status = RunRecord.Status.RETRY if transient else RunRecord.Status.FAILED
        poison_runs = (row.poison_runs if row is not None else 0) + (1 if poison else 0)
        if poison and poison_runs >= QUARANTINE_RUNS:
            state, status = LedgerEntry.State.QUARANTINED, RunRecord.Status.QUARANTINED
            error = f"quarantined after failing in {poison_runs} runs: {error}"
        with transaction.atomic():
            row = self.save_row(key, row, state, error=error, poison_runs=poison_runs)
            self.record(key, row, summary, status, error, rendered)
        self.ctx.bump(failed_count=1)
        self.ctx.log(f"{summary.get('subject')!r}: {error}", "error")

    def doubt(self, key: SourceKey, row: LedgerEntry, summary: dict[str, str], error: str,
              rendered: dict[str, Any] | None = None) -> None:
        """Sent, outcome unknown: never sent again in this run; a later one resends it under the same Message-ID."""
        with transaction.atomic():
            row = self.save_row(key, row, LedgerEntry.State.IN_DOUBT, error=error)
            self.record(key, row, summary, RunRecord.Status.IN_DOUBT, error, rendered)
        self.ctx.in_doubt += 1
        self.ctx.log(f"{summary.get('subject')!r}: {error} — in doubt, not sent again in this run", "error")

    def mark_sending(self, readies: list[Ready]) -> None:
        """Write the "sending" rows of ``readies`` in bulk (``ready.row``), in the caller's
        transaction, which checks the run's lease (``RunContext.holds_leases``) before committing them."""
        now = timezone.now()
        new, known = [], []
        for ready in readies:
            row = ready.row
            if row is None:
                key = ready.key
                row = unsaved(LedgerEntry, connection_id=self.connection_id, scope=key.scope, epoch=key.epoch,
                              position=key.position, identity=key.identity[:998], operation_id=self.ctx.operation.pk,
                              attempts=0)
                new.append(row)
            else:
                known.append(row)
            row.state = LedgerEntry.State.SENDING
            row.out_message_id = ready.prepared.message_id
            row.attempts += 1
            row.updated_at = now
            ready.row = row
        insert_rows(new)
        update_rows(known, ["state", "out_message_id", "attempts", "updated_at"])

    def mark_sent(self, sent: list[tuple[LedgerEntry, SourceKey, dict[str, str], Delivery, dict[str, Any]]]) -> None:
        """The "sent" rows and run records of a group of delivered messages, in one transaction."""
        now = timezone.now()
        records = []
        for row, key, summary, delivery, rendered in sent:
            row.state = LedgerEntry.State.SENT
            row.reply = delivery.reply[:2000]
            row.out_message_id = delivery.message_id or row.out_message_id
            row.error = ""
            row.updated_at = now
            records.append(self.unsaved_record(key, row, summary, RunRecord.Status.SENT, rendered=rendered))
        # Inside the caller's transaction when there is one: a savepoint would cost two statements
        # a group, and a failure rolls the whole group back anyway.
        with transaction.atomic(savepoint=False):
            update_rows([row for row, *_ in sent], ["state", "reply", "out_message_id", "error", "updated_at"])
            insert_rows(records, keys=False)  # nothing refers to a run record here

    def mark_acknowledged(self, batch: list[PendingAck]) -> None:
        rows = [p for p in batch if p.row is not None]
        if not rows:
            return
        earlier = [p for p in rows if p.earlier]
        # Without the message in hand (acknowledge-only), its first run's record tells what it was.
        first_facts = first_record_facts([p.row.pk for p in earlier if p.summary is None])
        with transaction.atomic():
            LedgerEntry.objects.filter(pk__in=[p.row.pk for p in rows]).update(
                state=LedgerEntry.State.ACKNOWLEDGED, updated_at=timezone.now())
            RunRecord.objects.bulk_create(
                [self._acknowledged_record(p, p.summary or first_facts.get(p.row.pk, {})) for p in earlier])

    def _acknowledged_record(self, pending: PendingAck, facts: dict[str, str]) -> RunRecord:
        row = pending.row
        return RunRecord(
            run=self.ctx.run, ledger=row, position=pending.key.position,
            identity=(pending.key.identity or row.identity)[:998],
            subject=facts.get("subject", "")[:2000], sender=facts.get("from", "")[:2000],
            recipients=facts.get("to", "")[:5000], status=RunRecord.Status.ACKNOWLEDGED,
        )
