"""A real Celery worker process on Redis runs the connection test; its message carries ids only."""

from __future__ import annotations

import base64
import json
import os
import subprocess
import sys
import time
from pathlib import Path

import pytest
import redis

from designer.celery import app
from designer.models import ConnectionCheck
from designer.running.tasks import check_connection
from tests.helpers import database_url, make_connection, real_server_config
from tests.servers.fixtures import IMAP_PASSWORD

ROOT = Path(__file__).resolve().parents[2]
REDIS_URL = "redis://127.0.0.1:6379/13"




@pytest.fixture
def redis_broker():
    client = redis.Redis.from_url(REDIS_URL)
    client.flushdb()
    app.conf.task_always_eager = False
    yield client
    app.conf.task_always_eager = True
    client.flushdb()


def start_worker() -> subprocess.Popen:
    env = {
        **os.environ,
        "DJANGO_SETTINGS_MODULE": "tests.settings",
        "DATABASE_URL": database_url(),
        "CELERY_BROKER_URL": REDIS_URL,
        "CELERY_TASK_ALWAYS_EAGER": "0",
    }
    return subprocess.Popen(
        [sys.executable, "-m", "celery", "-A", "designer", "worker", "--pool", "solo", "--loglevel", "INFO",
         "--without-heartbeat", "--without-mingle", "--without-gossip"],
        cwd=ROOT, env=env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT,
    )


@pytest.mark.worker
def test_it_runs_the_connection_test_in_a_real_worker(transactional_db, team, project, dovecot, mailbox,
                                                       smtp_factory, redis_broker):
    smtp = smtp_factory("starttls", {"alice": IMAP_PASSWORD})
    connection = make_connection(team, project, password=IMAP_PASSWORD, **real_server_config(dovecot, smtp))
    check = ConnectionCheck.objects.create(connection=connection)
    with app.connection_for_write(REDIS_URL) as broker:
        check_connection.apply_async((check.pk,), connection=broker)

    # Read the message as the broker holds it, before any worker takes it.
    messages = redis_broker.lrange("celery", 0, -1)
    assert len(messages) == 1, "the task message should be waiting in Redis"
    envelope = json.loads(messages[0])
    body = base64.b64decode(envelope["body"])
    args, kwargs, _embed = json.loads(body)
    assert (args, kwargs) == ([check.pk], {})
    for blob in (messages[0], body):
        assert IMAP_PASSWORD.encode() not in blob
        assert b"alice" not in blob and b"localhost" not in blob

    worker = start_worker()
    try:
        deadline = time.monotonic() + 60
        while time.monotonic() < deadline:
            check.refresh_from_db()
            if check.done:
                break
            time.sleep(0.3)
    finally:
        worker.terminate()
        output = worker.communicate(timeout=20)[0].decode(errors="replace")
    assert check.status == ConnectionCheck.Status.PASSED, (check.steps, output[-3000:])
    assert IMAP_PASSWORD not in output
