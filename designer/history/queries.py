"""The run history: a team's runs filtered and paged, and their per-day counts.

Every query here costs what one page shows, not what the table holds, so the history stays fast
at a million runs: pages are keyset-paged on the primary key (``?before=<id>`` / ``?after=<id>``,
never OFFSET) and nothing counts the whole table; the chart counts day by day over the
``(operation, queued_at)`` index and keeps the days that can no longer change.
"""

from __future__ import annotations

import re
from collections.abc import Iterable, Iterator
from dataclasses import dataclass, field
from datetime import date, datetime, time, timedelta

from django.core.cache import cache
from django.db.models import Count, QuerySet, Sum
from django.utils import timezone

from designer.models import Operation, Project, Run, RunLog, RunRecord, Team

PAGE_SIZE = 50
CHART_DAYS = 30
# A date range longer than this is charted by its last days only: the bars must stay readable.
MAX_CHART_DAYS = 92
# What a run page shows of one run; a run of 10,000 messages says how many more there are.
RUN_PAGE_ROWS = 500
# Statuses a message of a run may be replayed from (the rule itself lives in runs.replay).


# -- filters and pages ----------------------------------------------------------------------------


def team_runs(team: Team, project: Project | None = None) -> QuerySet[Run]:
    """The runs a member of ``team`` may see (of one project when given).

    Narrowed by the team's operation ids (a subquery), not by a join to its projects: the database
    then seeks each operation's runs in the ``(operation, ...)`` indexes, so a small team's page
    costs what its own runs cost however many runs other teams have.
    """
    runs = Run.objects.filter(operation_id__in=team_operations(team, project).values("pk"))
    return runs.select_related("operation__project")


def start_of(day: date) -> datetime:
    """Midnight of ``day`` in the current time zone: dates in the UI are local dates."""
    return timezone.make_aware(datetime.combine(day, time.min))


@dataclass
class Page:
    runs: list[Run]
    newer: int | None  # cursor for ?after=, None on the newest page
    older: int | None  # cursor for ?before=, None on the oldest page
    first: bool  # the newest page (no cursor given)


def cursor(value: str | None) -> int | None:
    """A page cursor from the query string; anything but a positive id means "the newest page"."""
    return int(value) if value and value.isdigit() else None


def page(runs: QuerySet[Run], *, before: int | None = None, after: int | None = None,
         size: int = PAGE_SIZE) -> Page:
    """One page of ``runs``, newest first, by keyset on the id: one query whatever the table's size.

    One row more than shown is fetched to know whether a further page exists, so no count is needed.
    """
    if after is not None:
        rows = list(runs.filter(pk__gt=after).order_by("pk")[: size + 1])
        more = len(rows) > size
        rows = rows[:size][::-1]
        return Page(rows, newer=rows[0].pk if more else None, older=rows[-1].pk if rows else None, first=False)
    if before is not None:
        runs = runs.filter(pk__lt=before)
    rows = list(runs.order_by("-pk")[: size + 1])
    more = len(rows) > size
    rows = rows[:size]
    return Page(rows, newer=rows[0].pk if before is not None and rows else None,
                older=rows[-1].pk if more else None, first=before is None)


def with_chains(runs: list[Run], scope: QuerySet[Run], depth: int = 20) -> list[Run]:
    """Set ``run.chain`` on each run: the runs its on-success / on-failure chain started, each after
    the run that started it, with ``chain_depth`` (1: started by this run). One query per level."""
    children: dict[int, list[Run]] = {}
    level = [run.pk for run in runs]
    for _ in range(depth):
        if not level:
            break
        found = list(scope.filter(parent__in=level).order_by("pk"))
        for child in found:
            children.setdefault(child.parent_id, []).append(child)
        level = [child.pk for child in found]

    def descend(run: Run, at: int) -> Iterator[Run]:
        for child in children.get(run.pk, []):
            child.chain_depth = at
            yield child
            yield from descend(child, at + 1)

    for run in runs:
        run.chain = list(descend(run, 1))
    return runs


def duration_text(run: Run, now: datetime | None = None) -> str:
    """"1 min 05 s": how long a run took, or has been running so far."""
    if run.started_at is None:
        return ""
    end = run.finished_at or (None if run.finished else (now or timezone.now()))
    if end is None:
        return ""
    seconds = max(0, int((end - run.started_at).total_seconds()))
    hours, rest = divmod(seconds, 3600)
    minutes, seconds = divmod(rest, 60)
    if hours:
        return f"{hours} h {minutes:02d} min"
    if minutes:
        return f"{minutes} min {seconds:02d} s"
    return f"{seconds} s"


# The counts every run's message starts with (or ends with, in brackets, after an error): the table
# has columns for them.
_COUNTS = re.compile(r"\(?\d+ read, \d+ sent, \d+ skipped, \d+ failed(?:, |\)$|$)")


def note(message: str) -> str:
    """A run's message without the counts the history table shows in its own columns."""
    return " ".join(_COUNTS.sub("", message).split()).strip(" ,")


def with_durations(runs: Iterable[Run]) -> list[Run]:
    """The runs with what the table shows beside their fields: duration, and the message's own words."""
    now = timezone.now()
    runs = list(runs)
    for run in runs:
        run.duration_text = duration_text(run, now)
        run.note = note(run.message)
    return runs


# -- one run ----------------------------------------------------------------------------------------


@dataclass
class RunDetail:
    """What a run page shows of one run's messages, log and follow-up runs."""

    records: list[RunRecord]
    more_records: bool
    logs: list[RunLog]
    more_logs: bool
    children: list[Run]


def run_detail(run: Run) -> RunDetail:
    records = list(run.records.all()[: RUN_PAGE_ROWS + 1])
    logs = list(run.logs.all()[: RUN_PAGE_ROWS + 1])
    children = with_durations(run.children.select_related("operation").order_by("pk"))
    return RunDetail(records=records[:RUN_PAGE_ROWS], more_records=len(records) > RUN_PAGE_ROWS,
                     logs=logs[:RUN_PAGE_ROWS], more_logs=len(logs) > RUN_PAGE_ROWS, children=children)


# -- chart --------------------------------------------------------------------------------------------

MESSAGE_OUTCOMES = (("sent", "Sent"), ("skipped", "Skipped"), ("failed", "Failed"))


@dataclass
class DayCounts:
    day: date
    runs: dict[str, int] = field(default_factory=dict)  # by run status
    messages: dict[str, int] = field(default_factory=dict)  # by outcome: sent, skipped, failed

    @property
    def unfinished(self) -> bool:
        return any(self.runs.get(status) for status in (Run.Status.QUEUED, Run.Status.RUNNING))


def per_day(operations: QuerySet[Operation], days: int = CHART_DAYS, today: date | None = None,
            cache_key: str = "", *, last: date | None = None, status: str = "") -> list[DayCounts]:
    """Runs by status and messages by outcome of ``operations``, for each of the last ``days`` days.

    Each day is one query, grouped by status, over the ``(operation, queued_at)`` index: for each
    of ``operations`` the day's range of its runs, so other teams' runs are never read (no date
    expression to group by: that would make the database walk every run of the team instead).
    A past day whose runs have all ended no longer changes, so with ``cache_key`` (naming the team
    and the filters) it is kept in the cache and only today is counted again: at a million runs in
    30 days the chart costs what one day's runs cost, not what the table holds.
    """
    today = today or timezone.localdate()
    last = last or today
    wanted = sorted(operations.values_list("pk", flat=True))
    result = []
    for n in range(days - 1, -1, -1):
        day = last - timedelta(days=n)
        key = f"runs-per-day:{cache_key}:{status}:{timezone.get_current_timezone_name()}:{day}"
        counts = cache.get(key) if cache_key and day < today else None
        if counts is None:
            counts = _day_counts(wanted, day, status)
            if cache_key and day < today and not counts.unfinished:
                cache.set(key, counts, timeout=int(timedelta(days=days + 1).total_seconds()))
        result.append(counts)
    return result


def day_runs(operations: list[int], day: date, status: str = "") -> QuerySet[Run]:
    """The runs of ``operations`` queued on ``day`` (of one status when given): a range of the
    ``(operation, queued_at)`` index per operation."""
    runs = Run.objects.filter(operation_id__in=operations, queued_at__gte=start_of(day),
                              queued_at__lt=start_of(day + timedelta(days=1)))
    return runs.filter(status=status) if status else runs


def _day_counts(operations: list[int], day: date, status: str = "") -> DayCounts:
    counts = DayCounts(day)
    if not operations:
        return counts
    rows = (
        day_runs(operations, day, status).values("status")
        .annotate(runs=Count("pk"), sent=Sum("sent_count"), skipped=Sum("skipped_count"),
                  failed=Sum("failed_count"))
        .order_by()
    )
    for row in rows:
        counts.runs[row["status"]] = row["runs"]
        for outcome, _ in MESSAGE_OUTCOMES:
            counts.messages[outcome] = counts.messages.get(outcome, 0) + (row[outcome] or 0)
    return counts


def team_operations(team: Team, project: Project | None = None) -> QuerySet[Operation]:
    operations = Operation.objects.filter(project__team=team)
    return operations.filter(project=project) if project is not None else operations
