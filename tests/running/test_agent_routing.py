"""Agent groups with real workers: `run_agent --group south` never takes a run of group north, and
`run_agent --group north` does (Redis, this machine's, in a database of this test's own)."""

from __future__ import annotations

import json
import os
import socket
import subprocess
import sys
import time
from pathlib import Path

import pytest
import redis

from designer.celery import app
from designer.models import Run, Team
from designer.running import agents, runs
from tests.helpers import database_url, import_project, message, project_file
from tests.workers import ROOT, Service

REDIS_URL = "redis://127.0.0.1:6379/14"


def _env() -> dict[str, str]:
    return {**os.environ, "DJANGO_SETTINGS_MODULE": "tests.settings", "DATABASE_URL": database_url(),
            "CELERY_BROKER_URL": REDIS_URL, "CELERY_TASK_ALWAYS_EAGER": "0"}


def _agent(tmp_path: Path, group: str) -> Service:
    return Service(tmp_path / f"{group}.log", [sys.executable, "manage.py", "run_agent", "--group", group,
                                              "--pool", "solo"], _env())


def _agents_page_view(env: dict[str, str]) -> list[dict]:
    """The workers as the Agents page of a web process on this broker sees them (Celery's control API)."""
    code = ("import json; from designer.running import agents; print(json.dumps([{'name': a.name, 'pid': a.pid, "
            "'queues': list(a.queues), 'versions': a.versions} for a in agents.inspect_workers()]))")
    result = subprocess.run([sys.executable, "manage.py", "shell", "-c", code], cwd=ROOT, env=env,
                            capture_output=True, text=True, timeout=60, check=True)
    return json.loads(result.stdout.strip().splitlines()[-1])


@pytest.mark.worker
def test_a_run_goes_only_to_a_worker_of_its_agent_group(transactional_db, dovecot, mailbox, smtp, tmp_path,
                                                        monkeypatch):
    client = redis.Redis.from_url(REDIS_URL)
    client.flushdb()
    Team.objects.create(name="Support")
    document = project_file(dovecot, smtp, agent_group="north")
    operation = import_project(tmp_path, monkeypatch, document)
    south_group = Team.objects.get(name="Support").agent_groups.create(name="south")
    with mailbox.client() as imap:
        for n in range(3):
            imap.append("INBOX", message(n))
    queue = agents.operation_queue(operation)
    south = _agent(tmp_path, "south")
    north = None
    try:
        south.wait_for(" ready.")
        monkeypatch.setattr(app.conf, "task_always_eager", False)
        with app.connection_for_write(REDIS_URL) as broker:
            start = runs.execute_run.apply_async
            monkeypatch.setattr(runs.execute_run, "apply_async", lambda *a, **kw: start(*a, connection=broker, **kw))
            run = runs.start(operation, Run.Trigger.MANUAL)
        time.sleep(5)  # the south agent is up and idle all along
        run.refresh_from_db()
        assert run.status == Run.Status.QUEUED and client.llen(queue) == 1
        north = _agent(tmp_path, "north")
        deadline = time.monotonic() + 60
        while not run.finished and time.monotonic() < deadline:
            time.sleep(0.3)
            run.refresh_from_db()
        assert run.status == Run.Status.SUCCEEDED, (run.message, north.output()[-3000:])
        assert run.worker.endswith(f":{north.process.pid}")  # run_agent became the worker (exec)
        assert len(smtp.messages) == 3
        assert "Task designer.tasks.execute_run" not in south.output()  # never received one
        # What the Agents page of a web process on this broker sees of these two workers.
        seen = {agent["name"]: agent for agent in _agents_page_view(_env())}
        host = socket.gethostname()
        assert seen[f"north@{host}"]["queues"] == [queue] and seen[f"north@{host}"]["pid"] == north.process.pid
        assert seen[f"south@{host}"]["queues"] == [agents.group_queue(south_group)]
        assert "mailwright" in seen[f"north@{host}"]["versions"]
    finally:
        south.stop()
        if north is not None:
            north.stop()
        client.flushdb()
