"""The state of one executing run: counts, logging, checkpoints (cancel, timeout, lease), its endpoints."""

from __future__ import annotations

import os
import signal
import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from typing import Any

from django.db import connection
from django.db.models import F
from django.utils import timezone

from connectors.base import ConfigError, Secrets
from designer.crypto import SecretsUnreadable
from designer.models import Activity, Operation, Run, RunLog
from designer.running import activity_settings, leases, tokens
from designer.running.variables import masked

# SQLite's page cache for a run's connection, in KiB (see ``small_page_cache``).
RUN_SQLITE_CACHE_KB = 256
# Environment variable a fault-injection test sets to kill the worker at a named point.
FAULT_POINT_ENV = "MAILWRIGHT_FAULT_POINT"



class RunAborted(Exception):
    """The run cannot go on (cancelled, timed out, lease lost, source gone)."""

    def __init__(self, message: str, status: str = Run.Status.FAILED) -> None:
        super().__init__(message)
        self.status = status


def fault_point(name: str) -> None:
    if os.environ.get(FAULT_POINT_ENV) == name:
        os.kill(os.getpid(), signal.SIGKILL)


@dataclass
class Endpoint:
    activity: Activity
    config: Any
    secrets: Secrets
    settings: Any


def endpoint(activity: Activity | None, role: str) -> Endpoint:
    if activity is None:
        raise RunAborted(f"the operation has no {role}")
    connection = activity.connection
    connector = connection.connector_type
    kind = connector.activity_type(activity.type)
    if kind.role != role:
        raise RunAborted(f"{activity.name} is a {kind.label} activity, which cannot be a {role}")
    try:
        secrets = connection.get_secrets()
        secrets.token_store = tokens.run_store(secrets.token_store)
        return Endpoint(
            activity=activity,
            config=connector.parse_config(connection.config),
            secrets=secrets,
            settings=activity_settings.parsed(activity),
        )
    except ConfigError as exc:
        raise RunAborted(f"{activity.name}: invalid settings: {exc}") from None
    except SecretsUnreadable as exc:
        raise RunAborted(f"{connection.name}: {exc}") from None


class RunContext:
    """The state of one executing run: counts, logging, lease renewal, cancel and timeout checks."""

    def __init__(self, run: Run) -> None:
        self.run = run
        self.operation = run.operation
        self.holder = f"run-{run.pk}"
        self.lease_keys: list[str] = []
        self.token = ""  # the leases' fencing token
        self.heartbeat: leases.Heartbeat | None = None
        self.token_stores: list[tokens.RunTokenStore] = []  # the endpoints', written from here
        self.deadline = time.monotonic() + self.operation.time_limit.total_seconds()
        self.last_cancel_check = time.monotonic()
        self.debug = bool(self.operation.debug_until and self.operation.debug_until > timezone.now())
        self.unacknowledged = 0
        self.in_doubt = 0  # messages sent without a reply to their end: resent by a later run
        self.resent_in_doubt = 0  # messages in doubt from an earlier run that this one sends again
        self.pending: dict[str, int] = {}
        self.last_flush = time.monotonic()

    def log(self, text: str, level: str = "info") -> None:
        if level == "info" and self.operation.log_level == Operation.LogLevel.ERRORS:
            return
        text = masked(text, self.operation.project.secret_values)
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

    def persist_tokens(self) -> None:
        """Store the sign-in tokens the sender thread refreshed (``tokens``)."""
        for store in self.token_stores:
            store.persist()

    def checkpoint(self) -> None:
        """Between messages: honour cancel and timeout, keep our leases alive."""
        now = time.monotonic()
        self.persist_tokens()
        if now > self.deadline:
            raise RunAborted(f"stopped: the operation's timeout of {self.operation.time_limit} was reached")
        if now - self.last_cancel_check > 1:
            self.last_cancel_check = now
            if Run.objects.filter(pk=self.run.pk, cancel_requested=True).exists():
                raise RunAborted("cancelled by a user", Run.Status.CANCELLED)
        if self.heartbeat is not None and self.heartbeat.lost.is_set():
            raise RunAborted("lost the run's lease (the worker stalled longer than the lease); stopping")

    def holds_leases(self) -> bool:
        if self.heartbeat is not None and self.heartbeat.vouches():
            return True
        return leases.holds(self.lease_keys, self.holder, self.token)

    def fence(self) -> None:
        """Inside the transaction of a write that precedes a side effect: stop unless this run still
        holds its leases under its token (another copy or run may have taken them)."""
        if not self.holds_leases():
            raise RunAborted("lost the run's lease (another run took it); stopping before sending")


@contextmanager
def small_page_cache() -> Iterator[None]:
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
