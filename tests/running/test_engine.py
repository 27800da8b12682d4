"""The delivery guarantee, proven on the in-memory connector; the real servers have their own suite."""

from datetime import timedelta

import pytest
from django.utils import timezone

from designer.models import Activity, Lease, LedgerEntry, Run, RunRecord
from designer.running import leases, runs


def _subjects(world):
    return [m["subject"] for m in world.sent]


def test_it_delivers_each_message_once_and_marks_it(world, run_once):
    for n in range(3):
        world.add(f"hello {n}")
    run = run_once()
    assert run.status == "succeeded", run.message
    assert (run.read_count, run.sent_count, run.skipped_count, run.failed_count) == (3, 3, 0, 0)
    assert _subjects(world) == ["Fwd: hello 0", "Fwd: hello 1", "Fwd: hello 2"]
    assert world.seen == {1, 2, 3}
    assert set(LedgerEntry.objects.values_list("state", flat=True)) == {"acknowledged"}
    assert run.records.filter(status="sent").count() == 3


def test_it_sends_nothing_on_a_second_run(world, run_once):
    world.add("once")
    run_once()
    second = run_once()
    assert second.status == "succeeded"
    assert second.read_count == 0
    assert len(world.sent) == 1


def test_it_acknowledges_without_resending_what_was_sent_but_not_marked(world, run_once):
    world.add("crash window")
    world.ack_fails = True
    first = run_once()
    assert first.status == "partial"
    assert "not yet marked" in first.message
    assert LedgerEntry.objects.get().state == "sent"
    world.ack_fails = False
    second = run_once()
    assert second.status == "succeeded"
    assert len(world.sent) == 1
    assert world.seen == {1}
    assert second.records.get().status == "acknowledged"
    assert second.records.get().subject == "crash window"  # taken from the first run's record


def test_a_failed_acknowledgement_batch_does_not_hide_the_others(world, run_once, operation, monkeypatch):
    from designer.running import acks, context, engine, pipeline  # noqa: F401

    monkeypatch.setattr(acks, "ACK_BATCH", 2)
    monkeypatch.setattr(acks, "ACK_FAILURE_LIMIT", 1)
    operation.condition = "'urgent' in subject"
    operation.save()
    operation.source.settings = {"on_skip": "delete"}
    operation.source.save()
    world.add("urgent: help")
    world.add("newsletter")
    world.ack_fails = True
    run = run_once()
    # The skipped message's delete failed first and stops the run, but only once the delivered
    # message's batch was tried (and logged) too.
    assert run.status == "partial", run.message
    assert "the source stopped answering" in run.message
    logged = list(run.logs.filter(level="error").values_list("text", flat=True))
    assert any(text.startswith("could not delete message(s) 2") for text in logged), logged
    assert any(text.startswith("could not mark read message(s) 1") for text in logged), logged
    world.ack_fails = False
    assert run_once().sent_count == 0
    assert world.seen == {1}


def test_it_resends_a_message_left_sending_under_the_same_message_id(world, run_once, operation):
    world.add("unknown outcome")
    LedgerEntry.objects.create(operation=operation, connection=operation.source.connection, scope="INBOX",
                               epoch=1, position=1,
                               identity="<m1@fake>", state="sending", out_message_id="<kept@mailwright>")
    run_once()
    assert [m["message_id"] for m in world.sent] == ["<kept@mailwright>"]


def test_it_retries_a_transient_failure_within_the_run(world, run_once):
    world.add("flaky")
    world.faults = [("transient", "451 try later")]
    run = run_once()
    assert run.status == "succeeded"
    assert len(world.sent) == 1


def test_it_leaves_a_persistent_transient_failure_for_the_next_run(world, run_once, operation):
    world.add("later")
    world.faults = [("transient", "451 try later")] * 3  # retries=2: three attempts
    run = run_once()
    assert run.status == "failed"
    assert world.seen == set()
    assert LedgerEntry.objects.get().state == "retry"
    assert "451" in run.records.get().error
    again = run_once()
    assert again.status == "succeeded"
    assert len(world.sent) == 1
    assert world.seen == {1}


def test_it_records_a_permanent_failure_and_never_retries_it(world, run_once):
    world.add("rejected")
    world.add("fine")
    world.faults = [("permanent", "550 5.7.1 no thanks")]
    run = run_once()
    assert run.status == "partial"
    assert (run.sent_count, run.failed_count) == (1, 1)
    assert world.seen == {2}  # the rejected message is not flagged
    failed = run.records.get(status="failed")
    assert "550 5.7.1 no thanks" in failed.error
    again = run_once()
    assert again.read_count == 0
    assert len(world.sent) == 1


def test_it_stops_early_when_the_target_keeps_failing(world, run_once):
    for n in range(10):
        world.add(f"m{n}")
    world.faults = [("transient", "421 down")] * 100
    run = run_once()
    assert run.failed_count == 3
    assert run.read_count == 3


def test_it_skips_by_condition_and_records_why(world, run_once, operation):
    operation.condition = "'urgent' in subject"
    operation.save()
    world.add("urgent: help")
    world.add("newsletter")
    run = run_once()
    assert run.status == "succeeded"
    assert (run.sent_count, run.skipped_count) == (1, 1)
    assert run.records.get(status="skipped").error == "the condition is false"
    assert world.seen == {1}  # on_skip defaults to leave
    assert run_once().read_count == 0


def test_it_fails_one_message_on_a_template_error_and_goes_on(world, run_once, operation):
    operation.mapping = {"to": "x@example.com", "subject": "{{ subject.upper() }}{{ 1 / size }}", "text": "t"}
    operation.save()
    world.add("a", size=0)
    world.add("b", size=1)
    run = run_once()
    assert run.status == "partial"
    failed = run.records.get(status="retry")
    assert failed.error.startswith("mapping of subject: ZeroDivisionError")
    assert _subjects(world) == ["B1.0"]


def test_a_bug_only_one_message_triggers_fails_that_message_and_the_others_go_on(world, run_once, monkeypatch):
    from tests import fakes

    prepare = fakes.FakeTarget.prepare

    def prepare_with_a_bug(self, record, message_id=None):
        if record["subject"] == "Fwd: bug":
            raise RuntimeError("boom")
        return prepare(self, record, message_id)

    monkeypatch.setattr(fakes.FakeTarget, "prepare", prepare_with_a_bug)
    world.add("bug")
    world.add("fine")
    run = run_once()
    assert run.status == "partial"
    assert run.records.get(status="retry").error == "unexpected RuntimeError: boom"
    assert _subjects(world) == ["Fwd: fine"]


def test_it_skips_an_unreadable_message_without_flagging_it(world, run_once):
    world.add("broken", unreadable=True)
    run = run_once()
    assert run.skipped_count == 1
    assert run.records.get().error == "unreadable"
    assert world.seen == set()


def test_it_recognises_delivered_messages_after_the_folder_is_recreated(world, run_once):
    world.add("before", message_id="<same@x>")
    run_once()
    world.seen.clear()  # the recreated folder shows it unread again
    world.recreate()
    run = run_once()
    assert len(world.sent) == 1
    assert run.records.get().status == "acknowledged"
    assert world.seen == set(world.messages)


def test_it_recognises_earlier_deliveries_among_new_messages_of_a_recreated_folder(world, run_once):
    world.add("before", message_id="<old@x>")
    run_once()
    world.seen.clear()
    world.recreate()
    world.add("new one", message_id="<new@x>")
    run = run_once()
    assert _subjects(world) == ["Fwd: before", "Fwd: new one"]
    assert sorted(run.records.values_list("status", flat=True)) == ["acknowledged", "sent"]


@pytest.mark.parametrize("state", ["sending", "in_doubt", "retry"])
def test_a_message_maybe_sent_before_the_folder_was_recreated_keeps_its_message_id(world, run_once, operation,
                                                                                     state):
    world.add("unknown outcome", message_id="<same@x>")
    LedgerEntry.objects.create(operation=operation, connection=operation.source.connection, scope="INBOX",
                               epoch=1, position=1, identity="<same@x>", state=state,
                               out_message_id="<kept@mailwright>")
    world.recreate()
    run = run_once()
    assert [m["message_id"] for m in world.sent] == ["<kept@mailwright>"]
    assert run.records.get().status == "sent"


@pytest.mark.parametrize("state", ["failed", "quarantined"])
def test_a_message_given_up_on_before_the_folder_was_recreated_is_not_sent_again(world, run_once, operation, state):
    world.add("refused", message_id="<refused@x>")
    world.add("fine", message_id="<fine@x>")
    LedgerEntry.objects.create(operation=operation, connection=operation.source.connection, scope="INBOX",
                               epoch=1, position=1, identity="<refused@x>", state=state,
                               error="550 no such user", out_message_id="<first@mailwright>")
    world.recreate()
    run = run_once()
    assert _subjects(world) == ["Fwd: fine"]
    record = run.records.get(identity="<refused@x>")
    assert record.status == state and "under UIDVALIDITY 1: 550 no such user" in record.error
    assert LedgerEntry.objects.get(epoch=2, identity="<refused@x>").state == state
    assert run_once().read_count == 0  # settled in the new epoch too: the next run leaves it alone
    assert runs.replay(record).status == "queued"  # and a person may still send it on purpose


def test_it_looks_for_earlier_epochs_once_per_run_not_per_message(world, run_once, monkeypatch):
    from designer.running import acks, context, engine, ledger  # noqa: F401

    calls = []
    monkeypatch.setattr(ledger, "earlier_epoch_row", lambda *a: calls.append(a))
    for n in range(5):
        world.add(f"hello {n}")
    run = run_once()
    assert run.sent_count == 5
    assert calls == []  # nothing was ever delivered under another UIDVALIDITY: no look-up per message


def test_it_takes_at_most_max_messages_oldest_first(world, run_once, operation):
    Activity.objects.filter(pk=operation.source_id).update(settings={"max_messages": 2})
    for n in range(5):
        world.add(f"m{n}")
    run = run_once()
    assert _subjects(world) == ["Fwd: m0", "Fwd: m1"]
    assert run.read_count == 2


def test_it_refuses_a_second_concurrent_run(world, run_once, operation):
    world.add("m")
    assert leases.acquire([f"operation:{operation.pk}"], "run-999")[0] is None
    run = run_once()
    assert run.status == "cancelled"
    assert "held by run-999" in run.message
    assert world.sent == []


def test_it_takes_back_its_own_lease_after_a_worker_loss(world, run_once, operation):
    world.add("m")
    queued = Run.objects.create(operation=operation, status=Run.Status.RUNNING)
    leases.acquire([f"operation:{operation.pk}"], f"run-{queued.pk}")
    # The lost worker's heartbeat stopped: its lease expires (on the database's clock).
    Lease.objects.update(expires_at=timezone.now() - timedelta(seconds=1))
    from designer.running import acks, context, engine, pipeline  # noqa: F401

    run = engine.execute(queued.pk)
    assert run.status == "succeeded"
    assert len(world.sent) == 1


def test_it_replays_a_failed_message_once(world, run_once, django_capture_on_commit_callbacks):
    world.add("rejected")
    world.faults = [("permanent", "550 no")]
    run = run_once()
    record = run.records.get(status="failed")
    with django_capture_on_commit_callbacks(execute=True):
        replay = runs.replay(record)
    replay.refresh_from_db()
    assert replay.status == "succeeded", replay.message
    assert replay.parent_id == run.pk
    assert len(world.sent) == 1
    with pytest.raises(runs.ReplayRefused, match="already"):
        runs.replay(RunRecord.objects.get(pk=record.pk))


def test_it_refuses_to_replay_a_sent_message(world, run_once):
    world.add("fine")
    record = run_once().records.get()
    with pytest.raises(runs.ReplayRefused):
        runs.replay(record)


def test_it_fails_clearly_without_a_target(world, run_once, operation):
    operation.target = None
    operation.save()
    world.add("m")
    run = run_once()
    assert run.status == "failed"
    assert run.message.startswith("the operation has no target")


def test_it_records_source_health(world, run_once, operation):
    world.add("a")
    world.add("b")
    Activity.objects.filter(pk=operation.source_id).update(settings={"max_messages": 1})
    run_once()
    source = Activity.objects.get(pk=operation.source_id)
    assert source.last_success_at is not None
    assert source.backlog == 1
    assert source.last_error == ""


def test_it_keeps_rendered_messages_only_in_debug_mode(world, run_once, operation):
    from datetime import timedelta

    from django.utils import timezone

    world.add("plain")
    assert run_once().records.get().rendered is None
    operation.debug_until = timezone.now() + timedelta(days=1)
    operation.save()
    world.add("debug")
    record = run_once().records.get()
    assert record.rendered["subject"] == "Fwd: debug"


def test_it_runs_the_on_failure_operation_as_a_chained_child(world, run_once, operation, project,
                                                             django_capture_on_commit_callbacks):
    from designer.models import Operation

    follow = Operation.objects.create(project=project, name="Cleanup", source=operation.source,
                                      target=operation.target, mapping=operation.mapping)
    operation.on_failure = follow
    operation.save()
    world.add("x")
    world.faults = [("permanent", "550 no")]
    with django_capture_on_commit_callbacks(execute=True):
        run = run_once()
    child = Run.objects.get(parent=run)
    assert child.operation == follow
    assert child.trigger == "chained"


def test_it_cancels_a_run_on_request(world, run_once, operation):
    queued = Run.objects.create(operation=operation)
    runs.cancel(queued)
    queued.refresh_from_db()
    assert queued.status == "cancelled"


def test_it_purges_old_runs(world, operation):
    from datetime import timedelta

    from django.utils import timezone

    old = Run.objects.create(operation=operation, status=Run.Status.SUCCEEDED)
    Run.objects.filter(pk=old.pk).update(queued_at=timezone.now() - timedelta(days=40))
    recent = Run.objects.create(operation=operation, status=Run.Status.SUCCEEDED)
    assert runs.purge(30) == 1
    assert list(Run.objects.values_list("pk", flat=True)) == [recent.pk]


def test_purging_never_deletes_a_run_in_progress(world, operation):
    running = Run.objects.create(operation=operation, status=Run.Status.RUNNING)
    queued = Run.objects.create(operation=operation)
    assert runs.purge(0) == 0
    assert set(Run.objects.values_list("pk", flat=True)) == {running.pk, queued.pk}


def test_a_run_no_worker_took_in_time_is_reaped(world, operation):
    from datetime import timedelta

    from django.utils import timezone

    lost = Run.objects.create(operation=operation)
    Run.objects.filter(pk=lost.pk).update(queued_at=timezone.now() - operation.timeout - timedelta(hours=1))
    fresh = Run.objects.create(operation=operation)

    assert runs.reap_stale() == 1
    lost.refresh_from_db()
    assert lost.status == Run.Status.FAILED and "no worker took this run" in lost.message
    assert Run.objects.get(pk=fresh.pk).status == Run.Status.QUEUED


def test_it_ends_the_run_when_something_unexpected_breaks(world, run_once, monkeypatch):
    from tests import fakes

    def explode(self, keys, make_room):
        raise RuntimeError("disk on fire")

    monkeypatch.setattr(fakes.FakeSource, "fetch", explode)
    world.add("m")
    run = run_once()
    assert run.status == "failed"
    assert "RuntimeError: disk on fire" in run.message


def test_it_sends_a_failure_notification_through_a_send_activity(world, run_once, operation):
    operation.notify = "failure"
    operation.notify_activity = operation.target
    operation.notify_to = "oncall@example.com"
    operation.save()
    world.add("x")
    world.faults = [("permanent", "550 no")]
    run = run_once()
    assert run.status == "failed"
    assert world.sent[-1]["to"] == "oncall@example.com"
    assert world.sent[-1]["subject"] == f"[Mailwright] Forward: run {run.pk} failed"
    assert run.logs.filter(text="notification sent to oncall@example.com").exists()


def test_it_builds_the_next_message_while_the_target_takes_one(world, run_once, monkeypatch):
    import threading

    from designer.running import acks, context, engine, pipeline  # noqa: F401
    from tests import fakes

    for n in range(3):
        world.add(f"m{n}")
    prepared: list[str] = []
    overlapped: list[bool] = []
    original_prepare, original_write = pipeline.Pipeline._prepare, fakes.FakeTarget.write
    next_one_built = threading.Event()

    def prepare(self, item, row):
        ready = original_prepare(self, item, row)
        prepared.append(item.record["subject"])
        if len(prepared) == 2:
            next_one_built.set()
        return ready

    def write(self, prepared, written=None):
        if prepared.record["subject"] == "Fwd: m0":  # the first waits until the second is built
            overlapped.append(next_one_built.wait(10) and threading.current_thread() is not threading.main_thread())
        return original_write(self, prepared, written)

    monkeypatch.setattr(pipeline.Pipeline, "_prepare", prepare)
    monkeypatch.setattr(fakes.FakeTarget, "write", write)
    run = run_once()
    assert run.status == "succeeded", run.message
    assert overlapped == [True]
    assert _subjects(world) == ["Fwd: m0", "Fwd: m1", "Fwd: m2"]


def test_two_large_messages_are_held_together_never_three(world, run_once, monkeypatch):
    import threading

    from designer.running import acks, context, engine, lookahead, pipeline  # noqa: F401
    from tests import fakes

    large = lookahead.LARGE_MESSAGE_BYTES + 1
    for subject, size in [("big1", large), ("small", 100), ("big2", large), ("big3", large)]:
        world.add(subject, bytes=size)
    events: list[str] = []
    big2_read = threading.Event()
    original_prepare, original_write = pipeline.Pipeline._prepare, fakes.FakeTarget.write

    def prepare(self, item, row):
        events.append(f"read {item.record['subject']}")
        ready = original_prepare(self, item, row)
        if item.record["subject"] == "big2":
            big2_read.set()
        return ready

    def write(self, prepared, written=None):
        if prepared.record["subject"] == "Fwd: big1":  # the next large message is read while one is sent
            events.append(f"big2 read meanwhile: {big2_read.wait(5)}")
        delivery = original_write(self, prepared, written)
        events.append(f"sent {prepared.record['subject'].removeprefix('Fwd: ')}")
        return delivery

    monkeypatch.setattr(pipeline.Pipeline, "_prepare", prepare)
    monkeypatch.setattr(fakes.FakeTarget, "write", write)
    run = run_once()
    assert run.status == "succeeded", run.message
    assert "big2 read meanwhile: True" in events
    # big3 is read only once big1, sent, no longer holds its message.
    assert events.index("read big3") > events.index("sent big1")
    assert _subjects(world) == ["Fwd: big1", "Fwd: small", "Fwd: big2", "Fwd: big3"]


def test_a_cancel_waits_for_the_message_in_flight_and_leaves_the_rest(world, run_once, monkeypatch):
    import time

    from designer.running import acks, context, engine, pipeline  # noqa: F401
    from tests import fakes

    for n in range(3):
        world.add(f"m{n}")
    original_prepare, original_write = pipeline.Pipeline._prepare, fakes.FakeTarget.write

    def prepare(self, item, row):
        if item.record["subject"] == "m1":
            Run.objects.filter(pk=self.ctx.run.pk).update(cancel_requested=True)
        return original_prepare(self, item, row)

    def write(self, prepared, written=None):
        time.sleep(2.5)  # the cancel check runs once a second: it is noticed while m0 is sent
        return original_write(self, prepared, written)

    monkeypatch.setattr(pipeline.Pipeline, "_prepare", prepare)
    monkeypatch.setattr(fakes.FakeTarget, "write", write)
    run = run_once()
    assert run.status == "cancelled", run.message
    # What was handed to the target before the cancel was noticed has its outcome in the ledger;
    # m1 and m2, queued for the connection but not handed over, are left for the next run as if
    # never read (their "sending" rows, written with m0's, only reserve their Message-IDs).
    assert _subjects(world) == ["Fwd: m0"]
    states = sorted(LedgerEntry.objects.values_list("position", "state"))
    assert states[0] == (1, "acknowledged") and {state for _position, state in states[1:]} <= {"sending"}
    assert world.seen == {1}
    assert (run.read_count, run.sent_count) == (1, 1)
    monkeypatch.undo()
    assert run_once().sent_count == 2


@pytest.mark.django_db
def test_sqlite_keeps_its_rollback_journal_between_transactions():
    from django.db import connection

    if connection.vendor != "sqlite":
        pytest.skip("a SQLite setting")
    with connection.cursor() as cursor:
        assert cursor.execute("PRAGMA journal_mode").fetchone()[0] == "persist"  # not WAL (see settings.py)


def test_a_run_keeps_sqlite_s_page_cache_small_and_gives_it_back(world, run_once, monkeypatch):
    from django.db import connection

    from designer.running import acks, context, engine, pipeline  # noqa: F401

    if connection.vendor != "sqlite":
        pytest.skip("a SQLite setting")

    def cache_size() -> int:
        with connection.cursor() as cursor:
            return cursor.execute("PRAGMA cache_size").fetchone()[0]

    before = cache_size()
    during: list[int] = []
    original_run = pipeline.Pipeline.run

    def run(self):
        during.append(cache_size())
        return original_run(self)

    monkeypatch.setattr(pipeline.Pipeline, "run", run)
    world.add("m")
    assert run_once().status == "succeeded"
    assert during == [-context.RUN_SQLITE_CACHE_KB]
    assert cache_size() == before


def test_connections_take_the_next_message_while_the_runs_thread_writes_the_ledger(world, run_once, monkeypatch):
    import threading
    import time

    from designer.running import ledger
    from tests import fakes

    for n in range(6):
        world.add(f"m{n}")
    recording = threading.Event()
    taken_meanwhile: list[str] = []
    original_mark_sent, original_write = ledger.Ledger.mark_sent, fakes.FakeTarget.write

    def slow_mark_sent(self, sent):
        recording.set()
        time.sleep(0.3)  # the run's thread is busy recording a group of outcomes
        recording.clear()
        return original_mark_sent(self, sent)

    def write(self, prepared, written=None):
        if recording.is_set():
            taken_meanwhile.append(prepared.record["subject"])
        time.sleep(0.02)
        return original_write(self, prepared, written)

    monkeypatch.setattr(ledger.Ledger, "mark_sent", slow_mark_sent)
    monkeypatch.setattr(fakes.FakeTarget, "write", write)
    run = run_once()
    assert run.status == "succeeded", run.message
    assert taken_meanwhile, "the connection waited for the run's thread to record the last message"
    assert len(world.sent) == 6


def test_a_run_whose_heartbeat_vouches_for_its_lease_does_not_ask_the_database_per_group(
        world, run_once, monkeypatch):
    from designer.running import leases

    for n in range(40):
        world.add(f"m{n}")
    asked = []
    original = leases.holds
    monkeypatch.setattr(leases, "holds", lambda *args: asked.append(args) or original(*args))
    run = run_once()
    assert (run.status, run.sent_count) == ("succeeded", 40), run.message
    assert asked == []


def test_a_large_messages_sent_is_recorded_in_one_commit_with_the_next_ones_sending(world, run_once, monkeypatch):
    import time

    from designer.running import lookahead, pipeline
    from tests import fakes

    for n in range(3):
        world.add(f"big{n}", bytes=lookahead.LARGE_MESSAGE_BYTES + 1)
    original_settle, original_write = pipeline.Pipeline._settle, fakes.FakeTarget.write
    groups: list[tuple[list[str], list[str]]] = []

    def settle(self, landing, record_ready=True):
        groups.append(([f.ready.summary["subject"] for f in landing], [r.summary["subject"] for r in self._ready]))
        return original_settle(self, landing, record_ready)

    def write(self, prepared, written=None):
        time.sleep(0.05)  # longer than a group may wait
        return original_write(self, prepared, written)

    monkeypatch.setattr(pipeline.Pipeline, "_settle", settle)
    monkeypatch.setattr(fakes.FakeTarget, "write", write)
    run = run_once()
    assert (run.status, run.sent_count) == ("succeeded", 3), run.message
    # Two large messages are held at a time, and a sent one's outcome commits with the next one's sending.
    assert (["big0"], ["big2"]) in groups, groups


def test_outcomes_answered_while_the_run_waits_for_room_are_recorded_a_group_at_a_time(world, run_once, monkeypatch):
    """A source that downloads a batch asks for room once, and the run may hold many messages when it
    does: the "sent" of those answered while it waits still commits a group at a time (the README's
    window between a 250 and its commit), not all at once when there is room."""
    import time

    from designer.running import lookahead, pipeline
    from tests import fakes

    for n in range(60):
        world.add(f"m{n}", bytes=1000)
    monkeypatch.setattr(lookahead, "MAX_MESSAGES", 4)
    monkeypatch.setattr(pipeline, "LEDGER_GROUP", 5)
    monkeypatch.setattr(pipeline, "LEDGER_GROUP_SECONDS", 10.0)  # the group's count alone bounds it here
    original_fetch, original_write = fakes.FakeSource.fetch, fakes.FakeTarget.write
    original_settle = pipeline.Pipeline._settle
    recorded: list[int] = []

    def fetch_in_batches(self, keys, make_room=fakes.no_room_needed):
        for start in range(0, len(keys), 30):  # room asked for once a batch, as the IMAP source does
            make_room(30)
            yield from original_fetch(self, keys[start : start + 30])

    def settle(self, landing, record_ready=True):
        recorded.append(len(landing))
        return original_settle(self, landing, record_ready)

    def write(self, prepared, written=None):
        time.sleep(0.002)
        return original_write(self, prepared, written)

    monkeypatch.setattr(fakes.FakeSource, "fetch", fetch_in_batches)
    monkeypatch.setattr(pipeline.Pipeline, "_settle", settle)
    monkeypatch.setattr(fakes.FakeTarget, "write", write)
    run = run_once()
    assert (run.status, run.sent_count) == ("succeeded", 60), run.message
    assert max(recorded) <= 5 + 1, recorded  # a group, and one answered while it was being settled
