"""Time limits that hold whatever the worker's pool: the solo and threads pools enforce none of Celery's."""

import time

import pytest

from designer.running import mapping, runs, watchdog
from tests import fakes


def _busy_for(seconds):
    """Python code that would go on far past the limit (the source listing its mailbox, say)."""
    def candidates(self):
        until = time.monotonic() + seconds
        while time.monotonic() < until:
            time.sleep(0.01)
        return []
    return candidates


@pytest.mark.django_db
def test_a_run_under_a_pool_without_time_limits_stops_at_its_soft_limit(operation, world, monkeypatch):
    monkeypatch.setattr(fakes.FakeSource, "candidates", _busy_for(10))
    run = runs.Run.objects.create(operation=operation, trigger=runs.Run.Trigger.COMMAND)
    started = time.monotonic()
    # As a solo worker calls the task: the limits travel with the message, nothing enforces them.
    runs.execute_run.push_request(timelimit=[None, 1])
    try:
        runs.execute_run(run.pk)
    finally:
        runs.execute_run.pop_request()
    run.refresh_from_db()
    assert time.monotonic() - started < 5
    assert run.status == "failed"
    assert run.message.startswith("stopped at its time limit"), run.message


def test_limits_nest_and_each_raises_its_own_exception():
    caught = []
    with pytest.raises(watchdog.TimeLimitReached):
        with watchdog.limit(0.5, raising=watchdog.TimeLimitReached):
            try:
                with watchdog.limit(0.1):
                    while True:
                        time.sleep(0.01)
            except watchdog.Overran:
                caught.append("template")
            while True:  # the run's own limit still holds after the template's fired
                time.sleep(0.01)
    assert caught == ["template"]


def test_a_templates_limit_does_not_take_the_runs_for_its_own():
    busy = "{% for i in range(10000) %}{% for j in range(10000) %}{% endfor %}{% endfor %}"
    started = time.monotonic()
    # The run's limit fires inside a render: it must reach the run, not become "the template took too long".
    with pytest.raises(watchdog.TimeLimitReached):
        with watchdog.limit(0.3, raising=watchdog.TimeLimitReached):
            mapping.render_value("body", busy, {})
    assert time.monotonic() - started < mapping.MAX_SECONDS


def test_a_limit_that_passes_while_an_answer_is_recorded_fires_once_it_is():
    recorded = []
    with pytest.raises(watchdog.TimeLimitReached):
        with watchdog.limit(0.1, raising=watchdog.TimeLimitReached):
            with watchdog.deferred():
                until = time.monotonic() + 0.4
                while time.monotonic() < until:  # past the limit: Python code the watchdog could interrupt
                    time.sleep(0.01)
                recorded.append("sent")
            while True:
                time.sleep(0.01)
    assert recorded == ["sent"]
