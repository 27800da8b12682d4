"""The delivery pipeline of one run: read, transform and hand each message to the target.

Sending runs on sender threads (``outbox``), one per connection the target offers (``parallelism``),
while the run's thread reads, maps and builds the next messages and writes the ledger in groups; the
ledger order holds per message (see the README).
"""

from __future__ import annotations

import time
from collections import deque
from concurrent.futures import Future
from dataclasses import dataclass, replace
from typing import Any

from django.db import transaction

from connectors.base import (
    ConnectionFailed,
    ConnectorError,
    Delivery,
    OutcomeUnknown,
    Prepared,
    SourceItem,
    SourceKey,
    is_stop_exception,
)
from designer.models import LedgerEntry, RunRecord
from designer.running import lookahead, reread, watchdog
from designer.running.acks import Acknowledgements, PendingAck
from designer.running.context import Endpoint, RunAborted, RunContext, fault_point
from designer.running.ledger import Ledger, ledger_rows
from designer.running.outbox import Outbox
from designer.running.transform import transform_in_run

# How many consecutive transient target failures end a run early: the target is down, and
# trying every remaining message would only delay the next run.
TRANSIENT_STREAK_LIMIT = 3
# The ledger is written for this many messages at a time ("sending" and "sent" rows in one commit, which
# the run's thread waits for), or for fewer once the oldest of them waited LEDGER_GROUP_SECONDS.
LEDGER_GROUP = 32
LEDGER_GROUP_SECONDS = 0.02
# The sender's answer is awaited in slices of this many seconds, due acknowledgements applied between them.
AWAIT_SLICE = 0.5
# After a stop (Celery's soft time limit) interrupted the wait, how long the answer may still take
# before the message is recorded in doubt: less than the minute before Celery's hard limit kills the process.
LANDING_GRACE = 45.0
# Rows a later run delivers (again): never sent, maybe sent (under the Message-ID they keep), or failed for now.
RESEND_STATES = (LedgerEntry.State.SENDING, LedgerEntry.State.RETRY, LedgerEntry.State.IN_DOUBT)


@dataclass
class Ready:
    """A message mapped and built for the target, not sent yet."""

    key: SourceKey
    row: LedgerEntry | None
    summary: dict[str, str]
    prepared: Prepared
    size: int
    emptied: bool = False  # let go of once sent (``lookahead.let_go``): sending it again means reading it again


@dataclass(eq=False)
class Flight:
    """A message the target is being given, on the sender thread; its ledger row (``ready.row``) says "sending"."""

    ready: Ready
    future: Future


class Pipeline:
    """Delivers the messages of one run through an open source and target.

    The run's thread reads, maps and builds messages into ``_ready`` (no ledger row yet), commits
    their "sending" rows a group at a time and queues them in the ``Outbox``, whose sender threads
    (one per connection) take them as connections free up; it records their outcomes ("sent") in
    groups too, the next group's "sending" rows in the same commit. Before each download the source
    asks for room (``_make_room``, ``lookahead``). Everything else — the database, the source —
    stays on the run's thread. A message not handed over when the run stops is left for the next
    run: unrecorded, or "sending" (then resent under the Message-ID its row reserved).
    """

    def __init__(self, ctx: RunContext, source_ep: Endpoint, source: Any, target_ep: Endpoint, target: Any,
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
        self.connector = source_ep.activity.connection.connector_type
        self.ledger = Ledger(ctx, self.connection_id)
        self.acks = Acknowledgements(ctx, source, self.ledger)
        self._outbox: Outbox | None = None
        # Messages the target may take at once (its connections), each on a sender thread of its own.
        self.target_slots = max(1, getattr(target, "parallelism", 1))
        self._flights: deque[Flight] = deque()  # committed "sending" and queued for the senders, in order
        self._landed = 0  # flights whose outcome the senders gave and this thread took (``Outbox.answered``)
        self._ready: deque[Ready] = deque()  # prepared, no ledger row written yet
        self._stop: BaseException | None = None  # what stopped a wait on the sender, raised once it is landed
        self._unrecorded_since: float | None = None  # when the oldest message waiting for its group was seen

    # -- the run as a whole -------------------------------------------------------------------

    def run(self) -> None:
        send = lookahead.letting_go(self.target.write, lambda: self._outbox.made_room())
        with Outbox(send, self.target_slots, self._may_send, self.ctx.holder) as self._outbox:
            try:
                self._deliver()
            except Exception:
                self.acks.flush(final=True)  # what was delivered before the run stopped
                raise
        self.acks.flush(final=True)

    def _deliver(self) -> None:
        keys = self.source.candidates()
        rows = ledger_rows(self.ctx.operation.pk, self.connection_id, keys)
        acknowledge_only: list[tuple[SourceKey, LedgerEntry]] = []
        deliver: list[SourceKey] = []
        for key in keys:
            row = rows.get((key.scope, key.epoch, key.position))
            if self.replay is not None:
                if row is not None and row.pk == self.replay.ledger_id:
                    if row.state in (LedgerEntry.State.SENT, LedgerEntry.State.ACKNOWLEDGED):
                        raise RunAborted("the message to replay was delivered meanwhile; it is not sent again")
                    deliver.append(key)
                continue
            if row is None or row.state in RESEND_STATES:
                deliver.append(key)
            elif row.state == LedgerEntry.State.SENT:
                acknowledge_only.append((key, row))
        if self.replay is not None and not deliver:
            raise RunAborted("the message to replay is no longer in the source folder (or its folder was recreated)")

        for key, row in acknowledge_only:
            self.ctx.checkpoint()
            self.acks.add(PendingAck(key, row, earlier=True), self.settings.after_read)

        states = {key: getattr(rows.get((key.scope, key.epoch, key.position)), "state", None) for key in deliver}
        doubtful = [key for key, state in states.items() if state == LedgerEntry.State.IN_DOUBT]
        if doubtful:
            self.ctx.resent_in_doubt = len(doubtful)
            self.ctx.log(f"{len(doubtful)} in doubt from an earlier run (no reply after its end): "
                         "resent with the same Message-ID, so receivers that deduplicate drop the copy")
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
                time.sleep(0)  # else a sender with a reply read waits up to 5 ms for the GIL (20% more a second)
                if self._target_failing():
                    break
        except ConnectorError:
            self._drain()  # the source failed: what it gave before is still delivered
            raise
        else:
            self._drain()
        finally:
            # Whatever stops the run, a message handed over gets its outcome; the others are left.
            try:
                self._leave_ready()
            finally:
                self._land_all()
        if self._target_failing():
            self.ctx.log(
                f"the target failed {self.transient_streak} messages in a row with temporary errors; "
                "the remaining messages are left for the next run", "error",
            )

    def _target_failing(self) -> bool:
        return self.transient_streak >= TRANSIENT_STREAK_LIMIT

    def _pump(self, wait: bool) -> None:
        """Move the pipeline on. The ledger is settled in groups (``_settle``): once ``LEDGER_GROUP``
        ready messages wait for their "sending" rows or as many outcomes for their "sent" ones, once
        the oldest of them waited ``LEDGER_GROUP_SECONDS``, or when ``wait`` (then, when no ready
        message waits for its row, waiting for a group of outcomes). The senders take the committed
        messages themselves (``Outbox``): the run's thread reads, maps and builds meanwhile."""
        if wait:
            self.ctx.checkpoint()  # a cancel or the deadline stops the run here too, not only between reads
        self._fence_if_asked()
        if self._target_failing():
            self._leave_ready()
        if wait or self._settle_due():
            if wait and not self._ready:
                self._await_group()
            landing, flying = deque(), deque()
            for flight in self._flights:  # each future asked once: a sender may answer meanwhile
                (landing if flight.future.done() else flying).append(flight)
            self._flights = flying
            self._landed += sum(1 for flight in landing if not flight.future.cancelled())
            # A time limit waits until the outcomes are recorded and the new flights are queued.
            with watchdog.deferred():
                self._settle(landing)
        if self._target_failing():
            self._leave_ready()  # before a sender takes another message
        if self._outbox.paused and not any(flight.future.done() for flight in self._flights):
            self._outbox.resume()

    def _settle_due(self) -> bool:
        # Counted, not asked of every future: that would cost more than the rest of a step.
        landed = self._outbox.answered - self._landed
        if len(self._ready) >= LEDGER_GROUP or landed >= LEDGER_GROUP:
            return True
        return self._waited_for_group(bool(self._ready) or landed > 0)

    def _waited_for_group(self, waiting: bool) -> bool:
        """Whether the oldest of the messages ``waiting`` for their group has waited ``LEDGER_GROUP_SECONDS``."""
        if not waiting:
            return False
        now = time.monotonic()
        if self._unrecorded_since is None:
            self._unrecorded_since = now
        return now - self._unrecorded_since >= LEDGER_GROUP_SECONDS

    def _await_group(self) -> None:
        """Wait until ``LEDGER_GROUP`` messages have their outcome, or every one, or one had it for
        ``LEDGER_GROUP_SECONDS``, or a failure made the senders wait for its judgement (applying due
        acknowledgements, and noticing a cancel, meanwhile)."""
        while True:
            answered = self._outbox.answered
            done = answered - self._landed  # counted, not asked of every future at every outcome
            if done >= len(self._flights) or done >= LEDGER_GROUP or (done and self._outbox.paused):
                return
            if self._waited_for_group(bool(done)):
                return  # what landed is recorded (and marked in the source) without waiting for the rest
            self._await_answer(answered)

    def _await_answer(self, answered: int, rooms: int | None = None) -> None:
        """Wait (a slice at most) for an outcome beyond the ``answered`` first (or room beyond ``rooms``);
        meanwhile a cancel stops what is still queued, a sender's question about the lease is answered,
        due acknowledgements go."""
        self._outbox.wait_for_answer(answered, AWAIT_SLICE, rooms)
        self.ctx.checkpoint()
        self._fence_if_asked()
        self.acks.flush_if_due()

    def _may_send(self) -> bool:
        """On a sender thread: whether the heartbeat vouches for the run's lease (else the run's thread asks)."""
        heartbeat = self.ctx.heartbeat
        return heartbeat is not None and heartbeat.vouches()

    def _fence_if_asked(self) -> None:
        """A sender waits because the heartbeat no longer vouches for the lease: ask the database."""
        if not self._outbox.wants_fence:
            return
        holds = self.ctx.holds_leases()
        self._outbox.fence(holds)
        if not holds:
            raise RunAborted("lost the run's lease (another run took it); stopping before sending")

    def _leave_ready(self) -> None:
        """Drop the messages not handed over: built but unrecorded, the next run reads them again;
        queued with their "sending" row committed, the next run sends them under the same Message-ID."""
        self._outbox.cancel_queued()
        queued = [flight for flight in self._flights if flight.future.cancelled()]
        for flight in queued:
            self._flights.remove(flight)
        self.ctx.bump(read_count=-len(self._ready) - len(queued))
        self._ready.clear()

    def _drain(self) -> None:
        while self._flights or self._ready:
            self._pump(wait=True)

    def _land_all(self) -> None:
        """Whatever stops the run, every message handed over gets its outcome (the first error raised after)."""
        error: BaseException | None = None
        while self._flights:
            try:
                with watchdog.deferred():
                    self._settle(deque([self._flights.popleft()]), record_ready=False)
            except Exception as exc:  # noqa: BLE001 - raised below, once the other flights are landed
                error = error or exc
        if error is not None:
            raise error

    def _make_room(self, size: int) -> None:
        """Before the source downloads (a message of) ``size`` bytes: keep the sender busy, and
        deliver what is held until the download fits beside it."""
        self._pump(wait=False)
        while True:
            rooms = self._outbox.rooms  # before the sizes are read: a message let go of after ends the wait
            if not lookahead.too_much_for([r.size for r in self._ready] + [f.ready.size for f in self._flights], size):
                return
            answered = self._outbox.answered
            all_answered = answered - self._landed >= len(self._flights)
            if self._ready or all_answered or self._outbox.paused or self._settle_due():
                self._pump(wait=True)  # a group due meanwhile is recorded: the window stays one group
            else:
                self._await_answer(answered, rooms)  # room, not a group: outcomes go with the next group's rows

    # -- one message ----------------------------------------------------------------------------

    def _prepare(self, item: SourceItem, row: LedgerEntry | None) -> Ready | None:
        """The message ready to send, or None when it was skipped, failed or needs no sending (recorded)."""
        ctx = self.ctx
        ctx.bump(read_count=1)
        summary = {**self.connector.record_summary(item.record or {}), **item.summary}
        if item.record is not None and not item.key.identity:
            item.key = replace(item.key, identity=self.connector.record_identity(item.record))
        if row is None:
            earlier = self.ledger.earlier_epoch_row(item.key)
            if earlier is not None:
                row = self.ledger.carry_over(item.key, earlier)
                if self._settled_before(item.key, row, earlier, summary):
                    return None
        if item.record is None:
            self._skip(item.key, row, summary, item.skip_reason or "the message could not be read", acknowledge=False)
            return None
        # A message left in "sending", or failed with an unknown outcome (connection lost at the end of
        # DATA), may have been delivered: send it again under the same Message-ID.
        reuse = row.out_message_id if row is not None and row.state in RESEND_STATES else None
        result = transform_in_run(ctx.operation, item.record, self.target, item.key,
                                  apply_condition=self.replay is None, message_id=reuse or None)
        if result.error:
            # Later runs try again, so fixing the mapping (or the condition) is enough; a message that
            # keeps failing is quarantined so that the others go on.
            self.ledger.fail(item.key, row, summary, result.error, transient=True, poison=True)
            return None
        if result.holds is False:
            self._skip(item.key, row, summary, "the condition is false", acknowledge=True)
            return None
        prepared = result.prepared
        return Ready(item.key, row, summary, prepared, item.size)

    def _settled_before(self, key: SourceKey, row: LedgerEntry, earlier: LedgerEntry, summary: dict[str, str]) -> bool:
        """Whether the older epoch settled the message: delivered (acknowledged now), or failed for
        good or quarantined (recorded again here, where Replay can send it). Otherwise it goes on, in
        "sending", "in doubt" or "retry", resent only under its Message-ID."""
        if row.state == LedgerEntry.State.SENT:
            self.ctx.log(f"{key.identity}: already delivered under UIDVALIDITY {earlier.epoch}; not sent again")
            self.acks.add(PendingAck(key, row, earlier=True, summary=summary), self.settings.after_read)
            return True
        if row.state in (LedgerEntry.State.FAILED, LedgerEntry.State.QUARANTINED):
            reason = f"{row.get_state_display().lower()} under UIDVALIDITY {earlier.epoch}: {earlier.error}"
            self.ledger.record(key, row, summary, row.state, reason)
            self.ctx.log(f"{key.identity}: {reason}; not sent again unless replayed", "warning")
            return True
        return False

    def _skip(self, key: SourceKey, row: LedgerEntry | None, summary: dict[str, str], reason: str,
              acknowledge: bool) -> None:
        with transaction.atomic():
            row = self.ledger.save_row(key, row, LedgerEntry.State.SKIPPED, error=reason)
            self.ledger.record(key, row, summary, RunRecord.Status.SKIPPED, reason)
        self.ctx.bump(skipped_count=1)
        self.ctx.log(f"skipped {summary.get('subject')!r}: {reason}")
        if acknowledge and self.settings.on_skip != "leave":
            self.acks.add(PendingAck(key, None), self.settings.on_skip)

    def _settle(self, landing: deque[Flight], record_ready: bool = True) -> None:
        """Record the outcomes of ``landing`` and commit the "sending" rows of the ready messages that
        lack one, in one transaction fenced by the run's lease (one commit for a group of messages).
        A "sending" row may be committed before its message is handed over, never after."""
        delivered: list[tuple[Flight, Delivery]] = []
        try:
            while landing:
                flight = landing.popleft()
                delivery = self._outcome(flight)
                if delivery is not None:
                    delivered.append((flight, delivery))
        except BaseException:
            self._flights.extendleft(reversed(landing))  # not asked yet: landed when the run ends
            self._record_delivered(delivered)
            raise
        self._unrecorded_since = None
        pending = list(self._ready)
        if not record_ready or self._target_failing() or self._stop is not None:
            pending = []
        lease_lost = False
        if delivered or pending:
            with transaction.atomic():
                self._record_delivered(delivered, acknowledge=False)
                # Fenced in this transaction; losing the lease must not roll the "sent" above back.
                lease_lost = bool(pending) and not self.ctx.holds_leases()
                if pending and not lease_lost:
                    self.ledger.mark_sending(pending)
        if pending and not lease_lost:
            self._ready.clear()
            queued = self._outbox.put_all(pending)
            self._flights.extend(map(Flight, pending, queued))
        self._acknowledge(delivered)
        if lease_lost:
            raise RunAborted("lost the run's lease (another run took it); stopping before sending")
        if self._stop is not None:  # what stopped a wait on the sender, now that the outcomes are recorded
            stop, self._stop = self._stop, None
            raise stop

    def _record_delivered(self, delivered: list[tuple[Flight, Delivery]], acknowledge: bool = True) -> None:
        if not delivered:
            return
        self.ledger.mark_sent([(flight.ready.row, flight.ready.key, flight.ready.summary, delivery,
                                flight.ready.prepared.record) for flight, delivery in delivered])
        if acknowledge:
            self._acknowledge(delivered)

    def _acknowledge(self, delivered: list[tuple[Flight, Delivery]]) -> None:
        for flight, _delivery in delivered:
            self.ctx.bump(sent_count=1)
            fault_point("after_sent")
            self.acks.add(PendingAck(flight.ready.key, flight.ready.row), self.settings.after_read)

    def _await(self, future: Future) -> Delivery:
        """The sender's answer for the message in flight.

        Waits in slices and applies due acknowledgements meanwhile (the source is idle). What stops
        the run during the wait (Celery's soft time limit, the source failing) waits in ``_stop`` until
        the answer is recorded: a message the server may have accepted is never left "sending" by us.
        """
        while True:
            try:
                return future.result(timeout=AWAIT_SLICE)
            except TimeoutError:
                if future.done():
                    raise  # the sender's own
                try:
                    self.acks.flush_if_due()
                except RunAborted as exc:
                    self._stop = self._stop or exc
            except Exception as exc:
                if not is_stop_exception(exc) or (future.done() and future.exception() is exc):
                    raise
                self._stop = self._stop or exc
                try:
                    return future.result(timeout=LANDING_GRACE)
                except TimeoutError:
                    if future.done():
                        raise
                    raise OutcomeUnknown("the run reached its time limit while the server was still answering "
                                         "(the message may have been delivered)") from None

    def _outcome(self, flight: Flight) -> Delivery | None:
        """The target's ``Delivery`` for ``flight``, retrying transient failures; None when it failed (recorded)."""
        ctx, ready = self.ctx, flight.ready
        attempts = ctx.operation.retries + 1
        future: Future | None = flight.future
        for attempt in range(attempts):
            try:
                delivery = self._await(future) if future is not None else self.target.write(ready.prepared)
            except OutcomeUnknown as exc:
                self.transient_streak += 1  # a server that keeps not answering stops the run like one that fails
                self.ledger.doubt(ready.key, ready.row, ready.summary, str(exc), rendered=ready.prepared.record)
                return None
            except ConnectionFailed as exc:
                self.ledger.fail(ready.key, ready.row, ready.summary, f"not sent: {exc}", transient=True)
                raise RunAborted(f"the target is unavailable: {exc}") from None
            except ConnectorError as exc:
                if exc.permanent or attempt == attempts - 1:
                    self.transient_streak = 0 if exc.permanent else self.transient_streak + 1
                    reason = str(exc) if exc.permanent else f"{exc} (will be tried again by the next run)"
                    self.ledger.fail(ready.key, ready.row, ready.summary, reason, transient=not exc.permanent,
                               rendered=ready.prepared.record)
                    return None
                backoff = ctx.operation.retry_backoff_seconds * (2**attempt)
                ctx.log(f"{ready.summary.get('subject')!r}: {exc}; trying again in {backoff} s", "warning")
                time.sleep(min(backoff, max(0.0, ctx.deadline - time.monotonic())))
                future = None  # the sender thread is idle: retry from here
                if ready.emptied and not reread.read_again(ready, self.source, self.target, self.ledger):
                    return None
                continue
            self.transient_streak = 0
            return delivery
        return None
