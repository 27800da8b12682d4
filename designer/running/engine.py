"""Running an operation: read from the source, map, deliver to the target, acknowledge.

The delivery guarantee (no message lost, none delivered twice) rests on the ledger
(``LedgerEntry``), written before every side effect:

1. ``sending`` is committed, with the Message-ID the target will use, before the target is asked;
2. ``sent`` is committed as soon as the target accepted the message (its reply kept);
3. only then is the source acknowledged (marked read, moved or deleted), and the row becomes
   ``acknowledged``. Acknowledgements are batched (``ACK_BATCH`` messages or
   ``ACK_INTERVAL_SECONDS``, and whatever is left when the run ends or stops): a crash before a
   batch is applied leaves its rows ``sent``, which the next run acknowledges.

A later run that finds ``sent`` only acknowledges; one that finds ``acknowledged``, ``failed`` or
``skipped`` leaves the message alone. The one window no protocol closes is between the target's
250 reply and the ``sent`` commit: a worker killed exactly there leaves ``sending``, and the next
run sends again *with the same Message-ID*, so the copy is recognisable and deduplicated by
mail systems that honour Message-ID. Everything else is exactly once. Sending is pipelined (see
``_Delivery``): when the reply comes while the run's thread is still reading and building the
next message, the commit waits for that, so the window is at most one message's reading and
preparation (milliseconds; tens of them for a message of megabytes).
"""

from __future__ import annotations

import hashlib
import logging
import os
import signal
import socket
import time
from collections import deque
from collections.abc import Iterator, Sequence
from concurrent.futures import Future, ThreadPoolExecutor
from contextlib import ExitStack, contextmanager
from dataclasses import dataclass, replace
from typing import Any

from django.db import connection, transaction
from django.db.models import F
from django.utils import timezone

from connectors.base import ConfigError, ConnectionFailed, ConnectorError, Delivery, Prepared, SourceItem, SourceKey
from designer.crypto import SecretsUnreadable
from designer.models import Activity, LedgerEntry, Operation, Run, RunLog, RunRecord
from designer.running import leases
from designer.running.mapping import MappingError, condition_holds, context_for, render_mapping

log = logging.getLogger(__name__)

# How many consecutive transient target failures end a run early: the target is down, and
# trying every remaining message would only delay the next run.
TRANSIENT_STREAK_LIMIT = 3
# While the target takes one message the next ones are read, mapped and built: up to this many
# messages, of which one at most larger than LOOKAHEAD_MAX_BYTES and the others that much together.
# Memory then holds one large message, never two.
LOOKAHEAD_MAX_MESSAGES = 8
LOOKAHEAD_MAX_BYTES = 256 * 1024
# Delivered messages are acknowledged in the source together, once this many wait or the oldest
# has waited this long: one IMAP round trip and one ledger update for many messages.
ACK_BATCH = 50
ACK_INTERVAL_SECONDS = 2.0
# SQLite's page cache for a run's connection, in KiB (see ``_small_page_cache``).
RUN_SQLITE_CACHE_KB = 256
# Failed acknowledgements in a row that stop a run: the source no longer answers.
ACK_FAILURE_LIMIT = 2
# Ledger look-ups are chunked to stay under SQLite's limit on query parameters.
LOOKUP_CHUNK = 500
# Environment variable a fault-injection test sets to kill the worker at a named point.
FAULT_POINT_ENV = "MAILWRIGHT_FAULT_POINT"


class RunAborted(Exception):
    """The run cannot go on (cancelled, timed out, lease lost, source gone)."""

    def __init__(self, message: str, status: str = Run.Status.FAILED) -> None:
        super().__init__(message)
        self.status = status


def _fault_point(name: str) -> None:
    if os.environ.get(FAULT_POINT_ENV) == name:
        os.kill(os.getpid(), signal.SIGKILL)


@dataclass
class _Endpoint:
    activity: Activity
    config: Any
    secrets: dict[str, str]
    settings: Any


def endpoint(activity: Activity | None, role: str) -> _Endpoint:
    if activity is None:
        raise RunAborted(f"the operation has no {role}")
    connection = activity.connection
    connector = connection.connector_type
    kind = connector.activity_type(activity.type)
    if kind.role != role:
        raise RunAborted(f"{activity.name} is a {kind.label} activity, which cannot be a {role}")
    try:
        return _Endpoint(
            activity=activity,
            config=connector.parse_config(connection.config),
            secrets=connection.get_secrets(),
            settings=connector.parse_activity_settings(activity.type, activity.settings),
        )
    except ConfigError as exc:
        raise RunAborted(f"{activity.name}: invalid settings: {exc}") from None
    except SecretsUnreadable as exc:
        raise RunAborted(f"{connection.name}: {exc}") from None


class _RunContext:
    """The state of one executing run: counts, logging, lease renewal, cancel and timeout checks."""

    def __init__(self, run: Run) -> None:
        self.run = run
        self.operation = run.operation
        self.holder = f"run-{run.pk}"
        self.lease_keys: list[str] = []
        self.deadline = time.monotonic() + self.operation.timeout.total_seconds()
        self.last_renew = time.monotonic()
        self.last_cancel_check = time.monotonic()
        self.debug = bool(self.operation.debug_until and self.operation.debug_until > timezone.now())
        self.unacknowledged = 0
        self.pending: dict[str, int] = {}
        self.last_flush = time.monotonic()

    def log(self, text: str, level: str = "info") -> None:
        if level == "info" and self.operation.log_level == Operation.LogLevel.ERRORS:
            return
        RunLog.objects.create(run=self.run, level=level, text=text[:10000])

    def bump(self, **counts: int) -> None:
        """Count in memory and write at most once a second: live progress without a write per message."""
        for name, value in counts.items():
            self.pending[name] = self.pending.get(name, 0) + value
        if time.monotonic() - self.last_flush > 1:
            self.flush_counts()

    def flush_counts(self) -> None:
        if self.pending:
            Run.objects.filter(pk=self.run.pk).update(**{k: F(k) + v for k, v in self.pending.items()})
            self.pending.clear()
        self.last_flush = time.monotonic()
        self.run.refresh_from_db(fields=["read_count", "sent_count", "skipped_count", "failed_count"])

    def checkpoint(self) -> None:
        """Between messages: honour cancel and timeout, keep our leases alive."""
        now = time.monotonic()
        if now > self.deadline:
            raise RunAborted(f"stopped: the operation's timeout of {self.operation.timeout} was reached")
        if now - self.last_cancel_check > 1:
            self.last_cancel_check = now
            if Run.objects.filter(pk=self.run.pk, cancel_requested=True).exists():
                raise RunAborted("cancelled by a user", Run.Status.CANCELLED)
        if now - self.last_renew > leases.DEFAULT_TTL.total_seconds() / 3:
            self.last_renew = now
            if not leases.renew(self.lease_keys, self.holder):
                raise RunAborted("lost the run's lease (the worker stalled longer than the lease); stopping")


def _ledger_rows(operation_id: int, connection_id: int,
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


def _delivered_elsewhere(operation_id: int, connection_id: int, key: SourceKey) -> LedgerEntry | None:
    """The same message (by Message-ID) already delivered under an older UIDVALIDITY."""
    if not key.identity:
        return None
    return (
        LedgerEntry.objects.filter(
            operation_id=operation_id,
            connection_id=connection_id,
            scope=key.scope,
            identity=key.identity,
            state__in=(LedgerEntry.State.SENT, LedgerEntry.State.ACKNOWLEDGED),
        )
        .exclude(epoch=key.epoch)
        .first()
    )


def _fallback_identity(record: dict[str, Any]) -> str:
    """An identity for a message without a Message-ID, so a recreated folder still cannot resend it."""
    facts = "\n".join(str(record.get(k, "")) for k in ("date", "from", "subject", "size", "text", "html"))
    return "digest:" + hashlib.sha256(facts.encode("utf-8", "replace")).hexdigest()


def _summary(item: SourceItem) -> dict[str, str]:
    record = item.record or {}
    summary = dict(item.summary)
    summary.setdefault("subject", str(record.get("subject", "")))
    summary.setdefault("from", str(record.get("from", "")))
    to = record.get("to", "")
    summary.setdefault("to", ", ".join(to) if isinstance(to, list) else str(to))
    return summary


def _debug_copy(message: dict[str, Any]) -> dict[str, Any]:
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


@dataclass
class _PendingAck:
    """A message waiting for its after-read action."""

    key: SourceKey
    row: LedgerEntry | None  # None: a skipped message, whose ledger row stays "skipped"
    earlier: bool = False  # sent by an earlier run: this run records that it acknowledged it
    summary: dict[str, str] | None = None


@dataclass
class _Ready:
    """A message mapped and built for the target, not sent yet."""

    key: SourceKey
    row: LedgerEntry | None
    summary: dict[str, str]
    prepared: Prepared
    size: int


@dataclass
class _Flight:
    """A message the target is being given, on the sender thread; its ledger row says "sending"."""

    ready: _Ready
    row: LedgerEntry
    future: Future


class _Delivery:
    """Delivers the messages of one run through an open source and target.

    Sending runs on a thread of its own, one message at a time, so the target's time on one message
    (network, the server's checks) is spent reading, mapping and building the next ones: they wait,
    prepared, in ``_ready`` (no ledger row written yet), up to ``LOOKAHEAD_MAX_MESSAGES``, and the
    source asks before each download for room (``_make_room``), which keeps the sender busy and a
    second large message out while one is held. Everything else — the database, the source —
    stays on the run's thread. The ledger order holds per message: "sending" is committed before
    it is handed to the sender, "sent" once it was accepted. A message still in ``_ready`` when the
    run stops is left, unrecorded, for the next run.
    """

    def __init__(self, ctx: _RunContext, source_ep: _Endpoint, source: Any, target_ep: _Endpoint, target: Any,
                 replay: RunRecord | None) -> None:
        self.ctx = ctx
        self.source_ep = source_ep
        self.source = source
        self.target = target
        self.target_ep = target_ep
        self.connection_id = source_ep.activity.connection_id
        self.settings = source_ep.settings
        self.replay = replay
        self.transient_streak = 0
        self.variables = ctx.operation.project.variables or {}
        # (scope, epoch) -> whether this operation delivered anything from the scope under another epoch.
        self._other_epochs: dict[tuple[str, int], bool] = {}
        self._pending: dict[str, list[_PendingAck]] = {}  # after-read action -> messages waiting for it
        self._pending_since = 0.0
        self._failed_ack_batches = 0
        self._sender: ThreadPoolExecutor | None = None
        self._in_flight: _Flight | None = None
        self._ready: deque[_Ready] = deque()  # prepared, not yet handed to the sender (no ledger row written)

    # -- the run as a whole -------------------------------------------------------------------

    def run(self) -> None:
        with ThreadPoolExecutor(max_workers=1, thread_name_prefix=f"{self.ctx.holder}-send") as self._sender:
            try:
                self._deliver()
            except Exception:
                self._flush_acks(final=True)  # what was delivered before the run stopped
                raise
        self._flush_acks(final=True)

    def _deliver(self) -> None:
        keys = self.source.candidates()
        rows = _ledger_rows(self.ctx.operation.pk, self.connection_id, keys)
        acknowledge_only: list[tuple[SourceKey, LedgerEntry]] = []
        deliver: list[SourceKey] = []
        for key in keys:
            row = rows.get((key.scope, key.epoch, key.position))
            if self.replay is not None:
                if row is not None and row.pk == self.replay.ledger_id:
                    deliver.append(key)
                continue
            if row is None or row.state in (LedgerEntry.State.SENDING, LedgerEntry.State.RETRY):
                deliver.append(key)
            elif row.state == LedgerEntry.State.SENT:
                acknowledge_only.append((key, row))
        if self.replay is not None and not deliver:
            raise RunAborted("the message to replay is no longer in the source folder (or its folder was recreated)")

        for key, row in acknowledge_only:
            self.ctx.checkpoint()
            self._acknowledge(_PendingAck(key, row, earlier=True), self.settings.after_read)

        limit = self.settings.max_messages
        if len(deliver) > limit:
            self.ctx.log(f"{len(deliver)} messages waiting; this run takes the oldest {limit}")
            deliver = deliver[:limit]
        elif deliver:
            self.ctx.log(f"{len(deliver)} message(s) to deliver")
        else:
            self.ctx.log("no new messages")
        try:
            for item in self.source.fetch(deliver, make_room=self._make_room):
                if self._target_failing():  # a message landed while the source made room
                    break
                self.ctx.checkpoint()
                ready = self._prepare(item, rows.get((item.key.scope, item.key.epoch, item.key.position)))
                del item  # the record lives on in ``ready`` only as long as its message is needed
                if ready is not None:
                    self._ready.append(ready)
                ready = None  # locals outlive an iteration: the queue alone holds the message
                self._pump(wait=False)
                if self._target_failing():
                    break
        except ConnectorError:
            self._drain()  # the source failed: what it gave before is still delivered
            raise
        else:
            self._drain()
        finally:
            # Whatever stops the run, a message handed over gets its outcome; the others are left.
            flight, self._in_flight = self._in_flight, None
            if flight is not None:
                self._land(flight)
            self._leave_ready()
        if self._target_failing():
            self.ctx.log(
                f"the target failed {self.transient_streak} messages in a row with temporary errors; "
                "the remaining messages are left for the next run", "error",
            )

    def _target_failing(self) -> bool:
        return self.transient_streak >= TRANSIENT_STREAK_LIMIT

    def _pump(self, wait: bool) -> None:
        """Move the pipeline on by one step: land the message in flight once the target answered
        (waiting for that when ``wait``) and launch the next ready one, or launch one when none flies."""
        flight = self._in_flight
        if wait:
            self.ctx.checkpoint()  # a cancel or the deadline stops the run here too, not only between reads
        elif flight is not None and not flight.future.done():
            return
        if self._target_failing():
            self._leave_ready()
        then = self._ready.popleft() if self._ready else None
        # ``_in_flight`` is cleared before landing: a flight is landed once, even when landing raises.
        self._in_flight = None
        if flight is not None:
            self._in_flight = self._land(flight, then=then)
        elif then is not None:
            self._in_flight = self._launch(then)

    def _leave_ready(self) -> None:
        """Drop the messages built but not handed over: unsent and unrecorded, the next run reads them again."""
        self.ctx.bump(read_count=-len(self._ready))
        self._ready.clear()

    def _drain(self) -> None:
        while self._in_flight is not None or self._ready:
            self._pump(wait=True)

    def _make_room(self, size: int) -> None:
        """Before the source downloads (a message of) ``size`` bytes: keep the sender busy, and
        deliver what is held until the download fits beside it."""
        self._pump(wait=False)
        while self._holds_too_much_for(size):
            self._pump(wait=True)

    def _holds_too_much_for(self, size: int) -> bool:
        held = [r.size for r in self._ready] + ([self._in_flight.ready.size] if self._in_flight else [])
        if not held:
            return False
        if len(held) >= LOOKAHEAD_MAX_MESSAGES:
            return True
        if size > LOOKAHEAD_MAX_BYTES:  # a large message: never beside another
            return max(held) > LOOKAHEAD_MAX_BYTES
        return sum(n for n in held if n <= LOOKAHEAD_MAX_BYTES) + size > LOOKAHEAD_MAX_BYTES

    # -- one message ----------------------------------------------------------------------------

    def _prepare(self, item: SourceItem, row: LedgerEntry | None) -> _Ready | None:
        """The message ready to send, or None when it was skipped, failed or needs no sending (recorded)."""
        ctx = self.ctx
        ctx.bump(read_count=1)
        summary = _summary(item)
        if item.record is not None and not item.key.identity:
            item.key = replace(item.key, identity=_fallback_identity(item.record))
        if row is None and self._delivered_under_other_epochs(item.key):
            earlier = _delivered_elsewhere(self.ctx.operation.pk, self.connection_id, item.key)
            if earlier is not None:
                row = self._new_row(item.key, LedgerEntry.State.SENT, out_message_id=earlier.out_message_id,
                                    reply=f"delivered before the folder was recreated: {earlier.reply}")
                ctx.log(f"{item.key.identity}: already delivered under UIDVALIDITY {earlier.epoch}; not sent again")
                self._acknowledge(_PendingAck(item.key, row, earlier=True, summary=summary), self.settings.after_read)
                return None
        if item.record is None:
            self._skip(item.key, row, summary, item.skip_reason or "the message could not be read", acknowledge=False)
            return None
        context = context_for(item.record, self.variables)
        if self.replay is None:
            try:
                holds = condition_holds(ctx.operation.condition, context)
            except MappingError as exc:
                self._fail(item.key, row, summary, f"condition: {exc.message}", transient=True)
                return None
            if not holds:
                self._skip(item.key, row, summary, "the condition is false", acknowledge=True)
                return None
        try:
            rendered = render_mapping(ctx.operation.mapping, context)
            # A message left in "sending", or failed with an unknown outcome (connection lost at the end of
            # DATA), may have been delivered: send it again under the same Message-ID.
            reuse = row.out_message_id if row is not None and row.state in (
                LedgerEntry.State.SENDING, LedgerEntry.State.RETRY) else None
            prepared = self.target.prepare(rendered, message_id=reuse or None)
        except MappingError as exc:
            self._fail(item.key, row, summary, f"mapping of {exc.field}: {exc.message}", transient=True)
            return None
        except ValueError as exc:
            # A message the target can never accept as mapped (no recipient, bad address, ...):
            # later runs try again, so fixing the mapping is enough.
            self._fail(item.key, row, summary, str(exc), transient=True)
            return None
        return _Ready(item.key, row, summary, prepared, item.size)

    def _delivered_under_other_epochs(self, key: SourceKey) -> bool:
        """Whether a message of ``key``'s scope was ever delivered under another epoch (one query per run).

        Only then can a new message be one delivered before its folder was recreated. The answer
        cannot change during the run: the operation's lease keeps other runs of it out, and this
        run only writes rows under the epoch it reads.
        """
        scope = (key.scope, key.epoch)
        if scope not in self._other_epochs:
            self._other_epochs[scope] = (
                LedgerEntry.objects.filter(
                    operation_id=self.ctx.operation.pk,
                    connection_id=self.connection_id,
                    scope=key.scope,
                    state__in=(LedgerEntry.State.SENT, LedgerEntry.State.ACKNOWLEDGED),
                )
                .exclude(epoch=key.epoch)
                .exists()
            )
        return self._other_epochs[scope]

    def _new_row(self, key: SourceKey, state: str, **fields: Any) -> LedgerEntry:
        return LedgerEntry.objects.create(
            connection_id=self.connection_id, scope=key.scope, epoch=key.epoch, position=key.position,
            identity=key.identity[:998], state=state, operation=self.ctx.operation, **fields,
        )

    def _save_row(self, key: SourceKey, row: LedgerEntry | None, state: str, **fields: Any) -> LedgerEntry:
        if row is None:
            return self._new_row(key, state, **fields)
        row.state = state
        for name, value in fields.items():
            setattr(row, name, value)
        row.save()
        return row

    def _record(self, key: SourceKey, row: LedgerEntry | None, summary: dict[str, str], status: str,
                error: str = "", rendered: dict[str, Any] | None = None) -> RunRecord:
        return RunRecord.objects.create(
            run=self.ctx.run, ledger=row, position=key.position, identity=key.identity[:998],
            subject=summary.get("subject", "")[:2000], sender=summary.get("from", "")[:2000],
            recipients=summary.get("to", "")[:5000], status=status, error=error[:10000],
            rendered=_debug_copy(rendered) if rendered is not None and self.ctx.debug else None,
        )

    def _skip(self, key: SourceKey, row: LedgerEntry | None, summary: dict[str, str], reason: str,
              acknowledge: bool) -> None:
        with transaction.atomic():
            row = self._save_row(key, row, LedgerEntry.State.SKIPPED, error=reason)
            self._record(key, row, summary, RunRecord.Status.SKIPPED, reason)
        self.ctx.bump(skipped_count=1)
        self.ctx.log(f"skipped {summary.get('subject')!r}: {reason}")
        if acknowledge and self.settings.on_skip != "leave":
            self._acknowledge(_PendingAck(key, None), self.settings.on_skip)

    def _fail(self, key: SourceKey, row: LedgerEntry | None, summary: dict[str, str], error: str,
              transient: bool, rendered: dict[str, Any] | None = None) -> None:
        state = LedgerEntry.State.RETRY if transient else LedgerEntry.State.FAILED
        status = RunRecord.Status.RETRY if transient else RunRecord.Status.FAILED
        with transaction.atomic():
            row = self._save_row(key, row, state, error=error)
            self._record(key, row, summary, status, error, rendered)
        self.ctx.bump(failed_count=1)
        self.ctx.log(f"{summary.get('subject')!r}: {error}", "error")

    def _mark_sending(self, ready: _Ready) -> LedgerEntry:
        attempts_so_far = ready.row.attempts if ready.row else 0
        return self._save_row(ready.key, ready.row, LedgerEntry.State.SENDING,
                              out_message_id=ready.prepared.message_id, attempts=attempts_so_far + 1)

    def _launch(self, ready: _Ready, row: LedgerEntry | None = None) -> _Flight:
        """Hand ``ready`` to the sender; ``row`` is its "sending" row when already committed."""
        if row is None:
            with transaction.atomic():
                row = self._mark_sending(ready)
        return _Flight(ready, row, self._sender.submit(self.target.write, ready.prepared))

    def _land(self, flight: _Flight, then: _Ready | None = None) -> _Flight | None:
        """Wait for ``flight``'s outcome and record it; then launch ``then``, whose "sending" row is
        committed in the same transaction as this one's "sent" (one commit a message)."""
        delivery = self._outcome(flight)
        launch = then is not None and not self._target_failing()
        with transaction.atomic():
            if delivery is not None:
                row = flight.row
                row.state = LedgerEntry.State.SENT
                row.reply = delivery.reply[:2000]
                row.out_message_id = delivery.message_id or row.out_message_id
                row.error = ""
                row.save()
                self._record(flight.ready.key, row, flight.ready.summary, RunRecord.Status.SENT,
                             rendered=flight.ready.prepared.record)
            next_row = self._mark_sending(then) if launch else None
        if delivery is not None:
            self.ctx.bump(sent_count=1)
            _fault_point("after_sent")
            # Before the launch: acknowledging may stop the run, and a launched message must be landed.
            self._acknowledge(_PendingAck(flight.ready.key, flight.row), self.settings.after_read)
        if then is not None and not launch:
            self._ready.appendleft(then)  # back in line: left for the next run with the rest
        return self._launch(then, next_row) if launch else None

    def _outcome(self, flight: _Flight) -> Delivery | None:
        """The target's ``Delivery`` for ``flight``, retrying transient failures; None when it failed (recorded)."""
        ctx, ready = self.ctx, flight.ready
        attempts = ctx.operation.retries + 1
        future: Future | None = flight.future
        for attempt in range(attempts):
            try:
                delivery = future.result() if future is not None else self.target.write(ready.prepared)
            except ConnectionFailed as exc:
                self._fail(ready.key, flight.row, ready.summary, f"not sent: {exc}", transient=True)
                raise RunAborted(f"the target is unavailable: {exc}") from None
            except ConnectorError as exc:
                if exc.permanent or attempt == attempts - 1:
                    self.transient_streak = 0 if exc.permanent else self.transient_streak + 1
                    reason = str(exc) if exc.permanent else f"{exc} (will be tried again by the next run)"
                    self._fail(ready.key, flight.row, ready.summary, reason, transient=not exc.permanent,
                               rendered=ready.prepared.record)
                    return None
                backoff = ctx.operation.retry_backoff_seconds * (2**attempt)
                ctx.log(f"{ready.summary.get('subject')!r}: {exc}; trying again in {backoff} s", "warning")
                time.sleep(min(backoff, max(0.0, ctx.deadline - time.monotonic())))
                future = None  # the sender thread is idle: retry from here
                continue
            self.transient_streak = 0
            return delivery
        return None

    def _acknowledge(self, pending: _PendingAck, action: str) -> None:
        """Queue the after-read action; the queue is applied in one go when full or old enough."""
        if not any(self._pending.values()):
            self._pending_since = time.monotonic()
        self._pending.setdefault(action, []).append(pending)
        waiting = sum(len(batch) for batch in self._pending.values())
        if waiting >= ACK_BATCH or time.monotonic() - self._pending_since >= ACK_INTERVAL_SECONDS:
            self._flush_acks()

    def _flush_acks(self, final: bool = False) -> None:
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
            self._mark_acknowledged(batch)
        # Every batch was tried first: each one that failed is counted and logged, none is forgotten.
        if error is not None and self._failed_ack_batches >= ACK_FAILURE_LIMIT and not final:
            raise RunAborted(f"the source stopped answering: {error}")

    def _mark_acknowledged(self, batch: list[_PendingAck]) -> None:
        rows = [p for p in batch if p.row is not None]
        if not rows:
            return
        earlier = [p for p in rows if p.earlier]
        # Without the message in hand (acknowledge-only), its first run's record tells what it was.
        first_facts = _first_record_facts([p.row.pk for p in earlier if p.summary is None])
        with transaction.atomic():
            LedgerEntry.objects.filter(pk__in=[p.row.pk for p in rows]).update(
                state=LedgerEntry.State.ACKNOWLEDGED, updated_at=timezone.now())
            RunRecord.objects.bulk_create(
                [self._acknowledged_record(p, p.summary or first_facts.get(p.row.pk, {})) for p in earlier])

    def _acknowledged_record(self, pending: _PendingAck, facts: dict[str, str]) -> RunRecord:
        row = pending.row
        return RunRecord(
            run=self.ctx.run, ledger=row, position=pending.key.position,
            identity=(pending.key.identity or row.identity)[:998],
            subject=facts.get("subject", "")[:2000], sender=facts.get("from", "")[:2000],
            recipients=facts.get("to", "")[:5000], status=RunRecord.Status.ACKNOWLEDGED,
        )


def _first_record_facts(ledger_ids: list[int]) -> dict[int, dict[str, str]]:
    """Subject, sender and recipients of each ledger row's first run record, in one query."""
    facts: dict[int, dict[str, str]] = {}
    records = RunRecord.objects.filter(ledger_id__in=ledger_ids).order_by("ledger_id", "id")
    for ledger_id, subject, sender, recipients in records.values_list("ledger_id", "subject", "sender", "recipients"):
        facts.setdefault(ledger_id, {"subject": subject, "from": sender, "to": recipients})
    return facts


def _final_status(ctx: _RunContext) -> str:
    ctx.flush_counts()
    run = ctx.run
    if run.failed_count == 0:
        return Run.Status.SUCCEEDED
    if run.sent_count > 0 or run.skipped_count > 0:
        return Run.Status.PARTIAL
    return Run.Status.FAILED


def _finish(run: Run, status: str, message: str) -> None:
    run.status = status
    run.message = message[:5000]
    run.finished_at = timezone.now()
    run.save(update_fields=["status", "message", "finished_at"])


def _update_health(activity: Activity, source: Any | None, error: str) -> None:
    now = timezone.now()
    fields = {"last_poll_at": now, "last_error": error[:2000]}
    if not error:
        fields["last_success_at"] = now
    if source is not None:
        try:
            health = source.health()
        except ConnectorError:
            health = {}
        if "unread" in health:
            fields["backlog"] = health["unread"]
        if "oldest_unread_at" in health:
            fields["oldest_unread_at"] = health["oldest_unread_at"]
    Activity.objects.filter(pk=activity.pk).update(**fields)


def execute(run_id: int) -> Run:
    """Execute a queued run to its end. Safe to call again for the same run (redelivery)."""
    run = Run.objects.select_related(
        "operation__project", "operation__source__connection", "operation__target__connection", "replay_of"
    ).get(pk=run_id)
    if run.finished:
        return run
    ctx = _RunContext(run)
    operation = run.operation
    source_activity = operation.source
    ctx.lease_keys = [f"operation:{operation.pk}"]
    if source_activity is not None:
        folder = (source_activity.settings or {}).get("folder", "INBOX")
        ctx.lease_keys.append(f"source:{source_activity.connection_id}:{folder}")
    busy = leases.acquire(ctx.lease_keys, ctx.holder)
    if busy is not None:
        _finish(run, Run.Status.CANCELLED, f"not started: {busy} is held by {leases.holder_of(busy) or 'another run'}")
        return run
    try:
        run.status = Run.Status.RUNNING
        run.started_at = run.started_at or timezone.now()
        run.worker = f"{socket.gethostname()}:{os.getpid()}"
        run.save(update_fields=["status", "started_at", "worker"])
        try:
            _execute(ctx)
        except Exception as exc:
            # Celery's soft time limit, a database hiccup, a bug: the run must still end, never stay
            # "running"; the ledger keeps every message's state, so the next run carries on.
            log.exception("run %s stopped by an unexpected error", run.pk)
            ctx.flush_counts()
            _finish(run, Run.Status.FAILED, f"stopped by an unexpected error: {type(exc).__name__}: {exc}"[:2000])
    finally:
        leases.release(ctx.lease_keys, ctx.holder)
    run.refresh_from_db()
    _after_run(run)
    return run


@contextmanager
def _small_page_cache() -> Iterator[None]:
    """On SQLite, a small page cache for the run's connection (restored after it).

    A run appends to the ledger and reads little back, and SQLite's default cache (2 MB a
    connection) would fill with the pages it wrote: memory a run's bound, a few times its largest
    message, has no room for. PostgreSQL caches on the server.
    """
    if connection.vendor != "sqlite":
        yield
        return
    with connection.cursor() as cursor:
        previous = int(cursor.execute("PRAGMA cache_size").fetchone()[0])
        cursor.execute(f"PRAGMA cache_size = -{RUN_SQLITE_CACHE_KB}")
    try:
        yield
    finally:
        with connection.cursor() as cursor:
            cursor.execute(f"PRAGMA cache_size = {previous}")


def _execute(ctx: _RunContext) -> None:
    run, operation = ctx.run, ctx.operation
    source = None
    error = ""
    try:
        source_ep = endpoint(operation.source, "source")
        target_ep = endpoint(operation.target, "target")
        ctx.log(f"run started ({run.get_trigger_display()}): {source_ep.activity.name} → {target_ep.activity.name}")
        with ExitStack() as stack:
            source_connector = source_ep.activity.connection.connector_type
            target_connector = target_ep.activity.connection.connector_type
            source = stack.enter_context(
                source_connector.open_source(source_ep.config, source_ep.secrets, source_ep.settings))
            target = stack.enter_context(
                target_connector.open_target(target_ep.config, target_ep.secrets, target_ep.settings))
            stack.enter_context(_small_page_cache())
            _Delivery(ctx, source_ep, source, target_ep, target, run.replay_of).run()
            _update_health(source_ep.activity, source, "")
        status = _final_status(ctx)
        message = _summary_line(ctx)
        if ctx.unacknowledged:
            status = Run.Status.PARTIAL if status == Run.Status.SUCCEEDED else status
            message += f"; {ctx.unacknowledged} delivered but not yet marked in the source (the next run will)"
    except RunAborted as exc:
        error, status = str(exc), exc.status
        message = f"{error} ({_summary_line(ctx)})"
    except ConnectorError as exc:
        error, status = str(exc), Run.Status.FAILED
        message = f"{error} ({_summary_line(ctx)})"
    if error:
        ctx.log(error, "error")
        if operation.source is not None:
            _update_health(operation.source, None, error)
        if status == Run.Status.FAILED and run.sent_count:
            status = Run.Status.PARTIAL
    ctx.log(f"run ended {status}: {message}", "info" if status == Run.Status.SUCCEEDED else "error")
    _finish(run, status, message)


def _summary_line(ctx: _RunContext) -> str:
    ctx.flush_counts()
    run = ctx.run
    return (f"{run.read_count} read, {run.sent_count} sent, {run.skipped_count} skipped, "
            f"{run.failed_count} failed")


def _after_run(run: Run) -> None:
    """Chained operations and notifications, once the run has its final status."""
    from designer.running import runs  # the enqueueing side; imported here to keep engine free of Celery at import

    operation = run.operation
    follow = operation.on_success if run.status == Run.Status.SUCCEEDED else operation.on_failure
    if follow is not None and run.status != Run.Status.CANCELLED and follow.project_id == operation.project_id:
        runs.start(follow, Run.Trigger.CHAINED, parent=run)
    if operation.notify == Operation.Notify.ALWAYS or (
        operation.notify == Operation.Notify.FAILURE and run.status in (Run.Status.FAILED, Run.Status.PARTIAL)
    ):
        runs.notify(run)

