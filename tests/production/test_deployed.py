"""The product as deployed (README, "Running in production"), from the clean virtualenv of
requirements.txt: DEBUG off, gunicorn behind a TLS proxy's forwarded-proto header with whitenoise's
static files, PostgreSQL, two prefork workers and beat on Redis, and a prefork worker on RabbitMQ.
Operations come from project files through ``import_project`` and run through ``run_operation``,
as an operator does it; what they did is read from the SMTP sink, Dovecot and PostgreSQL.
"""

from __future__ import annotations

import gzip
import http.client
import json
import subprocess
import time
import uuid
from collections import Counter
from pathlib import Path
from typing import Any

import pytest

from tests.production.conftest import letters, project
from tests.production.deployment import HOST, RABBITMQ_URL, Deployment, python
from tests.production.venv import ROOT
from tests.running.test_faults import seed, source_of
from tests.servers.dovecot import Dovecot
from tests.servers.fixtures import IMAP_PASSWORD
from tests.servers.smtp import FaultReply, ReceivedMessage, SMTPServer
from tests.workers import Worker

pytestmark = [pytest.mark.production, pytest.mark.timeout(240)]


def get(port: int, path: str, **headers: str) -> tuple[int, dict[str, str], bytes]:
    connection = http.client.HTTPConnection("127.0.0.1", port, timeout=30)
    try:
        connection.request("GET", path, headers={"Host": HOST, **headers})
        response = connection.getresponse()
        return response.status, {k.lower(): v for k, v in response.getheaders()}, response.read()
    finally:
        connection.close()


def delivered(sink: SMTPServer, mailbox: str) -> Counter[str]:
    """How many copies of each of this mailbox's messages the sink accepted."""
    return Counter(s for m in sink.messages if (s := source_of(m)).startswith(f"<{mailbox}-"))


def expected(mailbox: str, count: int) -> Counter[str]:
    return Counter(f"<{mailbox}-{n}@example.org>" for n in range(count))


def finish(process: subprocess.Popen[str]) -> str:
    output = process.communicate(timeout=200)[0]
    assert process.returncode == 0, output
    return output


def worker_of(run: dict[str, Any], workers: list[Worker]) -> Worker:
    """The worker whose pool process a run recorded ("host:pid")."""
    pid = int(run["worker"].rsplit(":", 1)[1])
    matches = [w for w in workers if pid in w.pids()]
    assert len(matches) == 1, (run, [w.pids() for w in workers])
    return matches[0]


def workers_of(deployment: Deployment) -> list[Worker]:
    return [p for p in deployment.started if isinstance(p, Worker)]


def test_gunicorn_serves_the_app_behind_the_proxy_and_the_static_files_through_whitenoise(
        deployment: Deployment) -> None:
    server, port = deployment.gunicorn()
    try:
        # Plain HTTP from the proxy's side is sent to HTTPS; what the proxy marks as HTTPS is served.
        status, headers, _ = get(port, "/login/")
        assert (status, headers["location"]) == (301, f"https://{HOST}/login/")
        status, headers, body = get(port, "/login/", **{"X-Forwarded-Proto": "https"})
        assert status == 200, body[:500]
        assert headers["strict-transport-security"].startswith("max-age=31536000")
        assert "Secure" in headers["set-cookie"] and "content-security-policy" in headers

        # collectstatic's hashed names come from the manifest; whitenoise serves them forever-cacheable.
        manifest = json.loads((Path(deployment.env["STATIC_ROOT"]) / "staticfiles.json").read_text())
        hashed = manifest["paths"]["css/app.css"]
        assert hashed != "css/app.css" and f"/static/{hashed}".encode() in body
        status, headers, css = get(port, f"/static/{hashed}",
                                   **{"X-Forwarded-Proto": "https", "Accept-Encoding": "gzip"})
        assert status == 200
        assert headers["content-type"].startswith("text/css")
        assert headers["cache-control"] == "max-age=315360000, public, immutable"
        assert headers["content-encoding"] == "gzip" and headers["vary"] == "Accept-Encoding"
        assert gzip.decompress(css) == (ROOT / "static" / "css" / "app.css").read_bytes()
    finally:
        server.stop()
    assert " 500 " not in server.output(), server.output()[-3000:]


def test_the_deploy_check_is_clean_for_the_deployment(deployment: Deployment) -> None:
    output = deployment.manage("check", "--deploy", "--fail-level", "WARNING")
    assert "no issues" in output


def test_two_operations_on_two_mailboxes_run_at_the_same_time_on_the_two_workers(
        deployment: Deployment, prod_dovecot: Dovecot, sink: SMTPServer) -> None:
    for mailbox in ("north", "south"):
        seed(prod_dovecot.mailbox(mailbox), letters(mailbox, 15))
        deployment.import_project(project(prod_dovecot, sink, mailbox), IMAP_PASSWORD)
    sink.delay_replies(0.2)  # 15 messages: a run of some seconds, long enough to see two at once
    try:
        commands = [deployment.run_operation(f"{mailbox} desk") for mailbox in ("north", "south")]
        for command in commands:
            finish(command)
    finally:
        sink.delay_replies(0)

    north, south = (deployment.runs(f"{mailbox} desk")[-1] for mailbox in ("north", "south"))
    assert north["status"] == south["status"] == "succeeded", (north, south)
    assert north["started_at"] < south["finished_at"] and south["started_at"] < north["finished_at"], (north, south)
    workers = workers_of(deployment)
    assert worker_of(north, workers) is not worker_of(south, workers)
    for mailbox in ("north", "south"):
        assert delivered(sink, mailbox) == expected(mailbox, 15)
        assert all("\\Seen" in flags for flags in prod_dovecot.mailbox(mailbox).flags().values())


def test_a_worker_killed_mid_run_loses_nothing_and_the_other_one_finishes_the_run(
        deployment: Deployment, prod_dovecot: Dovecot, sink: SMTPServer) -> None:
    seed(prod_dovecot.mailbox("crash"), letters("crash", 30))
    deployment.import_project(project(prod_dovecot, sink, "crash"), IMAP_PASSWORD)
    workers = workers_of(deployment)
    doomed: list[Worker] = []

    # The whole worker, pool and all, dies as the sink receives a message: that message is refused
    # (its sender is gone), so its one delivery is the redelivered run's. The ones the sink took
    # before are in the delivery window the README states (answered, their "sent" group not yet
    # committed): the redelivered run sends them again under the same Message-ID.
    count = 0

    def kill_on_the_fourth(received: ReceivedMessage) -> FaultReply | None:
        nonlocal count
        if source_of(received).startswith("<crash-"):
            count += 1
            if count == 4:
                doomed.append(worker_of(deployment.runs("crash desk")[-1], workers))
                doomed[0].kill()
                return 451, "4.3.0 the sender is gone"
        return None

    sink.fail_when(kill_on_the_fourth)
    try:
        output = finish(deployment.run_operation("crash desk"))
    finally:
        sink.clear_faults()

    assert len(doomed) == 1, output
    (survivor,) = [w for w in workers if w is not doomed[0]]
    assert doomed[0].process.returncode == -9
    (run,) = deployment.runs("crash desk")
    assert run["status"] == "succeeded", (run, output)
    assert worker_of(run, [survivor]) is survivor
    copies = delivered(sink, "crash")
    assert set(copies) == set(expected("crash", 30)) and max(copies.values()) <= 2, copies
    # Only messages answered before the kill, at most one ledger group of them, were sent twice, and
    # each copy carries its first copy's Message-ID: a receiver that deduplicates drops it.
    assert sum(copies.values()) - 30 <= 16, copies
    crash = [m for m in sink.messages if source_of(m).startswith("<crash-")]
    assert len({(source_of(m), m.message["Message-ID"]) for m in crash}) == 30
    assert all("\\Seen" in flags for flags in prod_dovecot.mailbox("crash").flags().values())


def test_beat_runs_an_operation_scheduled_every_minute_by_itself(deployment: Deployment,
                                                                  sink: SMTPServer) -> None:
    # Imported and seeded when the deployment started (conftest): beat's first minute runs meanwhile.
    runs = deployment.wait_runs("sched desk", lambda runs: any(r["status"] == "succeeded" for r in runs), 100,
                                "beat started no run within its minute")
    first = next(r for r in runs if r["status"] == "succeeded")
    assert first["trigger"] == "schedule" and first["sent_count"] == 3, runs
    assert delivered(sink, "sched") == expected("sched", 3)


def test_a_prefork_worker_on_rabbitmq_forwards_the_example_operation(
        deployment: Deployment, prod_dovecot: Dovecot, sink: SMTPServer, tmp_path: Path) -> None:
    queue = f"mailwright-prod-{uuid.uuid4().hex[:12]}"
    # This machine's RabbitMQ keeps its default consumer_timeout (30 min): runs are capped below it.
    env = {**deployment.env, "CELERY_BROKER_URL": RABBITMQ_URL, "CELERY_TASK_DEFAULT_QUEUE": queue,
           "MAILWRIGHT_UNSAFE_REDELIVERY": "0", "MAILWRIGHT_MAX_OPERATION_MINUTES": "20"}
    seed(prod_dovecot.mailbox("rabbit"), letters("rabbit", 5))
    deployment.import_project(project(prod_dovecot, sink, "rabbit"), IMAP_PASSWORD)
    worker = Worker(tmp_path / "rabbit.log", queue, env, python=python(), pool="prefork")
    try:
        worker.wait_ready()
        pool = worker.pids()
        started = time.monotonic()
        result = subprocess.run([python(), "manage.py", "run_operation", "Forward to helpdesk", "--project",
                                 "rabbit desk", "--team", "Ops", "--wait", "90"], cwd=ROOT, env=env,
                                capture_output=True, text=True, timeout=120)
        assert result.returncode == 0, (result.stdout, result.stderr[-2000:], worker.output()[-3000:])
        assert time.monotonic() - started < 60
    finally:
        worker.stop()
        # The queue is durable on RabbitMQ: it would outlive the test.
        subprocess.run([python(), "-c", "import sys, kombu; kombu.Connection(sys.argv[1]).default_channel"
                        ".queue_delete(sys.argv[2])", RABBITMQ_URL, queue], cwd=ROOT, timeout=30, check=False)
    (run,) = deployment.runs("rabbit desk")
    assert run["status"] == "succeeded" and int(run["worker"].rsplit(":", 1)[1]) in pool
    assert delivered(sink, "rabbit") == expected("rabbit", 5)
