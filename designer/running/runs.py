"""Runs onto the queue and off it: starting (through Celery, ids only), executing with what follows
(chains, notifications), replaying a message, cancelling, retention."""

from __future__ import annotations

import logging
from contextlib import nullcontext
from datetime import timedelta
from typing import Any

from celery import Task, shared_task
from django.conf import settings
from django.db import transaction
from django.utils import timezone

from designer import brokers
from designer.models import LedgerEntry, Operation, Run, RunLog, RunRecord
from designer.running import agents, engine, leases, notices, watchdog
from designer.teams import audit

log = logging.getLogger(__name__)

# Records a person may send again on purpose.
REPLAYABLE = (RunRecord.Status.FAILED, RunRecord.Status.SKIPPED, RunRecord.Status.RETRY,
              RunRecord.Status.QUARANTINED)
# Chained runs in a row after which no more are started: loops are refused where they are made,
# this stops one that slipped through (operations edited while runs were queued).
MAX_CHAIN_DEPTH = 20
# How long past its timeout a run may stay "running" before the reaper calls its worker lost.
STALE_GRACE = timedelta(minutes=10)


@shared_task(acks_late=True, bind=True, name="designer.tasks.execute_run")
def execute_run(self: Task, run_id: int) -> None:
    # Time limits come with each message, from the operation's timeout (``start``). The prefork pool
    # enforces them with signals; the solo and threads pools (``make run``'s worker) enforce none, so
    # the soft one is also kept here, in this thread, whatever the pool.
    soft_limit = (self.request.timelimit or (None, None))[1]
    try:
        with watchdog.limit(soft_limit, raising=watchdog.TimeLimitReached) if soft_limit else nullcontext():
            execute(run_id)
    except watchdog.TimeLimitReached:
        # The run met its limit and ended on it (the engine records that), or the limit passed as it ended.
        log.warning("run %s reached its time limit of %s s", run_id, soft_limit)


@shared_task(name="designer.tasks.run_scheduled")
def run_scheduled(operation_id: int) -> None:
    operation = Operation.objects.filter(pk=operation_id, enabled=True).first()
    if operation is not None:
        start(operation, Run.Trigger.SCHEDULE)


def execute(run_id: int) -> Run:
    """Execute a queued run (``engine.execute``), then what follows it: chained runs, notifications."""
    run = engine.execute(run_id)
    after_run(run)
    return run


def after_run(run: Run) -> None:
    """Chained operations and notifications, once the run has its final status."""
    if not run.finished:
        return
    operation = run.operation
    follow = operation.on_success if run.status == Run.Status.SUCCEEDED else operation.on_failure
    if follow is not None and run.status != Run.Status.CANCELLED and follow.project_id == operation.project_id:
        if _chain_depth(run) >= MAX_CHAIN_DEPTH:
            RunLog.objects.create(run=run, level="error", text=(
                f"{follow.name} not started: {MAX_CHAIN_DEPTH} chained runs in a row (a loop of on success / "
                "on failure?)"))
        else:
            start(follow, Run.Trigger.CHAINED, parent=run)
    if operation.notify == Operation.Notify.ALWAYS or (
        operation.notify == Operation.Notify.FAILURE and run.status in (Run.Status.FAILED, Run.Status.PARTIAL)
    ):
        notify(run)


def _chain_depth(run: Run) -> int:
    depth = 0
    while run.trigger == Run.Trigger.CHAINED and run.parent_id is not None and depth < MAX_CHAIN_DEPTH:
        run = Run.objects.only("trigger", "parent_id").get(pk=run.parent_id)
        depth += 1
    return depth


class ReplayRefused(Exception):
    pass


def start(operation: Operation, trigger: str, *, parent: Run | None = None, user: Any = None,
          replay_of: RunRecord | None = None) -> Run:
    """Create the run and enqueue it once the row is committed."""

    with transaction.atomic():
        run = Run.objects.create(operation=operation, trigger=trigger, parent=parent, replay_of=replay_of)
        seconds = int(operation.time_limit.total_seconds())
        queue = agents.operation_queue(operation)  # the operation's agent group's workers only
        transaction.on_commit(lambda: execute_run.apply_async(
            (run.pk,), queue=queue, soft_time_limit=seconds + brokers.SOFT_LIMIT_SLACK,
            time_limit=seconds + brokers.HARD_LIMIT_SLACK,
        ))
    if user is not None:
        audit.record(user, operation.project.team, "ran", operation, {"run": run.pk, "trigger": trigger})
    return run


def replay(record: RunRecord, user: Any = None) -> Run:
    """Send one failed or skipped message again, on purpose, once."""
    if record.status not in REPLAYABLE:
        raise ReplayRefused("only a failed or skipped message can be replayed")
    if record.ledger_id is None:
        raise ReplayRefused("this message has no ledger entry to replay")
    if RunRecord.objects.filter(pk=record.pk, replayed=True).exists():
        raise ReplayRefused("this message was replayed already")
    delivered = _delivered(record.ledger_id)
    if delivered is not None:
        raise ReplayRefused(delivered)
    # The conditional update makes "once" hold even when two people press Replay together.
    if not RunRecord.objects.filter(pk=record.pk, replayed=False).update(replayed=True):
        raise ReplayRefused("this message was replayed already")
    return start(record.run.operation, Run.Trigger.REPLAY, parent=record.run, user=user, replay_of=record)


def _delivered(ledger_id: int) -> str | None:
    """Why a message may not be replayed because a later run delivered it, or None."""
    row = LedgerEntry.objects.filter(pk=ledger_id).first()
    if row is None or row.state not in (LedgerEntry.State.SENT, LedgerEntry.State.ACKNOWLEDGED):
        return None
    sent = RunRecord.objects.filter(ledger_id=ledger_id, status=RunRecord.Status.SENT).order_by("-pk").first()
    when = timezone.localtime(sent.created_at if sent else row.updated_at).strftime("%Y-%m-%d %H:%M")
    where = f" in run #{sent.run_id}" if sent else ""
    return f"this message was delivered on {when}{where}; it is not sent again"


def cancel(run: Run) -> None:
    Run.objects.filter(pk=run.pk).update(cancel_requested=True)
    # A queued run that no worker has started yet ends at once.
    Run.objects.filter(pk=run.pk, status=Run.Status.QUEUED).update(
        status=Run.Status.CANCELLED, finished_at=timezone.now(), message="cancelled before it started"
    )


def notify(run: Run) -> None:
    """Send the operation's run notification through its Send Email activity."""
    operation = run.operation
    activity = operation.notify_activity
    if activity is None or not operation.notify_to:
        return
    problem = notices.send(
        activity, operation.notify_to, f"[Mailwright] {operation.name}: run {run.pk} {run.status}",
        f"Operation {operation.name} (project {operation.project.name}) ended {run.status}.\n{run.message}\n")
    if problem:
        RunLog.objects.create(run=run, level="error", text=f"notification not sent: {problem}")
    else:
        RunLog.objects.create(run=run, level="info", text=f"notification sent to {operation.notify_to}")


def purge(days: int | None = None, batch: int = 5000) -> int:
    """Delete finished runs older than the retention period, in batches to keep transactions short.

    A run still queued or running is never deleted: its records are written as it goes."""
    days = settings.MAILWRIGHT_RUN_RETENTION_DAYS if days is None else days
    cutoff = timezone.now() - timedelta(days=days)
    deleted = 0
    while True:
        ids = list(Run.objects.filter(queued_at__lt=cutoff, status__in=Run.FINISHED)
                   .values_list("pk", flat=True)[:batch])
        if not ids:
            return deleted
        Run.objects.filter(pk__in=ids).delete()
        deleted += len(ids)


def reap_stale() -> int:
    """Runs left "running" by a worker that died for good (no redelivery), or still "queued" when no
    worker took them in time (a broker that lost the task), end as failed."""
    reaped = 0
    now = timezone.now()
    for run in Run.objects.filter(status=Run.Status.QUEUED).select_related("operation"):
        if now - run.queued_at >= run.operation.time_limit + STALE_GRACE:
            reaped += Run.objects.filter(pk=run.pk, status=Run.Status.QUEUED).update(
                status=Run.Status.FAILED, finished_at=now,
                message="no worker took this run in time (is a worker running for its agent group?); "
                        "the next run carries on")
    for run in Run.objects.filter(status=Run.Status.RUNNING).select_related("operation"):
        started = run.started_at or run.queued_at
        if now - started < run.operation.time_limit + STALE_GRACE:
            continue
        if leases.holder_of(f"operation:{run.operation_id}") == f"run-{run.pk}":
            continue
        Run.objects.filter(pk=run.pk, status=Run.Status.RUNNING).update(
            status=Run.Status.FAILED, finished_at=now, message="the worker running this was lost"
        )
        reaped += 1
    return reaped
