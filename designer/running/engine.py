"""Running an operation from start to end: leases, endpoints, the delivery pipeline, the final status.

The delivery guarantee and its ledger are told in the README's "How delivery works"; the pieces are
``context`` (the run's state), ``pipeline`` (delivery), ``ledger`` and ``acks``.
"""

from __future__ import annotations

import logging
import os
import socket
import time
from contextlib import ExitStack
from datetime import timedelta
from typing import Any

from django.db import DatabaseError, connection
from django.utils import timezone

from connectors import net
from connectors.base import ConfigError, ConnectorError, is_stop_exception
from designer import brokers
from designer.models import Activity, Run
from designer.running import activity_settings, leases, memory
from designer.running.context import RunAborted, RunContext, endpoint, small_page_cache
from designer.running.pipeline import Pipeline

log = logging.getLogger(__name__)

# How long a redelivered copy of a run waits for the copy that holds its leases to die (they expire
# unless a live copy's heartbeat renews them) before it leaves the run to that copy.
REDELIVERY_WAIT = leases.DEFAULT_TTL + timedelta(seconds=30)


def _acquire(ctx: RunContext) -> tuple[str | None, str]:
    """Take the run's leases. A copy of this very run holding them (a redelivery after its worker was
    lost, or while it still lives) is waited for until they expire or the run ends."""
    busy, token = leases.acquire(ctx.lease_keys, ctx.holder)
    waited_until = time.monotonic() + REDELIVERY_WAIT.total_seconds()
    while busy is not None and leases.holder_of(busy) == ctx.holder and time.monotonic() < waited_until:
        time.sleep(min(2.0, REDELIVERY_WAIT.total_seconds()))
        if Run.objects.filter(pk=ctx.run.pk, status__in=Run.FINISHED).exists():
            break
        busy, token = leases.acquire(ctx.lease_keys, ctx.holder)
    return busy, token


def _end_after_error(ctx: RunContext, message: str) -> None:
    """Mark the run failed even when the error broke the database connection (a second try on a new one)."""
    for attempt in range(2):
        try:
            ctx.flush_counts()
            _finish(ctx.run, Run.Status.FAILED, message)
            return
        except DatabaseError:
            if attempt:
                raise
            connection.close()  # Django opens a new one on the next query


def _source_lease(activity: Activity | None) -> list[str]:
    """The lease of the place the source reads, as its connector names it (none when it cannot say)."""
    if activity is None:
        return []
    connection = activity.connection
    connector = connection.connector_type
    try:
        config = connector.parse_config(connection.config)
        settings = activity_settings.parsed(activity)
    except ConfigError:
        return []  # the run stops on these settings anyway, saying why
    return [connector.source_lease_key(config, settings)]


def _final_status(ctx: RunContext) -> str:
    ctx.flush_counts()
    run = ctx.run
    if run.failed_count == 0:
        return Run.Status.PARTIAL if ctx.in_doubt else Run.Status.SUCCEEDED
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
    memory.tune_malloc()
    ctx = RunContext(run)
    operation = run.operation
    source_activity = operation.source
    ctx.lease_keys = [f"operation:{operation.pk}", *_source_lease(source_activity)]
    busy, ctx.token = _acquire(ctx)
    if busy is not None:
        holder = leases.holder_of(busy)
        if holder == ctx.holder:
            # The broker handed this run out again while a copy of it still runs (and renews its
            # lease) elsewhere: that copy finishes it; this one sends nothing and changes nothing.
            log.warning("run %s is still running elsewhere; this copy exits", run.pk)
            return run
        _finish(run, Run.Status.CANCELLED, f"not started: {busy} is held by {holder or 'another run'}")
        return run
    try:
        run.status = Run.Status.RUNNING
        run.started_at = run.started_at or timezone.now()
        run.worker = f"{socket.gethostname()}:{os.getpid()}"
        run.save(update_fields=["status", "started_at", "worker"])
        try:
            _execute(ctx)
        except Exception as exc:
            # The worker's time limit, a database hiccup, a bug: the run must still end, never stay
            # "running"; the ledger keeps every message's state, so the next run carries on.
            if is_stop_exception(exc):
                _end_after_error(ctx, f"stopped at its time limit (the operation's timeout of {operation.time_limit}"
                                      f" and {brokers.SOFT_LIMIT_SLACK} s)")
            else:
                log.exception("run %s stopped by an unexpected error", run.pk)
                _end_after_error(ctx, f"stopped by an unexpected error: {type(exc).__name__}: {exc}"[:2000])
    finally:
        ctx.persist_tokens()  # what the sender thread refreshed last
        leases.release(ctx.lease_keys, ctx.holder, ctx.token)
    run.refresh_from_db()
    return run


def _execute(ctx: RunContext) -> None:
    run, operation = ctx.run, ctx.operation
    source = None
    error = ""
    try:
        source_ep = endpoint(operation.source, "source")
        target_ep = endpoint(operation.target, "target")
        ctx.token_stores = [ep.secrets.token_store for ep in (source_ep, target_ep) if ep.secrets.token_store]
        ctx.log(f"run started ({run.get_trigger_display()}): {source_ep.activity.name} → {target_ep.activity.name}")
        with ExitStack() as stack:
            source_connector = source_ep.activity.connection.connector_type
            target_connector = target_ep.activity.connection.connector_type
            # Every network wait of the run ends with the operation's timeout, not only the checks between messages.
            deadline = stack.enter_context(net.Deadline(max(ctx.deadline - time.monotonic(), 0)))
            source = stack.enter_context(
                source_connector.open_source(source_ep.config, source_ep.secrets, source_ep.settings, deadline))
            target = stack.enter_context(
                target_connector.open_target(target_ep.config, target_ep.secrets, target_ep.settings, deadline))
            stack.enter_context(small_page_cache())
            ctx.heartbeat = stack.enter_context(leases.Heartbeat(ctx.lease_keys, ctx.holder, ctx.token))
            Pipeline(ctx, source_ep, source, target_ep, target, run.replay_of).run()
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


def _summary_line(ctx: RunContext) -> str:
    ctx.flush_counts()
    run = ctx.run
    doubt = f", {ctx.in_doubt} in doubt (no reply after the end of the message)" if ctx.in_doubt else ""
    if ctx.resent_in_doubt:
        doubt += f", {ctx.resent_in_doubt} in doubt resent with the same Message-ID"
    return (f"{run.read_count} read, {run.sent_count} sent, {run.skipped_count} skipped, "
            f"{run.failed_count} failed{doubt}")
