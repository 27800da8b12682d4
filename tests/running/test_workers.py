"""Exactly once across real Celery worker processes on Redis: a worker killed mid-run, two workers racing.

The workers are separate processes (``celery -A designer worker``) that share this test's SQLite
file, as production workers share PostgreSQL. They use Redis db 14, on a queue of each test's own.

What happens to a task whose worker dies (found out here, and asserted):

* ``--pool solo``: the engine runs in the worker's main process, so SIGKILL takes the consumer
  with it and nothing can reject the message. It stays in Redis' ``unacked`` hash until a
  consumer restores it to the queue, which kombu does only for messages older than the
  transport's ``visibility_timeout`` (settings: ``CELERY_VISIBILITY_TIMEOUT``, 25 h by default;
  5 s here), and only when a worker starts or on its periodic sweep (every
  ``unacked_restore_interval`` x ``unacked_restore_throttle`` = 100 s by default). Restarting
  a worker after the timeout redelivers the task at once; the same run then goes on. Until
  then the dead run's lease (5 minutes) turns other runs of the operation away.
* prefork: the child dies, the parent sees ``WorkerLostError`` and, with ``acks_late`` and
  ``reject_on_worker_lost``, requeues the message at once; a new child runs it again.

Either way the redelivered run takes its own lease back (the holder is the run) and finds the
message it sent before the kill as "sent" in the ledger: it acknowledges it without sending.
"""

from __future__ import annotations

import json
import os
import threading
import time
import uuid
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest
import redis

from designer.celery import app
from designer.models import LedgerEntry, Operation, Run, RunRecord
from designer.running.runs import execute_run
from tests.helpers import database_url
from tests.running.test_faults import (
    assert_exactly_once,
    ids,
    nth_attempts,
    questions,
    run_inline,
    seed,
    setup_operation,
    source_of,
)
from tests.workers import Worker

REDIS_URL = "redis://127.0.0.1:6379/14"
LEASE_SECONDS = 15
VISIBILITY_TIMEOUT = 5  # seconds before Redis hands an unacknowledged task to another worker

pytestmark = pytest.mark.worker


@dataclass
class Broker:
    """Redis db 14 and a queue of this test's own.

    Other test sessions may use the same Redis at the same time (the suite runs in parallel
    checkouts): a private queue keeps their workers off our tasks, and we delete only our keys
    instead of flushing theirs.
    """

    client: redis.Redis
    queue: str

    def tasks(self) -> tuple[int, dict[bytes, float]]:
        """Our tasks waiting in the queue, and those a worker took and never acknowledged (tag -> when).

        Read in one MULTI, so a task being restored from one to the other is counted once.
        """
        pipe = self.client.pipeline(transaction=True)
        pipe.llen(self.queue).hgetall("unacked").zrange("unacked_index", 0, -1, withscores=True)
        waiting, payloads, index = pipe.execute()
        taken_at = dict(index)
        unacked = {}
        for tag, payload in payloads.items():
            _message, _exchange, routing_key = json.loads(payload)
            if routing_key == self.queue:
                unacked[tag] = float(taken_at.get(tag, 0))
        return int(waiting), unacked

    def wait_drained(self, timeout: float = 15) -> tuple[int, dict[bytes, float]]:
        """Our tasks once the worker had time to acknowledge them.

        The run is marked finished inside the task; with ``acks_late`` the worker acknowledges
        the message only after the task returns, a moment later.
        """
        deadline = time.monotonic() + timeout
        while (tasks := self.tasks()) != (0, {}) and time.monotonic() < deadline:
            time.sleep(0.1)
        return tasks


@pytest.fixture
def broker() -> Iterator[Broker]:
    client = redis.Redis.from_url(REDIS_URL)
    queue = f"mailwright-test-{uuid.uuid4().hex[:12]}"
    app.conf.task_always_eager = False
    yield Broker(client, queue)
    app.conf.task_always_eager = True
    for tag in Broker(client, queue).tasks()[1]:
        client.hdel("unacked", tag)
        client.zrem("unacked_index", tag)
    # The queue and the bindings kombu keeps for it (each test has its own: they would pile up).
    client.delete(queue, f"_kombu.binding.{queue}", f"_kombu.binding_permanent.{queue}")


def worker_env() -> dict[str, str]:
    return {
        **os.environ,
        "DJANGO_SETTINGS_MODULE": "tests.settings",
        "DATABASE_URL": database_url(),
        "CELERY_BROKER_URL": REDIS_URL,
        "CELERY_TASK_ALWAYS_EAGER": "0",
        "CELERY_VISIBILITY_TIMEOUT": str(VISIBILITY_TIMEOUT),
        "MAILWRIGHT_UNSAFE_REDELIVERY": "1",  # redelivery within seconds is the point here
        # A killed worker's leases expire soon, so the run's redelivered copy takes over within the test.
        "MAILWRIGHT_LEASE_SECONDS": str(LEASE_SECONDS),
    }


@pytest.fixture
def workers(tmp_path: Path, broker: Broker) -> Iterator[Any]:
    started: list[Worker] = []

    def start(name: str, **kwargs: Any) -> Worker:
        worker = Worker(tmp_path / f"{name}.log", broker.queue, worker_env(), **kwargs)
        started.append(worker)
        return worker

    yield start
    for worker in started:
        worker.stop()


def enqueue(operation: Operation, broker: Broker) -> Run:
    """What runs.start does, sent explicitly to Redis: the suite's settings make apply_async eager."""
    run = Run.objects.create(operation=operation, trigger=Run.Trigger.MANUAL)
    with app.connection_for_write(REDIS_URL) as connection:
        execute_run.apply_async((run.pk,), connection=connection, queue=broker.queue,
                                soft_time_limit=120, time_limit=180)
    return run


def wait_finished(runs: list[Run], workers: list[Worker], timeout: float = 90) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        for run in runs:
            run.refresh_from_db()
        if all(run.finished for run in runs):
            return
        time.sleep(0.2)
    logs = "\n".join(w.output()[-2000:] for w in workers)
    pytest.fail(f"runs not finished: {[(r.pk, r.status, r.message) for r in runs]}\n{logs}")


def test_it_acknowledges_without_resending_after_a_solo_worker_is_killed_between_send_and_ack(
        transactional_db, dovecot, mailbox, smtp, tmp_path, monkeypatch, broker, workers):
    operation = setup_operation(tmp_path, monkeypatch, dovecot, smtp)
    seed(mailbox, questions(range(5)))
    # The server defers every message after the first: the worker dies after recording q0 "sent",
    # not in the window between a later message's reply and its record (the next test's subject).
    smtp.fail_when(nth_attempts(set(range(2, 1000)), (451, "4.3.0 Try again later")))
    run = enqueue(operation, broker)

    doomed = workers("doomed", fault_point="after_sent")
    assert doomed.wait_exit() == -9, doomed.output()[-3000:]

    # Killed right after the ledger said "sent": one message out, none marked read.
    assert [source_of(m) for m in smtp.messages] == ["<q0@example.org>"]
    assert LedgerEntry.objects.get(identity="<q0@example.org>").state == LedgerEntry.State.SENT
    assert all("\\Seen" not in flags for flags in mailbox.flags().values())
    run.refresh_from_db()
    assert run.status == Run.Status.RUNNING
    # The task is not lost: Redis holds it as taken but unacknowledged (or, if a worker of another
    # test session on this Redis swept it already, back in our queue: restoring is per database).
    waiting, unacked = broker.tasks()
    assert waiting + len(unacked) == 1, (waiting, unacked)
    # Meanwhile the dead run's lease (5 minutes) turns any other run of the operation away.
    blocked = run_inline(operation)
    assert blocked.status == Run.Status.CANCELLED and f"is held by run-{run.pk}" in blocked.message

    # A starting worker restores unacknowledged tasks older than the visibility timeout; a running
    # one only sweeps every unacked_restore_interval x unacked_restore_throttle (100 s by default).
    for taken_at in unacked.values():
        time.sleep(max(0.0, taken_at + VISIBILITY_TIMEOUT + 0.5 - time.time()))
    smtp.clear_faults()
    rescuer = workers("rescuer")
    wait_finished([run], [rescuer], timeout=90)

    # The same run came back and finished the job.
    assert run.status == Run.Status.SUCCEEDED, (run.message, rescuer.output()[-3000:])
    assert Run.objects.filter(status=Run.Status.SUCCEEDED).count() == 1
    first = LedgerEntry.objects.get(identity="<q0@example.org>")
    assert run.records.filter(status=RunRecord.Status.ACKNOWLEDGED, ledger=first).exists()
    assert broker.wait_drained() == (0, {})
    assert set(assert_exactly_once(operation, mailbox, smtp, expected=ids(range(5))).values()) == {"delivered"}


def one_message_per_burst(quiet: float = 1.0) -> Any:
    """A fail_when predicate that takes a message, then defers (451) every one arriving within
    ``quiet`` seconds of the last it took: one message per worker child that dies right after it."""
    last_taken = [float("-inf")]
    lock = threading.Lock()

    def predicate(_received: Any) -> tuple[int, str] | None:
        with lock:
            now = time.monotonic()
            if now - last_taken[0] < quiet:
                return (451, "4.3.0 Try again later")
            last_taken[0] = now
            return None

    return predicate


def test_it_delivers_exactly_once_when_every_prefork_child_is_killed_after_its_send(
        transactional_db, dovecot, mailbox, smtp, tmp_path, monkeypatch, broker, workers):
    operation = setup_operation(tmp_path, monkeypatch, dovecot, smtp)
    seed(mailbox, questions(range(3)))
    # Each child sends one message: the server defers what comes right after a message it took
    # (each child's senders go on while its run's thread records the first).
    smtp.fail_when(one_message_per_burst())
    run = enqueue(operation, broker)

    # Every child inherits the fault: each redelivery sends one more message and dies, until the
    # last one finds nothing left to send. Three kills, four executions of one run (the parent
    # notices a dead child on its 5-second maintenance tick, hence the time this takes).
    worker = workers("prefork", pool="prefork", fault_point="after_sent")
    wait_finished([run], [worker])

    assert run.status == Run.Status.SUCCEEDED, (run.message, worker.output()[-3000:])
    assert worker.output().count("WorkerLostError('Worker exited prematurely: signal 9 (SIGKILL)") == 3
    assert sorted(source_of(m) for m in smtp.messages) == sorted(ids(range(3)))
    # Each message sent by one child and acknowledged by the next.
    assert run.records.filter(status=RunRecord.Status.ACKNOWLEDGED).count() == 3
    assert broker.wait_drained() == (0, {})
    worker.stop()
    assert set(assert_exactly_once(operation, mailbox, smtp, expected=ids(range(3))).values()) == {"delivered"}


def test_it_lets_one_of_two_racing_workers_run_an_operation(transactional_db, dovecot, mailbox, smtp, tmp_path,
                                                             monkeypatch, broker, workers):
    operation = setup_operation(tmp_path, monkeypatch, dovecot, smtp)
    seed(mailbox, questions(range(40)))
    first, second = workers("first"), workers("second")
    first.wait_ready()
    second.wait_ready()

    runs = [enqueue(operation, broker), enqueue(operation, broker)]
    wait_finished(runs, [first, second])

    statuses = sorted(run.status for run in runs)
    assert {run.worker.rsplit(":", 1)[1] for run in runs if run.worker} <= {
        str(first.process.pid), str(second.process.pid)}
    if statuses == [Run.Status.CANCELLED, Run.Status.SUCCEEDED]:
        # They overlapped: the lease turned the second away before it read anything.
        loser = next(run for run in runs if run.status == Run.Status.CANCELLED)
        winner = next(run for run in runs if run.status == Run.Status.SUCCEEDED)
        assert loser.message.startswith("not started: ") and f"is held by run-{winner.pk}" in loser.message
        assert (loser.read_count, loser.sent_count) == (0, 0)
        assert winner.sent_count == 40
    else:
        # One finished before the other began: the second found nothing new.
        assert statuses == [Run.Status.SUCCEEDED, Run.Status.SUCCEEDED], [(r.status, r.message) for r in runs]
        assert sorted(run.sent_count for run in runs) == [0, 40]
    assert set(assert_exactly_once(operation, mailbox, smtp, expected=ids(range(40))).values()) == {"delivered"}
