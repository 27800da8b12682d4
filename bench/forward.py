"""How fast Mailwright forwards mail, and how much memory it takes, against the transport's ceiling.

Run it with ``.venv/bin/python bench/forward.py`` (``--help`` for the options). It starts the test
rig's Dovecot and an aiosmtpd sink on 127.0.0.1 and measures two workloads separately, each seeded
afresh: 1000 messages of ~5 KB, then 200 with a 1 MiB attachment. Each is forwarded three times:

(a) the transport ceiling: imapclient (``BODY.PEEK[]`` in batches, its debug trace off, the next
    batch fetched while the last is sent), the fetched bytes sent unchanged over as many parallel
    SMTP connections as the product uses (``--connections``, the Send Email activity's
    ``max_connections``) and again over 8, one ``STORE +FLAGS \\Seen`` per sent batch, the logins
    inside the timer; no database, no mapping: what any forwarder has to do at the least;
(b) the product inline: ``designer.running.engine.execute``, as ``run_operation --inline``;
(c) the product through a real ``celery worker --pool prefork --concurrency 1`` on Redis (db 15).

Each phase runs in a process of its own, so its peak RSS is its own (the SMTP sink lives in this
orchestrating process). Between phases the \\Seen flags are removed and the ledger emptied; every
phase must deliver each message exactly once and mark each read: duplicates and losses are counted
at the sink, \\Seen flags in the mailbox, and printed for every phase.
"""

from __future__ import annotations

import argparse
import contextlib
import cProfile
import io
import json
import os
import pstats
import re
import shutil
import smtplib
import ssl
import subprocess
import sys
import tempfile
import time
import uuid
from collections import Counter
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[1]
if str(ROOT) not in sys.path:
    sys.path.insert(0, str(ROOT))  # runnable as a plain script from any directory

from connectors.email.source import BODY_BATCH_BYTES, PROBE_BATCH  # noqa: E402 - (a) batches as the engine does

USER = "alice"
PASSWORD = "bench-imap-secret"  # noqa: S105 (the throwaway Dovecot's user, on 127.0.0.1 only)
SENDER = "support@example.com"
RECIPIENT = "helpdesk@example.com"
PARAGRAPH = "The printer on the third floor is jammed again; please send someone.\n" * 70  # ~5 KB: a small message
REDIS_URL = "redis://127.0.0.1:6379/15"
SOURCE_HEADER = "X-Mailwright-Source"
MB = 1024 * 1024
# The warm-up run forwards one small message (with a 4 KB attachment) from here: code paths
# loaded, caches filled, before the baseline is taken.
WARM_UP_FOLDER = "Warm-up"


# Environment -------------------------------------------------------------------------------------


def configure_environment(workdir: Path) -> None:
    """Settings for this process and every child: the test settings, a SQLite file unless given."""
    os.environ.setdefault("DJANGO_SETTINGS_MODULE", "tests.settings")
    os.environ.setdefault("DATABASE_URL", f"sqlite:///{workdir / 'bench.sqlite3'}")
    os.environ.setdefault("MAILWRIGHT_DATA_DIR", str(workdir / "data"))
    os.environ["CELERY_BROKER_URL"] = REDIS_URL
    # tests.settings defaults to eager tasks; phase (c) must really go through Redis.
    os.environ["CELERY_TASK_ALWAYS_EAGER"] = "0"
    os.environ["BENCH_PASSWORD"] = PASSWORD
    # aiosmtpd logs every command at INFO: in the sink's thread that is a cost, and noise.
    os.environ.setdefault("LOG_LEVEL", "WARNING")
    Path(os.environ["MAILWRIGHT_DATA_DIR"]).mkdir(parents=True, exist_ok=True)


def memory_kb(pid: int | str = "self") -> dict[str, int]:
    """VmRSS (now) and VmHWM (peak so far) of a process, in KiB (Linux /proc)."""
    found = {}
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        name, _, value = line.partition(":")
        if name in ("VmRSS", "VmHWM"):
            found[name] = int(value.split()[0])
    return found


def proc_stat(stat: Path) -> list[str]:
    """The fields of a /proc/<pid>/stat after the command name (which may hold spaces): state, ppid..."""
    return stat.read_text().rsplit(")", 1)[1].split()


def cpu_seconds(pid: int | str = "self") -> float:
    """User plus system CPU time a process (all its threads) has used, in seconds (Linux /proc)."""
    fields = proc_stat(Path(f"/proc/{pid}/stat"))
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


# The SMTP sink ---------------------------------------------------------------------------------


def start_sink(pipelining: bool = False) -> Any:
    """The rig's SMTPServer (AUTH like a provider, PIPELINING with ``pipelining``), minus its
    per-message parsing.

    The rig parses every message into an EmailMessage and keeps it: right for tests, but for
    1200 messages that is the bottleneck and a few hundred MB. The sink keeps one line per
    message instead: whose copy it is (``X-Mailwright-Source``, else the Message-ID).
    """
    from tests.servers import smtp as rig

    class CountingHandler(rig._Handler):
        async def handle_DATA(self, server: Any, session: Any, envelope: Any) -> str:
            raw = envelope.original_content or b""
            self.owner.record(raw)
            return "250 2.0.0 OK queued"

    class Sink(rig.SMTPServer):
        def __init__(self) -> None:
            super().__init__("plain", {USER: PASSWORD}, auth_require_tls=False, data_size_limit=64 * MB,
                             pipelining=pipelining)
            self.received: Counter[str] = Counter()
            self.received_bytes = 0

        def record(self, raw: bytes) -> None:
            head = raw.split(b"\r\n\r\n", 1)[0]
            match = re.search(rb"^" + SOURCE_HEADER.encode() + rb":\s*(\S+)", head, re.M | re.I) or re.search(
                rb"^Message-ID:\s*(\S+)", head, re.M | re.I)
            with self._lock:
                self.received[match.group(1).decode() if match else "?"] += 1
                self.received_bytes += len(raw)

        def reset(self) -> None:
            with self._lock:
                self.received = Counter()
                self.received_bytes = 0

    sink = Sink()
    # SMTPServer.start() builds the module's _Handler; swap it in for this one start only.
    original, rig._Handler = rig._Handler, CountingHandler
    try:
        return sink.start()
    finally:
        rig._Handler = original


# Seeding -----------------------------------------------------------------------------------------


def messages(small: int, large: int, large_bytes: int) -> Iterator[bytes]:
    """``small`` messages of ~5 KB and ``large`` with an attachment, the large ones spread evenly.

    Each kind is built once and renumbered in its header (Message-ID, subject, sender): the
    email package takes longer to build a 1 MB message than Dovecot takes to store it.
    """
    from tests.helpers import message

    templates = {
        False: message(0, body=PARAGRAPH),
        True: message(0, body="See the attached log.", attachment=os.urandom(large_bytes)),
    }
    total = small + large
    every = total / large if large else 0
    big_positions = {int(i * every + every - 1) for i in range(large)} if large else set()
    for n in range(total):
        head, _, body = templates[n in big_positions].partition(b"\n\n")
        head = (head.replace(b"<q0@example.org>", b"<q%d@example.org>" % n)
                .replace(b"Question 0", b"Question %d" % n)
                .replace(b"Customer 0 <customer0@", b"Customer %d <customer%d@" % (n, n)))
        yield head + b"\n\n" + body


def seed(dovecot: Any, small: int, large: int, large_bytes: int) -> tuple[int, int]:
    """Empty INBOX, then APPEND the workload over one connection; return (count, largest size as the
    server reports it)."""
    with dovecot.client(USER) as imap:
        imap.select_folder("INBOX")
        old = imap.search("ALL")
        if old:
            imap.delete_messages(old)
            imap.expunge()
        for raw in messages(small, large, large_bytes):
            imap.append("INBOX", raw)
        imap.select_folder("INBOX", readonly=True)
        uids = imap.search("ALL")
        sizes = imap.fetch(uids, ["RFC822.SIZE"])
    return len(uids), max(int(v[b"RFC822.SIZE"]) for v in sizes.values())


def mark_all_unread(dovecot: Any) -> None:
    with dovecot.client(USER) as imap:
        if not imap.folder_exists(WARM_UP_FOLDER):
            imap.create_folder(WARM_UP_FOLDER)
            imap.append(WARM_UP_FOLDER, next(messages(0, 1, 4096)).replace(b"<q0@", b"<warm-up@"))
        for folder in ("INBOX", WARM_UP_FOLDER):
            imap.select_folder(folder)
            imap.remove_flags(imap.search("ALL"), [b"\\Seen"], silent=True)


def count_seen(dovecot: Any) -> int:
    with dovecot.client(USER) as imap:
        imap.select_folder("INBOX", readonly=True)
        return len(imap.search("SEEN"))


# The project -----------------------------------------------------------------------------------


def import_project(dovecot: Any, sink: Any, workdir: Path, connections: int) -> tuple[int, int]:
    """The operation to measure and a warm-up twin reading ``WARM_UP_FOLDER``; returns their ids."""
    from django.core.management import call_command

    from designer.models import Operation

    def activity(name: str, folder: str) -> dict[str, Any]:
        return {"name": name, "type": "read_email", "connection": "Bench mailbox", "folder": folder,
                "max_messages": 10000, "after_read": "mark_read"}

    def operation(name: str, source: str) -> dict[str, Any]:
        return {"name": name, "source": source, "target": "Send to helpdesk",
                "mapping": {"to": RECIPIENT, "subject": "Fwd: {{ subject }}", "text": "{{ text }}",
                            "attachments": "{{ attachments }}",
                            "headers": "{{ [['" + SOURCE_HEADER + "', message_id]] }}"},
                "condition": None, "schedule": None, "on_success": None, "on_failure": None,
                "retries": 0, "retry_backoff_seconds": 0, "timeout_minutes": 60}

    document = {
        "format": "mailwright.project/1",
        "name": "Bench",
        "connections": [
            {"name": "Bench mailbox", "connector": "email",
             "imap": {"host": "localhost", "port": dovecot.tls_port, "security": "ssl", "verify_tls": True},
             "smtp": {"host": "127.0.0.1", "port": sink.port, "security": "none", "verify_tls": True},
             "auth": {"method": "password", "username": USER, "password": {"env": "BENCH_PASSWORD"}},
             "ca_pem": dovecot.ca_pem, "timeouts": {"connect": 5, "read": 30}},
        ],
        "activities": [
            activity("Read inbox", "INBOX"),
            activity("Read warm-up", WARM_UP_FOLDER),
            {"name": "Send to helpdesk", "type": "send_email", "connection": "Bench mailbox",
             "defaults": {"from": SENDER}, "max_connections": connections},
        ],
        "operations": [operation("Forward", "Read inbox"), operation("Warm up", "Read warm-up")],
    }
    path = workdir / "project.json"
    path.write_text(json.dumps(document))
    call_command("import_project", str(path), "--team", "Bench", stdout=io.StringIO())
    return Operation.objects.get(name="Forward").pk, Operation.objects.get(name="Warm up").pk


# Phases, each in a child process ------------------------------------------------------------------


@dataclass
class Result:
    name: str
    messages: int
    seconds: float
    baseline_kb: int
    peak_kb: int
    cpu_seconds: float
    delivery: Delivery
    note: str = ""

    @property
    def rate(self) -> float:
        return self.messages / self.seconds if self.seconds else 0.0


def run_child(phase: str, spec: dict[str, Any]) -> dict[str, Any]:
    """Run ``phase`` in a fresh interpreter and return what it printed as its last JSON line."""
    done = subprocess.run([sys.executable, __file__, "--child", phase, "--spec", json.dumps(spec)],  # noqa: S603
                          cwd=ROOT, capture_output=True, text=True, timeout=1800)
    if done.returncode != 0:
        raise SystemExit(f"phase {phase} failed:\n{done.stdout[-3000:]}\n{done.stderr[-3000:]}")
    if done.stderr.strip() and spec.get("profile"):
        print(done.stderr)
    return json.loads(done.stdout.strip().splitlines()[-1])


def child_raw(spec: dict[str, Any]) -> dict[str, Any]:
    """(a) The ceiling: what any forwarder has to do at the least, done as fast as it can be.

    The timer starts before the IMAP login and ends after the last STORE, like a run's. Bodies are
    fetched in the engine's batches (``BODY.PEEK[]``, imaplib's trace off) while the batches before
    are being sent: the SMTP connections never wait for the fetch. Each batch is flagged with one
    ``STORE +FLAGS.SILENT (\\Seen)`` once all its messages were accepted. ``connections`` threads
    each keep one SMTP connection and send the fetched bytes unchanged.
    """
    import threading
    from concurrent.futures import Future, ThreadPoolExecutor

    from imapclient import IMAPClient

    context = ssl.create_default_context(cadata=spec["ca_pem"])
    local = threading.local()
    opened: list[smtplib.SMTP] = []
    lock = threading.Lock()

    def log_in(_: object = None) -> smtplib.SMTP:
        """This thread's SMTP connection, opened on its first use."""
        if not hasattr(local, "smtp"):
            local.smtp = smtplib.SMTP("127.0.0.1", spec["smtp_port"], timeout=30)
            local.smtp.login(USER, PASSWORD)
            with lock:
                opened.append(local.smtp)
        return local.smtp

    def send(raw: bytes) -> None:
        log_in().sendmail(SENDER, [RECIPIENT], raw)

    baseline = memory_kb()["VmRSS"]
    cpu_before = cpu_seconds()
    started = time.perf_counter()
    connections = spec["connections"]
    sent = 0
    with ThreadPoolExecutor(max_workers=connections) as pool:
        # Every connection logs in at once, alongside IMAP (a pool thread may serve two of these
        # submissions; the rest then log in on their first message).
        logins = [pool.submit(log_in) for _ in range(connections)]
        imap = IMAPClient("localhost", spec["imap_port"], ssl=True, ssl_context=context, timeout=30)
        imap._imap.debug = 0  # as the product does: imaplib's trace formatting costs a lot per message
        imap.login(USER, PASSWORD)
        imap.select_folder("INBOX")
        for future in logins:
            future.result()
        in_flight: list[tuple[list[int], list[Future[None]]]] = []

        def settle(block: bool) -> int:
            """STORE \\Seen for the oldest batches whose sends are done (all of them when ``block``)."""
            done = 0
            while in_flight and (block or all(f.done() for f in in_flight[0][1])):
                batch, futures = in_flight.pop(0)
                for future in futures:
                    future.result()
                imap.add_flags(batch, [b"\\Seen"], silent=True)
                done += len(batch)
            return done

        uids = sorted(imap.search([b"UNSEEN", b"UNDELETED"]))
        for batch in _body_batches(imap, uids):
            bodies = imap.fetch(batch, ["BODY.PEEK[]"])
            in_flight.append((batch, [pool.submit(send, bodies.pop(uid)[b"BODY[]"]) for uid in batch]))
            del bodies
            sent += settle(block=False)
            # At most two batches held in memory: the one being sent and the one just fetched.
            while len(in_flight) > 2:
                for future in in_flight[0][1]:
                    future.result()
                sent += settle(block=False)
        sent += settle(block=True)
    seconds = time.perf_counter() - started
    for smtp in opened:
        smtp.quit()
    imap.logout()
    return {"messages": sent, "seconds": seconds, "baseline_kb": baseline, "peak_kb": memory_kb()["VmHWM"],
            "cpu_seconds": cpu_seconds() - cpu_before}


def _body_batches(imap: Any, uids: list[int]) -> Iterator[list[int]]:
    """The UIDs in the engine's batches: sizes probed ``PROBE_BATCH`` at a time, bodies fetched up to
    ``BODY_BATCH_BYTES`` a FETCH."""
    for start in range(0, len(uids), PROBE_BATCH):
        chunk = uids[start : start + PROBE_BATCH]
        sizes = imap.fetch(chunk, ["RFC822.SIZE"])
        batch: list[int] = []
        batch_bytes = 0
        for uid in chunk:
            size = int(sizes[uid][b"RFC822.SIZE"])
            if batch and batch_bytes + size > BODY_BATCH_BYTES:
                yield batch
                batch, batch_bytes = [], 0
            batch.append(uid)
            batch_bytes += size
        if batch:
            yield batch


def child_engine(spec: dict[str, Any]) -> dict[str, Any]:
    """(b) The engine in this process: a warm-up run (imports, first connections), then the real one."""
    import django

    django.setup()
    from designer.models import Run
    from designer.running import engine

    warm = Run.objects.create(operation_id=spec["warm_up_id"], trigger=Run.Trigger.COMMAND)
    engine.execute(warm.pk)
    run = Run.objects.create(operation_id=spec["operation_id"], trigger=Run.Trigger.COMMAND)
    baseline = memory_kb()["VmRSS"]
    profiler = cProfile.Profile() if spec.get("profile") else None
    cpu_before = cpu_seconds()
    started = time.perf_counter()
    if profiler:
        profiler.enable()
    run = engine.execute(run.pk)
    if profiler:
        profiler.disable()
    seconds = time.perf_counter() - started
    cpu = cpu_seconds() - cpu_before
    if profiler:
        profiler.dump_stats(spec["profile_out"])
        report_profile(profiler)
    return {"messages": run.sent_count, "seconds": seconds, "baseline_kb": baseline, "cpu_seconds": cpu,
            "peak_kb": memory_kb()["VmHWM"], "status": run.status, "message": run.message}


def report_profile(profiler: cProfile.Profile) -> None:
    """The top costs, by own time and by cumulative time, to stderr (the parent prints it)."""
    for order in ("tottime", "cumulative"):
        out = io.StringIO()
        pstats.Stats(profiler, stream=out).strip_dirs().sort_stats(order).print_stats(25)
        print(f"--- profile of (b), top 25 by {order} ---\n{out.getvalue()}", file=sys.stderr)


# Phase (c): a real worker ------------------------------------------------------------------------


@contextlib.contextmanager
def celery_worker(workdir: Path, queue: str, name: str = "worker") -> Iterator[subprocess.Popen[bytes]]:
    log = workdir / f"{name}.log"
    with log.open("wb") as output:
        worker = subprocess.Popen(  # noqa: S603 (our interpreter, fixed arguments)
            [sys.executable, "-m", "celery", "-A", "designer", "worker", "--pool", "prefork", "--concurrency", "1",
             "--loglevel", "INFO",
             "--without-heartbeat", "--without-mingle", "--without-gossip", "--queues", queue,
             "--hostname", f"bench-{name}-{queue}@%h"],
            cwd=ROOT, env=dict(os.environ), stdout=output, stderr=subprocess.STDOUT,
        )
        try:
            deadline = time.monotonic() + 60
            while " ready." not in log.read_text(errors="replace"):
                if worker.poll() is not None or time.monotonic() > deadline:
                    raise SystemExit(f"the celery worker did not start:\n{log.read_text(errors='replace')[-3000:]}")
                time.sleep(0.1)
            yield worker
        finally:
            worker.terminate()
            try:
                worker.wait(30)
            except subprocess.TimeoutExpired:
                worker.kill()
                worker.wait(5)


def pool_child(pid: int) -> int:
    for stat in Path("/proc").glob("[0-9]*/stat"):
        with contextlib.suppress(OSError, IndexError):
            if int(proc_stat(stat)[1]) == pid:
                return int(stat.parent.name)
    raise SystemExit("the prefork worker has no pool process")


def through_worker(workdir: Path, operation_id: int, warm_up_id: int) -> dict[str, Any]:
    """(c) Enqueue a warm-up run and the real one on Redis; time from enqueueing to the finish the run recorded."""
    import redis
    from django.utils import timezone

    from designer.models import Operation, Run
    from designer.running.runs import execute_run

    queue = f"mailwright-bench-{uuid.uuid4().hex[:8]}"
    broker = redis.Redis.from_url(REDIS_URL)

    def run_and_wait(operation: Operation) -> tuple[Run, float]:
        run = Run.objects.create(operation=operation, trigger=Run.Trigger.MANUAL)
        enqueued = timezone.now()
        execute_run.apply_async((run.pk,), queue=queue)
        while True:
            # Timed to the finish the run recorded, not to when this loop sees it, so it can look
            # seldom: each look is a read of the database the worker is committing to.
            time.sleep(0.1)
            run.refresh_from_db()
            if run.finished:
                return run, (run.finished_at - enqueued).total_seconds()

    try:
        with celery_worker(workdir, queue) as worker:
            run_and_wait(Operation.objects.get(pk=warm_up_id))
            child = pool_child(worker.pid)  # prefork: the run is in the pool's process, measured there
            baseline = memory_kb(child)["VmRSS"]
            cpu_before = cpu_seconds(child)
            run, seconds = run_and_wait(Operation.objects.get(pk=operation_id))
            peak = memory_kb(child)["VmHWM"]
            cpu = cpu_seconds(child) - cpu_before
    finally:
        # The queue and the bindings kombu keeps for it (a new queue per run: they would pile up).
        broker.delete(queue, f"_kombu.binding.{queue}", f"_kombu.binding_permanent.{queue}")
    busy = (run.finished_at - run.started_at).total_seconds() if run.started_at and run.finished_at else seconds
    return {"messages": run.sent_count, "seconds": seconds, "baseline_kb": baseline, "peak_kb": peak,
            "cpu_seconds": cpu, "status": run.status, "message": run.message, "busy_seconds": busy}


# Orchestration -----------------------------------------------------------------------------------


def reset_between_phases(dovecot: Any, sink: Any, operation_id: int) -> None:
    from designer.models import LedgerEntry, Operation

    mark_all_unread(dovecot)
    # Else the ledger (rightly) skips what was delivered. Only this bench's connection: DATABASE_URL
    # may name a database that holds other data.
    connection_id = Operation.objects.get(pk=operation_id).source.connection_id
    LedgerEntry.objects.filter(connection_id=connection_id).delete()
    sink.reset()


@dataclass(frozen=True)
class Delivery:
    """What the sink received and the mailbox says, for one phase."""

    expected: int
    distinct: int  # distinct source messages received
    duplicates: int  # copies beyond the first, summed over every message
    seen: int  # source messages flagged \\Seen

    @property
    def lost(self) -> int:
        return self.expected - self.distinct

    @property
    def exact(self) -> bool:
        return self.distinct == self.expected and not self.duplicates and self.seen == self.expected


def check_delivery(name: str, sink: Any, dovecot: Any, expected: int) -> Delivery:
    """Counted at the sink: every message delivered exactly once and marked read (a fast run that
    loses mail is no result)."""
    received = {source: count for source, count in sink.received.items() if "warm-up@" not in source}
    delivery = Delivery(expected, len(received), sum(count - 1 for count in received.values()), count_seen(dovecot))
    if not delivery.exact:
        print(f"!! {name}: {delivery.distinct} of {expected} distinct messages received, "
              f"{delivery.duplicates} duplicate copies, {delivery.seen} of {expected} marked read")
    return delivery


# The acceptance compares with the ceiling over 8 connections too.
WIDE = 8
TARGETS = {"small": {"(b)": 0.6, "(c)": 0.55}, "large": {"(b)": 0.9, "(c)": 0.9}}


def table(results: list[Result], largest: int, ceiling: Result, wide: Result | None) -> str:
    """One line a phase: rate, ratio to the ceiling at the product's connections (and at 8), RSS
    growth over the phase's own baseline, and the delivery counted at the sink."""
    wide_head = f" {'vs (a8)':>7}" if wide else ""
    lines = [
        f"{'phase':<32} {'msgs':>5} {'seconds':>8} {'msgs/s':>8} {'vs (a)':>7}{wide_head} {'cpu ms/msg':>10} "
        f"{'base MB':>8} {'peak MB':>8} {'peak-base':>9} {'RSS':>4} {'dup':>4} {'lost':>4} {'seen':>5}  note",
    ]
    limit_kb = 3 * largest / 1024
    for r in results:
        ratio = r.rate / ceiling.rate if ceiling.rate else 0
        wide_ratio = f" {r.rate / wide.rate:>6.2f}x" if wide and wide.rate else ""
        growth = r.peak_kb - r.baseline_kb
        d = r.delivery
        lines.append(
            f"{r.name:<32} {r.messages:>5} {r.seconds:>8.2f} {r.rate:>8.1f} {ratio:>6.2f}x{wide_ratio} "
            f"{1000 * r.cpu_seconds / max(1, r.messages):>10.2f} {r.baseline_kb / 1024:>8.1f} "
            f"{r.peak_kb / 1024:>8.1f} {growth / 1024:>8.1f}M "
            f"{'ok' if growth <= limit_kb else 'OVER':>4} {d.duplicates:>4} {d.lost:>4} {d.seen:>5}  {r.note}"
        )
    return "\n".join(lines)


def measure(workload: str, count: int, attachment_kb: int, dovecot: Any, sink: Any, spec: dict[str, Any],
            skip_worker: bool, workdir: Path) -> None:
    """Seed ``count`` messages (``attachment_kb`` > 0: each with such an attachment) and run (a), (b), (c)."""
    small, large = (count, 0) if not attachment_kb else (0, count)
    print(f"== {workload}: seeding {count} messages ...")
    total, largest = seed(dovecot, small, large, attachment_kb * 1024)
    print(f"seeded {total} messages; the largest is {largest / 1024:.1f} KiB")
    reset_between_phases(dovecot, sink, spec["operation_id"])
    results: list[Result] = []
    ceilings = [spec["connections"]] + ([WIDE] if spec["connections"] != WIDE else [])
    for connections in ceilings:
        print(f"(a) transport ceiling, {connections} SMTP connections ...")
        raw = run_child("raw", {**spec, "connections": connections})
        results.append(Result(f"(a) ceiling, {connections} connections", raw["messages"], raw["seconds"],
                              raw["baseline_kb"], raw["peak_kb"], raw["cpu_seconds"],
                              check_delivery("(a)", sink, dovecot, total)))
        reset_between_phases(dovecot, sink, spec["operation_id"])
    print(f"(b) the product inline, max_connections {spec['connections']} ...")
    inline = run_child("engine", spec)
    results.append(Result("(b) product inline", inline["messages"], inline["seconds"], inline["baseline_kb"],
                          inline["peak_kb"], inline["cpu_seconds"], check_delivery("(b)", sink, dovecot, total)))
    if inline["status"] != "succeeded":
        print(f"!! (b) ended {inline['status']}: {inline['message']}")
    if not skip_worker:
        reset_between_phases(dovecot, sink, spec["operation_id"])
        print("(c) the product through celery worker --pool prefork --concurrency 1, Redis db 15 ...")
        worker = through_worker(workdir, spec["operation_id"], spec["warm_up_id"])
        results.append(Result("(c) product, prefork worker", worker["messages"], worker["seconds"],
                              worker["baseline_kb"], worker["peak_kb"], worker["cpu_seconds"],
                              check_delivery("(c)", sink, dovecot, total),
                              f"{worker['busy_seconds']:.1f} s of it in the run"))
        if worker["status"] != "succeeded":
            print(f"!! (c) ended {worker['status']}: {worker['message']}")
    ceiling = results[0]
    wide = results[1] if len(ceilings) > 1 else None
    print()
    print(f"-- {workload}: {total} messages, largest {largest / 1024:.1f} KiB "
          f"(RSS target: baseline + {3 * largest / MB:.1f} MB); dup/lost/seen counted at the sink and the mailbox")
    print(table(results, largest, ceiling, wide))
    for r in results[len(ceilings):]:
        target = TARGETS[workload][r.name[:3]]
        ratio = r.rate / ceiling.rate if ceiling.rate else 0
        verdict = "met" if ratio >= target and r.delivery.exact else "NOT met"
        wide_note = f"; {r.rate / wide.rate:.2f} x the {WIDE}-connection ceiling" if wide and wide.rate else ""
        print(f"{r.name}: {ratio:.2f} x (a) -> target >= {target}: {verdict}{wide_note}")
    print()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--small", type=int, default=1000, help="messages of ~5 KB (default 1000; 0 skips)")
    parser.add_argument("--large", type=int, default=200, help="messages with an attachment (default 200; 0 skips)")
    parser.add_argument("--large-kb", type=int, default=1024, help="attachment size in KiB (default 1024)")
    parser.add_argument("--connections", type=int, default=4,
                        help="SMTP connections, of the product and of (a) alike (default 4, the product's default); "
                             f"(a) is also measured over {WIDE}")
    parser.add_argument("--pipelining", action="store_true",
                        help="the sink offers PIPELINING, as Postfix and most providers do (aiosmtpd does not say so)")
    parser.add_argument("--skip-worker", action="store_true", help="leave out phase (c) (no Redis here)")
    parser.add_argument("--profile", action="store_true", help="profile phase (b) with cProfile (slows it)")
    parser.add_argument("--keep", action="store_true", help="keep the work directory (database, logs)")
    parser.add_argument("--child", help=argparse.SUPPRESS)
    parser.add_argument("--spec", help=argparse.SUPPRESS)
    args = parser.parse_args()

    if args.child:
        spec = json.loads(args.spec)
        result = {"raw": child_raw, "engine": child_engine}[args.child](spec)
        print(json.dumps(result))
        return

    workdir = Path(tempfile.mkdtemp(prefix="mailwright-bench-"))
    configure_environment(workdir)
    import django

    django.setup()
    from django.core.management import call_command

    from tests.servers.certs import generate_test_certs
    from tests.servers.dovecot import Dovecot

    began = time.monotonic()
    call_command("migrate", verbosity=0)
    dovecot = Dovecot(certs=generate_test_certs(workdir / "certs"))
    dovecot.add_user(USER, PASSWORD)
    dovecot.start()
    sink = start_sink(args.pipelining)
    try:
        mark_all_unread(dovecot)  # also creates and fills the warm-up folder
        operation_id, warm_up_id = import_project(dovecot, sink, workdir, args.connections)
        spec = {"imap_port": dovecot.tls_port, "smtp_port": sink.port, "ca_pem": dovecot.ca_pem,
                "operation_id": operation_id, "warm_up_id": warm_up_id, "profile": args.profile,
                "profile_out": str(workdir / "engine.prof"), "connections": args.connections}
        if args.small:
            measure("small", args.small, 0, dovecot, sink, spec, args.skip_worker, workdir)
        if args.large:
            measure("large", args.large, args.large_kb, dovecot, sink, spec, args.skip_worker, workdir)
    finally:
        sink.stop()
        dovecot.close()
    if args.profile:
        print(f"profile of (b): {workdir / 'engine.prof'} (python -m pstats)")
    if args.keep or args.profile:
        print(f"work files in {workdir}")
    else:
        shutil.rmtree(workdir, ignore_errors=True)
    print(f"total time {time.monotonic() - began:.0f} s")


if __name__ == "__main__":
    main()
