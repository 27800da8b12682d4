"""How Mailwright scales with workers: N operations on N mailboxes, run by N worker processes at once.

Run it with ``.venv/bin/python bench/scale.py`` (``--help`` for the options). For N = 1, 2 (``--workers``)
it seeds N mailboxes of the test rig's Dovecot (a user each, ``--messages`` of ~5 KB in each INBOX),
imports a project with one Read Email operation per mailbox and one Send Email activity to the bench's
aiosmtpd sink, starts N ``celery worker --pool prefork --concurrency 1`` processes on a queue of its
own (Redis db 15), queues the N runs at once and times them from the first queued to the last
finished. It prints messages per second, the ratio to one worker, and checks that every message
arrived exactly once and was marked read. On a 2-CPU machine the sink, Dovecot and the workers
share the CPUs: N = 2 is the most this machine can say.
"""

from __future__ import annotations

import argparse
import io
import json
import os
import shutil
import sys
import tempfile
import time
import uuid
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parent))  # forward.py, beside this file
import forward  # noqa: E402 - the rig, the sink and the seeding are forward.py's

PASSWORD = forward.PASSWORD


def project_document(dovecot: Any, sink: Any, users: list[str]) -> dict[str, Any]:
    connections, activities, operations = [], [], []
    for user in users:
        connections.append({
            "name": f"Mailbox {user}", "connector": "email",
            "imap": {"host": "localhost", "port": dovecot.tls_port, "security": "ssl", "verify_tls": True},
            "smtp": {"host": "127.0.0.1", "port": sink.port, "security": "none", "verify_tls": True},
            "auth": {"method": "password", "username": user, "password": {"env": "BENCH_PASSWORD"}},
            "ca_pem": dovecot.ca_pem, "timeouts": {"connect": 5, "read": 30}})
        activities.append({"name": f"Read {user}", "type": "read_email", "connection": f"Mailbox {user}",
                           "folder": "INBOX", "max_messages": 10000, "after_read": "mark_read"})
        operations.append({"name": f"Forward {user}", "source": f"Read {user}", "target": "Send",
                           "mapping": {"to": forward.RECIPIENT, "subject": "Fwd: {{ subject }}", "text": "{{ text }}",
                                       "headers": "{{ [['" + forward.SOURCE_HEADER + "', message_id]] }}"},
                           "retries": 0, "retry_backoff_seconds": 0, "timeout_minutes": 60})
    activities.append({"name": "Send", "type": "send_email", "connection": f"Mailbox {users[0]}",
                       "defaults": {"from": forward.SENDER}})
    return {"format": "mailwright.project/1", "name": f"Scale {len(users)}", "connections": connections,
            "activities": activities, "operations": operations}


def seed(dovecot: Any, user: str, count: int) -> None:
    with dovecot.client(user) as imap:
        for raw in forward.messages(count, 0, 0):
            imap.append("INBOX", raw.replace(b"@example.org>", f".{user}@example.org>".encode()))


def measure(workers: int, per_mailbox: int, dovecot: Any, sink: Any, workdir: Path, queue: str) -> dict[str, Any]:
    from django.core.management import call_command

    from designer.models import Operation, Run
    from designer.running import runs

    users = [f"w{workers}m{k}" for k in range(workers)]
    for user in users:
        dovecot.add_user(user, PASSWORD)
        sink.auth[user] = PASSWORD  # one account for IMAP and SMTP, as a provider's
        seed(dovecot, user, per_mailbox)
    path = workdir / f"scale-{workers}.json"
    path.write_text(json.dumps(project_document(dovecot, sink, users)))
    call_command("import_project", str(path), "--team", "Bench", stdout=io.StringIO())
    operations = [Operation.objects.get(project__name=f"Scale {workers}", name=f"Forward {user}") for user in users]
    sink.reset()
    started_workers = [forward.celery_worker(workdir, queue, name=f"scale{workers}-{k}") for k in range(workers)]
    for worker in started_workers:
        worker.__enter__()
    try:
        began = time.perf_counter()
        started = [runs.start(operation, Run.Trigger.MANUAL) for operation in operations]
        while not all(run.finished for run in started):
            time.sleep(0.05)
            for run in started:
                run.refresh_from_db()
        seconds = time.perf_counter() - began
    finally:
        for worker in started_workers:
            worker.__exit__(None, None, None)
    sent = sum(run.sent_count for run in started)
    for run in started:
        if run.status != Run.Status.SUCCEEDED:
            print(f"!! run {run.pk} ({run.operation.name}) ended {run.status}: {run.message}")
    expected = workers * per_mailbox
    duplicates = sum(1 for count in sink.received.values() if count > 1)
    overlap = workers > 1 and max(r.started_at for r in started) < min(r.finished_at for r in started)
    return {"workers": workers, "messages": sent, "seconds": seconds, "rate": sent / seconds,
            "statuses": sorted({run.status for run in started}), "overlapped": overlap,
            "delivery": "exactly once" if len(sink.received) == expected and not duplicates
            else f"{len(sink.received)} of {expected} distinct, {duplicates} duplicated"}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--messages", type=int, default=300, help="messages of ~5 KB per mailbox (default 300)")
    parser.add_argument("--workers", type=int, nargs="+", default=[1, 2], help="values of N (default 1 2)")
    args = parser.parse_args()

    workdir = Path(tempfile.mkdtemp(prefix="mailwright-scale-"))
    queue = f"mailwright-scale-{uuid.uuid4().hex[:8]}"
    os.environ["CELERY_TASK_DEFAULT_QUEUE"] = queue  # this process's runs and the workers' queue alike
    forward.configure_environment(workdir)
    import django

    django.setup()
    import redis
    from django.core.management import call_command

    from tests.servers.certs import generate_test_certs
    from tests.servers.dovecot import Dovecot

    call_command("migrate", verbosity=0)
    dovecot = Dovecot(certs=generate_test_certs(workdir / "certs"))
    dovecot.start()
    sink = forward.start_sink()
    results = []
    try:
        for workers in args.workers:
            print(f"N = {workers}: {workers} mailbox(es) of {args.messages} messages, {workers} worker(s) ...")
            results.append(measure(workers, args.messages, dovecot, sink, workdir, queue))
    finally:
        sink.stop()
        dovecot.close()
        redis.Redis.from_url(forward.REDIS_URL).delete(queue, f"_kombu.binding.{queue}",
                                                       f"_kombu.binding_permanent.{queue}")
        shutil.rmtree(workdir, ignore_errors=True)
    base = results[0]["rate"] if results else 0
    print()
    print(f"{'N':>3} {'messages':>9} {'seconds':>8} {'msgs/s':>8} {'vs N=1':>7}  runs overlapped  status      delivery")
    for r in results:
        statuses = ",".join(r["statuses"])
        overlapped = str(r["overlapped"]) if r["workers"] > 1 else "-"
        print(f"{r['workers']:>3} {r['messages']:>9} {r['seconds']:>8.1f} {r['rate']:>8.1f} "
              f"{r['rate'] / (base or 1):>6.2f}x  {overlapped:<15}  {statuses:<10}  {r['delivery']}")


if __name__ == "__main__":
    main()
