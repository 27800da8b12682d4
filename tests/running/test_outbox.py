"""The sender threads' queue on its own: what makes them wait for the run's thread, and cancelling."""

from __future__ import annotations

import threading
import time
from concurrent import futures

import pytest

from designer.running.outbox import Outbox


def _sent_by(outbox_calls: list[str]):
    def send(payload: str) -> str:
        if payload.startswith("fail"):
            raise RuntimeError(payload)
        outbox_calls.append(payload)
        return f"250 {payload}"
    return send


def test_the_senders_take_the_queue_and_give_each_outcome():
    calls: list[str] = []
    with Outbox(_sent_by(calls), slots=3, may_send=lambda: True, name="t") as outbox:
        results = outbox.put_all([f"m{n}" for n in range(10)])
        assert [f.result(timeout=5) for f in results] == [f"250 m{n}" for n in range(10)]
    assert outbox.answered == 10  # counted once each future has its outcome: the run's thread counts on it
    assert sorted(calls) == sorted(f"m{n}" for n in range(10))


def test_a_failure_holds_the_senders_until_the_runs_thread_judged_it():
    calls: list[str] = []
    with Outbox(_sent_by(calls), slots=1, may_send=lambda: True, name="t") as outbox:
        failed = outbox.put_all(["fail-1"])[0]
        with pytest.raises(RuntimeError):
            failed.result(timeout=5)
        held = outbox.put_all(["m2"])[0]
        time.sleep(0.3)
        assert outbox.paused and not held.done() and calls == [] and outbox.answered == 1  # failures count
        outbox.resume()
        assert held.result(timeout=5) == "250 m2"


def test_without_the_heartbeats_word_nothing_is_sent_until_the_database_vouched():
    calls: list[str] = []
    vouched = threading.Event()
    with Outbox(_sent_by(calls), slots=2, may_send=vouched.is_set, name="t") as outbox:
        queued = outbox.put_all([f"m{n}" for n in range(3)])
        time.sleep(0.3)
        assert outbox.wants_fence and calls == []
        outbox.fence(holds=False)  # the run's thread learnt the lease is lost: it stops the run
        time.sleep(0.3)
        assert calls == []
        outbox.fence(holds=True)  # the database says the lease is still the run's: these may go
        done, _pending = futures.wait(queued, timeout=5)
        assert len(done) == 3 and sorted(calls) == ["m0", "m1", "m2"]


def test_what_no_sender_took_is_cancelled_and_never_sent():
    calls: list[str] = []
    release = threading.Event()

    def slow(payload: str) -> str:
        release.wait(5)
        calls.append(payload)
        return payload

    with Outbox(slow, slots=1, may_send=lambda: True, name="t") as outbox:
        first = outbox.put_all(["m0"])[0]
        time.sleep(0.2)  # the one sender holds m0
        rest = outbox.put_all([f"m{n}" for n in range(1, 4)])
        assert outbox.cancel_queued() == 3
        release.set()
        assert first.result(timeout=5) == "m0"
    assert all(f.cancelled() for f in rest) and calls == ["m0"]


def test_the_runs_thread_wakes_at_the_next_outcome_and_not_before():
    release = threading.Event()

    def send(payload: str) -> str:
        release.wait(5)
        return f"250 {payload}"

    with Outbox(send, slots=1, may_send=lambda: True, name="t") as outbox:
        outbox.put_all(["m1"])
        started = time.monotonic()
        outbox.wait_for_answer(0, timeout=0.2)  # nothing answered yet: the whole slice passes
        assert time.monotonic() - started >= 0.2 and outbox.answered == 0
        threading.Timer(0.1, release.set).start()
        outbox.wait_for_answer(0, timeout=5)  # the sender answers while the run's thread waits
        assert outbox.answered == 1 and time.monotonic() - started < 2


def test_a_message_let_go_of_before_its_answer_wakes_the_wait_for_room():
    let_go, answer = threading.Event(), threading.Event()

    def send(payload: str) -> str:
        outbox.made_room()  # its data sent: the server decides
        let_go.set()
        answer.wait(10)
        return "250"

    with Outbox(send, slots=1, may_send=lambda: True, name="t") as outbox:
        rooms = outbox.rooms
        outbox.put_all(["large"])
        started = time.monotonic()
        outbox.wait_for_answer(outbox.answered, 5.0, rooms)
        waited = time.monotonic() - started
        answer.set()
    assert let_go.is_set() and waited < 4  # woken by the room made, long before the answer or the timeout
