"""The run history: a team's runs filtered and paged, their per-day counts, and the health of sources.

Every query here costs what one page shows, not what the table holds, so the history stays fast
at a million runs: pages are keyset-paged on the primary key (``?before=<id>`` / ``?after=<id>``,
never OFFSET) and nothing counts the whole table; the chart counts day by day over the
``queued_at`` index and keeps the days that can no longer change.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass, field
from datetime import date, datetime, time, timedelta
from zoneinfo import ZoneInfo

from celery.schedules import crontab
from django import forms
from django.core.cache import cache
from django.db.models import Count, QuerySet, Sum
from django.utils import timezone
from django.utils.http import urlencode

from connectors.base import all_connectors
from designer.models import Activity, Operation, Project, Run, RunLog, RunRecord, Team

PAGE_SIZE = 50
CHART_DAYS = 30
# What a run page shows of one run; a run of 10,000 messages says how many more there are.
RUN_PAGE_ROWS = 500
# A source is stalled after this many missed polls of its schedule...
STALL_INTERVALS = 3
# ...or, when nothing schedules it but it has been polled before, after this long without success.
UNSCHEDULED_STALL = timedelta(days=1)
# Statuses a message of a run may be replayed from (the rule itself lives in runs.replay).


# -- filters and pages ----------------------------------------------------------------------------


def team_runs(team: Team, project: Project | None = None) -> QuerySet[Run]:
    """The runs a member of ``team`` may see (of one project when given)."""
    runs = Run.objects.filter(operation__project__team=team)
    if project is not None:
        runs = runs.filter(operation__project=project)
    return runs.select_related("operation__project")


class HistoryFilterForm(forms.Form):
    """The history's filters, read from the query string so a filtered page is a plain link."""

    operation = forms.ModelChoiceField(queryset=Operation.objects.none(), required=False,
                                       empty_label="All operations", label="Operation")
    status = forms.ChoiceField(choices=[("", "All statuses"), *Run.Status.choices], required=False, label="Status")
    since = forms.DateField(required=False, label="From", widget=forms.DateInput(attrs={"type": "date"}))
    until = forms.DateField(required=False, label="To", widget=forms.DateInput(attrs={"type": "date"}))

    def __init__(self, *args, team: Team, project: Project | None = None, **kwargs) -> None:
        super().__init__(*args, label_suffix="", **kwargs)
        field = self.fields["operation"]
        field.queryset = team_operations(team, project).select_related("project").order_by("project__name", "name")
        # Team-wide, two projects may both have a "Forward" operation: name the project too.
        field.label_from_instance = (lambda op: op.name) if project else (lambda op: f"{op.project.name} / {op.name}")

    def clean(self) -> dict:
        cleaned = super().clean()
        since, until = cleaned.get("since"), cleaned.get("until")
        if since and until and since > until:
            self.add_error("until", "Must be on or after the From date.")
        return cleaned

    def filter(self, runs: QuerySet[Run]) -> QuerySet[Run]:
        """Apply the filters that are valid; an invalid one is shown as an error and ignored."""
        self.is_valid()
        data = self.cleaned_data
        if data.get("operation"):
            runs = runs.filter(operation=data["operation"])
        if data.get("status"):
            runs = runs.filter(status=data["status"])
        if data.get("since"):
            runs = runs.filter(queued_at__gte=start_of(data["since"]))
        if data.get("until"):
            runs = runs.filter(queued_at__lt=start_of(data["until"] + timedelta(days=1)))
        return runs

    def query(self, **extra: int) -> str:
        """The query string of these filters plus ``extra`` (a page cursor), for links."""
        params = {name: self.data[name] for name in self.fields if self.data.get(name)}
        params.update(extra)
        return "?" + urlencode(params)


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


def with_durations(runs: Iterable[Run]) -> list[Run]:
    now = timezone.now()
    runs = list(runs)
    for run in runs:
        run.duration_text = duration_text(run, now)
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
            cache_key: str = "") -> list[DayCounts]:
    """Runs by status and messages by outcome of ``operations``, for each of the last ``days`` days.

    Each day is one query over its range of the ``queued_at`` index, grouped by operation and
    status and narrowed to ``operations`` here rather than in SQL: a condition on the operation
    (or a date expression to group by) makes SQLite walk every run of the team instead of one day's.
    A past day whose runs have all ended no longer changes, so with ``cache_key`` (naming the team
    and the filters) it is kept in the cache and only today is counted again: at a million runs in
    30 days the chart costs what one day's runs cost, not what the table holds.
    """
    today = today or timezone.localdate()
    wanted = set(operations.values_list("pk", flat=True))
    result = []
    for n in range(days - 1, -1, -1):
        day = today - timedelta(days=n)
        key = f"runs-per-day:{cache_key}:{timezone.get_current_timezone_name()}:{day}"
        counts = cache.get(key) if cache_key and day < today else None
        if counts is None:
            counts = _day_counts(wanted, day)
            if cache_key and day < today and not counts.unfinished:
                cache.set(key, counts, timeout=int(timedelta(days=days + 1).total_seconds()))
        result.append(counts)
    return result


def _day_counts(operations: set[int], day: date) -> DayCounts:
    counts = DayCounts(day)
    rows = (
        Run.objects.filter(queued_at__gte=start_of(day), queued_at__lt=start_of(day + timedelta(days=1)))
        .values("operation_id", "status")
        .annotate(runs=Count("pk"), sent=Sum("sent_count"), skipped=Sum("skipped_count"),
                  failed=Sum("failed_count"))
        .order_by()
    )
    for row in rows:
        if row["operation_id"] not in operations:
            continue
        counts.runs[row["status"]] = counts.runs.get(row["status"], 0) + row["runs"]
        for outcome, _ in MESSAGE_OUTCOMES:
            counts.messages[outcome] = counts.messages.get(outcome, 0) + (row[outcome] or 0)
    return counts


def team_operations(team: Team, project: Project | None = None) -> QuerySet[Operation]:
    operations = Operation.objects.filter(project__team=team)
    return operations.filter(project=project) if project is not None else operations


# -- source health ------------------------------------------------------------------------------------


@dataclass(frozen=True)
class SourceHealth:
    """How a source activity is doing: ``ok``, ``failing``, ``stalled`` or ``idle`` (never polled)."""

    state: str
    reason: str
    interval: timedelta | None  # how often a schedule polls it, None when nothing does

    @property
    def alarm(self) -> bool:
        return self.state in ("failing", "stalled")

    @property
    def interval_text(self) -> str:
        return span_text(self.interval) if self.interval else ""


def schedule_period(operation: Operation) -> timedelta | None:
    """How often the operation's schedule runs it (for cron: the gap between its next two runs)."""
    if not operation.enabled or operation.schedule == Operation.Schedule.NONE:
        return None
    if operation.schedule == Operation.Schedule.INTERVAL:
        return timedelta(minutes=operation.interval_minutes or 5)
    try:
        minute, hour, day_of_month, month, day_of_week = operation.cron.split()
        zone = ZoneInfo(operation.timezone)
    except (ValueError, KeyError):
        return None
    now = timezone.now().astimezone(zone)
    schedule = crontab(minute=minute, hour=hour, day_of_month=day_of_month, month_of_year=month,
                       day_of_week=day_of_week, nowfun=lambda: now)
    to_next = schedule.remaining_estimate(now)
    return schedule.remaining_estimate(now + to_next) - to_next


def source_health(activity: Activity, interval: timedelta | None, now: datetime | None = None) -> SourceHealth:
    now = now or timezone.now()
    if activity.last_error:
        return SourceHealth("failing", activity.last_error, interval)
    if interval is not None:
        # A source never polled since it was created counts from its creation.
        since = activity.last_success_at or activity.created_at
        if now - since > STALL_INTERVALS * interval:
            return SourceHealth("stalled", f"no successful poll for {span_text(now - since)}; "
                                           f"its schedule polls every {span_text(interval)}", interval)
    elif activity.last_poll_at is not None:
        since = activity.last_success_at or activity.last_poll_at
        if now - since > UNSCHEDULED_STALL:
            return SourceHealth("stalled", f"no successful poll for {span_text(now - since)}", interval)
    if activity.last_poll_at is None:
        return SourceHealth("idle", "not polled yet", interval)
    return SourceHealth("ok", "", interval)


def span_text(delta: timedelta) -> str:
    """A rough length of time for people: "7 min", "5 h", "3 days"."""
    minutes = int(delta.total_seconds() // 60)
    if minutes < 120:
        return f"{minutes} min"
    if minutes < 48 * 60:
        return f"{minutes // 60} h"
    return f"{minutes // (24 * 60)} days"


def source_types() -> list[str]:
    """Activity types that read (Read Email, and the sources of any later connector)."""
    return [kind.key for connector in all_connectors() for kind in connector.activity_types if kind.role == "source"]


def attach_health(activities: Iterable[Activity]) -> list[Activity]:
    """Set ``activity.health`` (a SourceHealth) on each source activity, with one query for all.

    A source polled by several operations is judged by its most frequent schedule.
    """
    activities = list(activities)
    intervals: dict[int, timedelta] = {}
    for operation in Operation.objects.filter(source__in=activities, enabled=True).exclude(
        schedule=Operation.Schedule.NONE
    ):
        period = schedule_period(operation)
        if period is not None and (operation.source_id not in intervals or period < intervals[operation.source_id]):
            intervals[operation.source_id] = period
    now = timezone.now()
    for activity in activities:
        activity.health = source_health(activity, intervals.get(activity.pk), now)
    return activities


def team_sources(team: Team) -> list[Activity]:
    """Every source activity of the team, with its health attached."""
    activities = (
        Activity.objects.filter(project__team=team, type__in=source_types())
        .select_related("project", "connection")
        .order_by("project__name", "name")
    )
    return attach_health(activities)
