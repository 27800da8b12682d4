"""What the run's thread does while the sender works: it lands the message in flight whatever stops
the run, applies due acknowledgements, and keeps the sender thread off the database."""

import os
import signal
import threading
import time

import pytest
from celery.exceptions import SoftTimeLimitExceeded
from django.db import DatabaseError

from designer.crypto import decrypt_secrets
from designer.models import Connection, LedgerEntry
from designer.models.connections import ConnectionTokenStore
from designer.running import acks
from tests import fakes


def _slow_writes(monkeypatch, seconds_by_subject, then=None):
    write = fakes.FakeTarget.write

    def slow(self, prepared, written=None):
        time.sleep(seconds_by_subject.get(prepared.record["subject"], 0))
        if then is not None:
            then(self, prepared)
        return write(self, prepared, written)

    monkeypatch.setattr(fakes.FakeTarget, "write", slow)


@pytest.fixture
def celery_soft_limit_in(request):
    """Celery's prefork soft limit: SIGUSR1 to the process, whose handler raises in the main thread."""
    def raise_soft(signum, frame):
        raise SoftTimeLimitExceeded()

    previous = signal.signal(signal.SIGUSR1, raise_soft)
    timers = []

    def arm(seconds):
        timer = threading.Timer(seconds, os.kill, (os.getpid(), signal.SIGUSR1))
        timers.append(timer)
        timer.start()

    yield arm
    for timer in timers:
        timer.cancel()
    signal.signal(signal.SIGUSR1, previous)


def test_a_soft_time_limit_while_the_server_answers_still_records_its_answer(world, run_once, monkeypatch,
                                                                              celery_soft_limit_in):
    world.add("slow to answer")
    _slow_writes(monkeypatch, {"Fwd: slow to answer": 1.0})
    celery_soft_limit_in(0.4)  # while the run's thread waits on the sender
    run = run_once()
    assert [m["subject"] for m in world.sent] == ["Fwd: slow to answer"]
    assert LedgerEntry.objects.get().state in ("sent", "acknowledged")  # not left "sending"
    assert run.status == "failed" and run.message.startswith("stopped at its time limit"), run.message
    assert run.records.get().status == "sent"


def test_a_delivered_message_is_marked_while_the_next_one_is_still_being_sent(world, run_once, monkeypatch):
    monkeypatch.setattr(acks, "ACK_INTERVAL_SECONDS", 0.3)
    world.add("quick")
    world.add("slow")
    seen_meanwhile = []
    _slow_writes(monkeypatch, {"Fwd: slow": 1.5},
                 then=lambda target, prepared: seen_meanwhile.append(set(fakes.WORLD.seen)))
    run = run_once()
    assert run.status == "succeeded", run.message
    # The quick one's mark did not wait for another message to be acknowledged, nor for the run's end.
    assert seen_meanwhile == [set(), {1}]


@pytest.fixture
def sender_refreshes_tokens(monkeypatch):
    """A target that logs in again on the sender thread and saves refreshed tokens, as OAuth does."""
    open_target = fakes.FakeConnector.open_target
    saved_on = []

    def opening(self, config, secrets, settings, deadline=None):
        target = open_target(self, config, secrets, settings, deadline)
        target.token_store = secrets.token_store
        return target

    def refreshing(target, prepared):
        target.token_store.save('{"refreshed": true}')

    real_save = ConnectionTokenStore.save

    def recording_save(self, value):
        saved_on.append(threading.current_thread() is threading.main_thread())
        real_save(self, value)

    monkeypatch.setattr(fakes.FakeConnector, "open_target", opening)
    monkeypatch.setattr(ConnectionTokenStore, "save", recording_save)
    _slow_writes(monkeypatch, {}, then=refreshing)
    return saved_on


def test_tokens_refreshed_on_the_sender_thread_are_stored_from_the_runs_thread(world, run_once, operation,
                                                                                sender_refreshes_tokens):
    world.add("needs a new token")
    run = run_once()
    assert run.status == "succeeded", run.message
    assert sender_refreshes_tokens == [True]  # one write, on the run's (main) thread
    token = Connection.objects.get(pk=operation.target.connection_id).token_cache_token
    assert decrypt_secrets(token) == {"cache": '{"refreshed": true}'}


def test_a_database_error_storing_refreshed_tokens_does_not_end_the_run(world, run_once, monkeypatch,
                                                                       sender_refreshes_tokens):
    def failing(self, value):
        raise DatabaseError("database is locked")

    monkeypatch.setattr(ConnectionTokenStore, "save", failing)
    world.add("first")
    world.add("second")
    run = run_once()
    assert run.status == "succeeded", run.message
    assert len(world.sent) == 2
