"""Operation schedules, kept as django-celery-beat periodic tasks so beat picks changes up live."""

from __future__ import annotations

import json
import zoneinfo

from celery.schedules import crontab
from django_celery_beat.models import CrontabSchedule, IntervalSchedule, PeriodicTask

from designer.models import Operation


def validate_cron(expression: str) -> list[str]:
    """Problems of a five-field cron expression (minute hour day-of-month month day-of-week)."""
    fields = expression.split()
    if len(fields) != 5:
        return ["must have five fields: minute hour day-of-month month day-of-week"]
    minute, hour, day_of_month, month, day_of_week = fields
    try:
        crontab(minute=minute, hour=hour, day_of_month=day_of_month, month_of_year=month, day_of_week=day_of_week)
    except (ValueError, TypeError) as exc:
        return [f"is not a valid cron expression: {exc}"]
    return []


def validate_timezone(name: str) -> list[str]:
    try:
        zoneinfo.ZoneInfo(name)
    except (zoneinfo.ZoneInfoNotFoundError, ValueError):
        return [f"{name!r} is not a known time zone (e.g. Europe/Paris, UTC)"]
    return []


def task_name(operation: Operation) -> str:
    return f"mailwright-operation-{operation.pk}"


def sync(operation: Operation) -> None:
    """Make beat's periodic task match the operation's schedule (or remove it)."""
    name = task_name(operation)
    if not operation.enabled or operation.schedule == Operation.Schedule.NONE:
        PeriodicTask.objects.filter(name=name).delete()
        return
    fields = {"interval": None, "crontab": None}
    if operation.schedule == Operation.Schedule.INTERVAL:
        fields["interval"], _ = IntervalSchedule.objects.get_or_create(
            every=operation.interval_minutes or 5, period=IntervalSchedule.MINUTES
        )
    else:
        minute, hour, day_of_month, month, day_of_week = operation.cron.split()
        fields["crontab"], _ = CrontabSchedule.objects.get_or_create(
            minute=minute, hour=hour, day_of_month=day_of_month, month_of_year=month, day_of_week=day_of_week,
            timezone=operation.timezone,
        )
    PeriodicTask.objects.update_or_create(
        name=name,
        defaults={"task": "designer.tasks.run_scheduled", "args": json.dumps([operation.pk]), "enabled": True,
                  **fields},
    )
