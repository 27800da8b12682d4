"""The deployment the production suite runs against, once per module: a PostgreSQL database of its
own, migrated and with its static files collected; Redis as the broker on a queue of its own; two
prefork workers and beat; its own Dovecot (one mailbox per scenario) and an SMTP sink."""

from __future__ import annotations

import json
import uuid
from collections.abc import Iterator
from pathlib import Path

import pytest
import redis

from tests.helpers import message
from tests.production.deployment import REDIS_URL, Deployment, postgres_database, production_env
from tests.running.test_faults import document, seed
from tests.servers.certs import TestCerts
from tests.servers.dovecot import Dovecot
from tests.servers.fixtures import IMAP_PASSWORD
from tests.servers.smtp import SMTPServer
from tests.workers import Worker

MAILBOXES = ("north", "south", "crash", "sched", "rabbit")
# Short enough that a worker's death is noticed within the test, long against the runs here (seconds).
VISIBILITY_TIMEOUT = 20
LEASE_SECONDS = 10


def project(dovecot: Dovecot, sink: SMTPServer, mailbox: str, **operation: object) -> dict[str, object]:
    """The SPEC's example project file for one mailbox (the suite's tracing mapping), named after it."""
    doc = document(dovecot, sink, **operation)
    doc["name"] = f"{mailbox} desk"
    doc["connections"][0]["auth"]["username"] = mailbox
    return doc


def letters(mailbox: str, count: int) -> list[bytes]:
    return [message(n, message_id=f"<{mailbox}-{n}@example.org>") for n in range(count)]


@pytest.fixture(scope="module")
def prod_dovecot(tls_certs: TestCerts) -> Iterator[Dovecot]:
    server = Dovecot(certs=tls_certs)
    for name in MAILBOXES:
        server.add_user(name, IMAP_PASSWORD)
    try:
        yield server.start()
    finally:
        server.close()


@pytest.fixture(scope="module")
def sink() -> Iterator[SMTPServer]:
    server = SMTPServer("plain", {name: IMAP_PASSWORD for name in MAILBOXES}, auth_require_tls=False).start()
    try:
        yield server
    finally:
        server.stop()


@pytest.fixture(scope="module")
def deployment(tmp_path_factory: pytest.TempPathFactory, prod_dovecot: Dovecot,
               sink: SMTPServer) -> Iterator[Deployment]:
    directory: Path = tmp_path_factory.mktemp("deployment")
    queue = f"mailwright-prod-{uuid.uuid4().hex[:12]}"
    with postgres_database() as database_url:
        env = production_env(
            directory, DATABASE_URL=database_url, CELERY_TASK_DEFAULT_QUEUE=queue, MAILWRIGHT_PROXY_SSL_HEADER="1",
            CELERY_VISIBILITY_TIMEOUT=str(VISIBILITY_TIMEOUT), MAILWRIGHT_LEASE_SECONDS=str(LEASE_SECONDS),
            # Redelivery within seconds is what the lost-worker scenario needs, below any run's hold.
            MAILWRIGHT_UNSAFE_REDELIVERY="1",
            # A surviving worker looks for a dead one's messages every 2 s instead of every 100 s.
            CELERY_BROKER_TRANSPORT_OPTIONS=json.dumps({"unacked_restore_interval": 2,
                                                        "unacked_restore_throttle": 1}),
        )
        deployed = Deployment(directory, env, database_url, queue)
        try:
            deployed.manage("migrate", "--noinput")
            deployed.manage("collectstatic", "--noinput")
            # Beat's minute starts now, so the scheduled scenario waits while the others run.
            seed(prod_dovecot.mailbox("sched"), letters("sched", 3))
            deployed.import_project(project(prod_dovecot, sink, "sched", schedule={"every_minutes": 1}),
                                    IMAP_PASSWORD)
            deployed.beat().wait_for("beat: Starting")
            for name in ("worker-a", "worker-b"):
                deployed.worker(name)
            for worker in deployed.started:
                if isinstance(worker, Worker):
                    worker.wait_ready()
            yield deployed
        finally:
            deployed.stop()
            _forget_queue(queue)


def _forget_queue(queue: str) -> None:
    """Delete this deployment's keys in Redis, and no one else's."""
    client = redis.Redis.from_url(REDIS_URL)
    for tag, payload in client.hgetall("unacked").items():
        if json.loads(payload)[2] == queue:
            client.hdel("unacked", tag)
            client.zrem("unacked_index", tag)
    client.delete(queue, f"_kombu.binding.{queue}", f"_kombu.binding_permanent.{queue}")
