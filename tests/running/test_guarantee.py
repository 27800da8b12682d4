"""Poison messages, replays after a later success and chains that loop, on the in-memory connector."""

from __future__ import annotations

from datetime import timedelta

import pytest

from designer.models import Lease, LedgerEntry, Operation, Run, RunRecord
from designer.running import runs
from designer.running.ledger import QUARANTINE_RUNS


def test_a_message_the_mapping_fails_on_is_quarantined_after_three_runs_while_the_others_flow(
        world, run_once, operation):
    operation.mapping = {**operation.mapping, "subject": "{{ (1 / 0) if subject == 'poison' else subject }}"}
    operation.save()
    world.add("fine 1")
    world.add("poison")
    world.add("fine 2")

    first = run_once()

    assert [m["subject"] for m in world.sent] == ["fine 1", "fine 2"]
    assert first.status == "partial"
    for _ in range(QUARANTINE_RUNS - 1):
        run_once()
    row = LedgerEntry.objects.get(identity="<m2@fake>")
    assert row.state == LedgerEntry.State.QUARANTINED
    assert row.error.startswith(f"quarantined after failing in {QUARANTINE_RUNS} runs: mapping of subject")
    assert RunRecord.objects.filter(status="quarantined").count() == 1

    after = run_once()  # the mailbox flows: the quarantined message no longer fails every run

    assert (after.status, after.read_count, after.failed_count) == ("succeeded", 0, 0)
    assert len(world.sent) == 2


def test_a_quarantined_message_is_replayed_after_a_fix(world, run_once, operation,
                                                      django_capture_on_commit_callbacks):
    operation.mapping = {**operation.mapping, "subject": "{{ 1 / 0 }}"}
    operation.save()
    world.add("poison")
    for _ in range(QUARANTINE_RUNS):
        run = run_once()
    record = run.records.get(status="quarantined")
    operation.mapping = {**operation.mapping, "subject": "fixed"}
    operation.save()

    with django_capture_on_commit_callbacks(execute=True):
        replay = runs.replay(record)

    replay.refresh_from_db()
    assert replay.status == "succeeded", replay.message
    assert [m["subject"] for m in world.sent] == ["fixed"]


def test_it_refuses_to_replay_a_message_a_later_run_delivered(world, run_once):
    world.add("late")
    world.faults = [("transient", "451 later")] * 3  # every attempt of the first run
    first = run_once()
    old = first.records.get(status="retry")
    run_once()  # delivered by the next run
    assert len(world.sent) == 1

    with pytest.raises(runs.ReplayRefused, match=r"delivered on .* in run #\d+; it is not sent again"):
        runs.replay(old)
    assert len(world.sent) == 1


def test_chained_runs_stop_at_the_depth_limit(world, run_once, operation, monkeypatch,
                                               django_capture_on_commit_callbacks):
    monkeypatch.setattr(runs, "MAX_CHAIN_DEPTH", 3)
    Operation.objects.filter(pk=operation.pk).update(on_success=operation.pk)  # a loop made behind the forms' back
    operation.refresh_from_db()
    with django_capture_on_commit_callbacks(execute=True):
        run_once()
    assert Run.objects.count() == 4  # the first and three chained
    assert Run.objects.filter(logs__text__contains="chained runs in a row").exists()


def test_a_redelivered_run_whose_copy_still_runs_elsewhere_sends_nothing(world, operation, monkeypatch):
    from designer.running import engine, leases

    monkeypatch.setattr(engine, "REDELIVERY_WAIT", timedelta(seconds=0.3))
    world.add("m")
    running = Run.objects.create(operation=operation, status=Run.Status.RUNNING)
    # The first copy holds the leases and its heartbeat keeps them alive.
    leases.acquire([f"operation:{operation.pk}"], f"run-{running.pk}")

    copy = engine.execute(running.pk)

    assert copy.status == Run.Status.RUNNING  # left to the copy that runs it
    assert world.sent == []


def test_a_run_that_lost_its_lease_stops_before_sending_more(world, run_once, monkeypatch):
    from designer.running import leases
    from tests import fakes

    for n in range(3):
        world.add(f"m{n}")
    original_write, original_holds = fakes.FakeTarget.write, leases.holds

    def write_then_stall_past_the_lease(self, prepared, written=None):
        delivery = original_write(self, prepared, written)
        # The run stalled longer than its lease: its last renewal is older than the time to live.
        monkeypatch.setattr(leases, "_clock", lambda: float("inf"))
        return delivery

    def holds_once_taken_over(*args, **kwargs):
        Lease.objects.update(holder="run-other", token="other")  # another run took it meanwhile
        return original_holds(*args, **kwargs)

    monkeypatch.setattr(fakes.FakeTarget, "write", write_then_stall_past_the_lease)
    monkeypatch.setattr(leases, "holds", holds_once_taken_over)

    run = run_once()

    assert [m["subject"] for m in world.sent] == ["Fwd: m0"]
    assert "lost the run's lease" in run.message
    assert LedgerEntry.objects.filter(state__in=("sent", "acknowledged")).count() == 1
    assert run.read_count == 1
