"""Stalled-source warnings: a source not polled successfully for longer than its limit
(``health.stall_limit``, the one the sources page judges by) warns the address its activity names,
once per stall, and says so again once it recovers.

Beat runs ``watch`` every minute. Each warning is claimed with a conditional UPDATE before it is
sent, so two beats (or a beat and a slow previous tick) never send the same warning twice.
"""

from __future__ import annotations

import logging
from datetime import datetime

from django.utils import timezone

from designer.history import health
from designer.models import Activity
from designer.running import notices

log = logging.getLogger(__name__)


def watch(now: datetime | None = None) -> int:
    """Send the warnings and recoveries that are due; returns how many notices were sent."""
    now = now or timezone.now()
    watched = (Activity.objects.filter(stall_notify_activity__isnull=False, type__in=health.source_types())
               .exclude(stall_notify_to="").select_related("project", "stall_notify_activity__connection"))
    sent = 0
    for activity in health.attach_health(watched):
        since = health.stalled_since(activity, activity.health.interval, now)
        if since is not None and activity.stall_notified_at is None:
            claimed = Activity.objects.filter(pk=activity.pk, stall_notified_at__isnull=True)
            text = (f"{activity.name} (project {activity.project.name}) has not been polled successfully since "
                    f"{since:%Y-%m-%d %H:%M} UTC ({health.span_text(now - since)}).")
            if activity.last_error:
                text += f"\nLast error: {activity.last_error}"
            if not claimed.update(stall_notified_at=now):
                continue  # another tick claimed it
            if not _tell(activity, "has stalled", text):
                Activity.objects.filter(pk=activity.pk).update(stall_notified_at=None)  # the next tick tries again
                continue
            sent += 1
        elif since is None and activity.stall_notified_at is not None:
            claimed = Activity.objects.filter(pk=activity.pk, stall_notified_at=activity.stall_notified_at)
            text = (f"{activity.name} (project {activity.project.name}) was polled successfully again at "
                    f"{activity.last_success_at:%Y-%m-%d %H:%M} UTC.")
            if not claimed.update(stall_notified_at=None):
                continue
            if not _tell(activity, "has recovered", text):
                Activity.objects.filter(pk=activity.pk).update(stall_notified_at=activity.stall_notified_at)
                continue
            sent += 1
    return sent


def _tell(activity: Activity, what: str, text: str) -> bool:
    problem = notices.send(activity.stall_notify_activity, activity.stall_notify_to,
                           f"[Mailwright] source {activity.name} {what}", text + "\n")
    if problem:
        # Beat's log is where an operator looks for a warning that could not be sent.
        log.warning("stall notice for %s not sent: %s", activity.name, problem)
    return not problem
