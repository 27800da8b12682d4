"""Source health: when each Read Email activity last polled, its backlog, and whether it is stalled."""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass
from datetime import datetime, timedelta
from zoneinfo import ZoneInfo

from celery.schedules import crontab
from django.utils import timezone

from connectors.base import all_connectors
from designer.models import Activity, Operation, Team

# A source is stalled after the minutes it sets itself, else after this many missed polls of its schedule...
STALL_INTERVALS = 3
# ...or, when neither says but it has been polled before, after this long without success.
UNSCHEDULED_STALL = timedelta(days=1)


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


def stall_limit(activity: Activity, interval: timedelta | None) -> timedelta | None:
    """How long the source may go without a successful poll: its own setting ("Warn when stalled"),
    else ``STALL_INTERVALS`` of its schedule's intervals; None when neither says."""
    if activity.stall_minutes:
        return timedelta(minutes=activity.stall_minutes)
    return STALL_INTERVALS * interval if interval else None


def stalled_since(activity: Activity, interval: timedelta | None, now: datetime) -> datetime | None:
    """Since when the source has had no successful poll, when that is longer than its ``stall_limit``
    (a source never polled since it was created counts from its creation)."""
    allowed = stall_limit(activity, interval)
    return _stalled_since(activity, allowed, now) if allowed is not None else None


def _stalled_since(activity: Activity, allowed: timedelta, now: datetime) -> datetime | None:
    since = activity.last_success_at or activity.created_at
    return since if now - since > allowed else None


def source_health(activity: Activity, interval: timedelta | None, now: datetime | None = None) -> SourceHealth:
    now = now or timezone.now()
    if activity.last_error:
        return SourceHealth("failing", activity.last_error, interval)
    allowed = stall_limit(activity, interval)
    if allowed is not None:
        since = _stalled_since(activity, allowed, now)
        if since is not None:
            polls = f"; its schedule polls every {span_text(interval)}" if interval else ""
            return SourceHealth("stalled", f"no successful poll for {span_text(now - since)}{polls}", interval)
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
