"""How the run history page scales: its time and query count at 1,000 runs and at 1,000,000.

    .venv/bin/python bench/history.py [--runs 1000000] [--repeat 30]

Two databases are filled, one with 1,000 runs and one with a million, and the pages are requested
from each in turn (1k, 1M, 1k, 1M, ...), so whatever else runs on the machine slows both alike.
They are temporary SQLite files unless DATABASE_URL is set (e.g. to PostgreSQL); the large one is
then the same URL's database name with "_1m" appended, which must exist.

Runs are spread over the last 30 days, the retention period, so every one of them is also inside
the chart's window: the worst case for the chart. Pages are rendered through Django's test client
as a logged-in viewer, as a browser would get them. Target: at 1M runs the history page takes at
most 1.5 times as long as at 1k, with the same number of queries.
"""

from __future__ import annotations

import argparse
import os
import shutil
import statistics
import sys
import tempfile
import time
from collections.abc import Callable
from datetime import timedelta
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
os.environ.setdefault("DJANGO_SETTINGS_MODULE", "tests.settings")
# Our own temporary databases are removed at the end: the large one is some 300 MB.
TEMPORARY = None if "DATABASE_URL" in os.environ else tempfile.mkdtemp(prefix="mailwright-bench-history-")
if TEMPORARY:
    os.environ["DATABASE_URL"] = f"sqlite:///{TEMPORARY}/bench-1k.sqlite3"


class Router:
    """Sends every query to the database being measured right now."""

    alias = "default"

    def db_for_read(self, model, **hints) -> str:
        return Router.alias

    def db_for_write(self, model, **hints) -> str:
        return Router.alias

    def allow_relation(self, *objects, **hints) -> bool:
        return True

    def allow_migrate(self, db, app_label, **hints) -> bool:
        return True


from django.conf import settings  # noqa: E402

LARGE = "large"
_large = dict(settings.DATABASES["default"])
_large["NAME"] = (str(_large["NAME"]).replace("-1k.sqlite3", "-1m.sqlite3") if _large["ENGINE"].endswith("sqlite3")
                  else f"{_large['NAME']}_1m")
settings.DATABASES[LARGE] = _large
settings.DATABASE_ROUTERS = [Router()]

import django  # noqa: E402

django.setup()

from django.contrib.auth import get_user_model  # noqa: E402
from django.core.cache import cache  # noqa: E402
from django.core.management import call_command  # noqa: E402
from django.db import connections, transaction  # noqa: E402
from django.test import Client  # noqa: E402
from django.test.utils import CaptureQueriesContext  # noqa: E402
from django.urls import reverse  # noqa: E402
from django.utils import timezone  # noqa: E402

from designer.history import queries as history  # noqa: E402
from designer.models import Membership, Operation, Project, Role, Run, Team  # noqa: E402

SMALL_RUNS = 1_000
OPERATIONS = 10
OTHER_OPERATIONS = 3  # per other team
BATCH = 50_000
RANGE_DAYS = 7
SPAN = timedelta(days=30)
# Mostly fine, as in life; every status occurs.
STATUSES = ["succeeded"] * 90 + ["partial"] * 5 + ["failed"] * 4 + ["cancelled"]


COLUMNS = ("operation_id", "trigger", "status", "queued_at", "started_at", "finished_at", "read_count",
           "sent_count", "skipped_count", "failed_count", "message", "cancel_requested", "worker")


def _row(n: int, total: int, operation: int, start) -> tuple:
    """Run number ``n`` of ``total``: ids grow with time, as they do when runs are created."""
    queued = start + SPAN * (n / total)
    status = STATUSES[n % len(STATUSES)]
    read = n % 7
    failed = read if status == "failed" else (1 if status == "partial" and read else 0)
    sent = read - failed
    return (operation, "schedule", status, queued, queued + timedelta(seconds=1), queued + timedelta(seconds=3),
            read, sent, 0, failed, f"{read} read, {sent} sent, 0 skipped, {failed} failed", False, "bench")


def fill(alias: str, own: list[int], own_runs: int, others: list[int], other_runs: int) -> None:
    """``own_runs`` runs of the bench team's operations spread evenly among ``other_runs`` of the
    ``others``: raw batched inserts on SQLite, COPY on PostgreSQL (the ORM would take minutes)."""
    total = own_runs + other_runs
    every = total / own_runs if own_runs else 0
    own_positions = {int(i * every) for i in range(own_runs)} if own_runs else set()
    start = timezone.now() - SPAN
    counters = [0, 0]

    def operation(n: int) -> int:
        mine = n in own_positions or not others
        pool = own if mine else others
        counters[mine] += 1
        return pool[counters[mine] % len(pool)]

    connection = connections[alias]
    for first in range(0, total, BATCH):
        rows = [_row(n, total, operation(n), start) for n in range(first, min(first + BATCH, total))]
        with transaction.atomic(using=alias), connection.cursor() as cursor:
            if connection.vendor == "postgresql":
                with cursor.cursor.copy(f"COPY {Run._meta.db_table} ({', '.join(COLUMNS)}) FROM STDIN") as copy:
                    for row in rows:
                        copy.write_row(row)
            else:
                adapt = connection.ops.adapt_datetimefield_value
                sql = (f"INSERT INTO {Run._meta.db_table} ({', '.join(COLUMNS)}) "  # noqa: S608
                       f"VALUES ({', '.join(['%s'] * len(COLUMNS))})")
                cursor.executemany(sql, [(*r[:3], adapt(r[3]), adapt(r[4]), adapt(r[5]), *r[6:]) for r in rows])
    with connection.cursor() as cursor:
        cursor.execute("ANALYZE")  # what any database that has run a while has: statistics


def other_teams(count: int) -> list[int]:
    """``count`` teams with a project and ``OTHER_OPERATIONS`` operations each, in bulk; their operation ids."""
    if not count:
        return []
    teams = Team.objects.bulk_create([Team(name=f"Other {n}", slug=f"other-{n}") for n in range(count)],
                                     batch_size=500)
    projects = Project.objects.bulk_create([Project(team=team, name="Work") for team in teams], batch_size=500)
    operations = Operation.objects.bulk_create(
        [Operation(project=project, name=f"Operation {n}") for project in projects for n in range(OTHER_OPERATIONS)],
        batch_size=500)
    if operations[0].pk is None:  # a database that does not return ids from bulk inserts
        return list(Operation.objects.exclude(project__team__name="Bench").values_list("pk", flat=True))
    return [o.pk for o in operations]


def prepare(alias: str, runs: int, teams: int) -> tuple[Team, Client, list[int]]:
    """The bench team (a viewer, ``OPERATIONS`` operations and ``SMALL_RUNS`` runs) and, in the large
    database, ``runs`` runs of ``teams`` other teams (or ``runs`` more of its own with ``teams`` 0)."""
    Router.alias = alias
    call_command("migrate", database=alias, verbosity=0)
    began = time.perf_counter()
    others = other_teams(teams if alias == LARGE else 0)
    if alias == LARGE and not teams:
        # Another team first, so the two bench teams differ in id, and so in the chart's cache keys.
        Team.objects.create(name="Someone else")
    team = Team.objects.create(name="Bench")
    user = get_user_model().objects.create_user("bench", password="bench-only-password")  # noqa: S106
    Membership.objects.create(team=team, user=user, role=Role.VIEWER)
    project = Project.objects.create(team=team, name="Bench")
    operations = [Operation.objects.create(project=project, name=f"Operation {n}").pk for n in range(OPERATIONS)]
    if alias != LARGE:
        fill(alias, operations, SMALL_RUNS, [], 0)
    elif teams:
        fill(alias, operations, SMALL_RUNS, others, runs)
    else:
        fill(alias, operations, runs, [], 0)
    total = Run.objects.count()
    mine = Run.objects.filter(operation__project__team=team).count()
    print(f"{alias}: {total:,} runs ({mine:,} of the bench team, {teams if alias == LARGE else 0:,} other teams) "
          f"in {time.perf_counter() - began:.1f} s", flush=True)
    client = Client()
    client.force_login(user)
    return team, client, operations


def pages(team: Team, client: Client, operations: list[int]) -> dict[str, Callable[[], object]]:
    runs_url = reverse("runs", kwargs={"team": team.slug})
    chart_url = reverse("runs_chart", kwargs={"team": team.slug})

    def get(url: str) -> Callable[[], object]:
        def call() -> object:
            response = client.get(url)
            assert response.status_code == 200, response.status_code
            return response
        return call

    deep = Run.objects.filter(operation_id__in=operations).order_by("-pk").values_list("pk", flat=True)[600]
    until = timezone.localdate() - timedelta(days=3)
    week = f"since={until - timedelta(days=RANGE_DAYS - 1):%Y-%m-%d}&until={until:%Y-%m-%d}"
    return {
        "history": get(runs_url),
        f"history, {RANGE_DAYS}-day range": get(f"{runs_url}?{week}"),
        f"history, {RANGE_DAYS} days, failed": get(f"{runs_url}?{week}&status=failed"),
        "history, status=failed": get(f"{runs_url}?status=failed"),
        "history, one operation": get(f"{runs_url}?operation={operations[3]}"),
        # 600 runs back in the team's own history, wherever that is among the ids.
        "history, deep page (?before=)": get(f"{runs_url}?before={deep}"),
        # The page's own query, without the request around it: what the database does.
        "its runs query alone": lambda: history.page(history.team_runs(team)),
        "chart (loaded beside the page)": get(chart_url),
        "chart, first view of the day": get(chart_url),
        f"chart, {RANGE_DAYS}-day range, first view": get(f"{chart_url}?{week}"),
    }


def measure(calls: dict[str, Callable[[], object]], repeat: int, cold: bool) -> dict[str, tuple[float, float, int]]:
    """Best and median milliseconds of ``repeat`` calls, alternating between the databases, and query counts."""
    times: dict[str, list[float]] = {alias: [] for alias in calls}
    for _ in range(repeat + 2):
        for alias, call in calls.items():
            Router.alias = alias
            if cold:
                cache.clear()
            started = time.perf_counter()
            call()
            times[alias].append((time.perf_counter() - started) * 1000)
    counts = {}
    for alias, call in calls.items():
        Router.alias = alias
        if cold:
            cache.clear()
        with CaptureQueriesContext(connections[alias]) as queries:
            call()
        counts[alias] = len(queries)
    # The first two rounds only warm the templates and the databases' pages.
    return {alias: (min(t[2:]), statistics.median(t[2:]), counts[alias]) for alias, t in times.items()}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--runs", type=int, default=1_000_000, help="runs in the large database (other teams')")
    parser.add_argument("--teams", type=int, default=1_000,
                        help="other teams those runs belong to; 0: they are all the bench team's")
    parser.add_argument("--repeat", type=int, default=30)
    args = parser.parse_args()

    try:
        compare(args.runs, args.teams, args.repeat)
    finally:
        if TEMPORARY:
            shutil.rmtree(TEMPORARY, ignore_errors=True)


def compare(runs: int, teams: int, repeat: int) -> None:
    small = pages(*prepare("default", SMALL_RUNS, 0))
    large = pages(*prepare(LARGE, runs, teams))
    print(f"\n{'page':31} {'1k runs: best / median':>27} {f'{runs:,} runs: best / median':>29} "
          f"{'ratio':>6} (best)")
    worst = 0.0
    for name in small:
        result = measure({"default": small[name], LARGE: large[name]}, repeat, cold="first view" in name)
        (b1, m1, q1), (b2, m2, q2) = result["default"], result[LARGE]
        print(f"{name:31} {b1:8.1f} / {m1:7.1f} ms {q1:2d} q {b2:8.1f} / {m2:7.1f} ms {q2:2d} q {b2 / b1:6.2f}"
              f"{'' if q1 == q2 else '  (query counts differ!)'}", flush=True)
        if name.startswith("history"):
            worst = max(worst, b2 / b1)
    print(f"\nworst history ratio: {worst:.2f} (target <= 1.5); database: {connections['default'].vendor}; "
          f"load average {os.getloadavg()[0]:.1f} on {os.cpu_count()} cores")


if __name__ == "__main__":
    main()
