"""Design history: every saved change of an operation or an activity kept as a version.

A version holds the design fields as saved (references by id and name, so a later rename or delete
of what they point at is seen) and what changed from the version before. The first change of an
object saved before history was kept also records the state it changed from.
"""

from __future__ import annotations

from typing import Any

from django.db import models

from designer.models import Activity, DesignVersion, Operation
from designer.teams import audit

OPERATION_FIELDS = ("name", "workflow", "source", "target", "mapping", "condition", "enabled", "schedule",
                    "interval_minutes", "cron", "timezone", "timeout", "retries", "retry_backoff_seconds",
                    "log_level", "on_success", "on_failure", "notify", "notify_activity", "notify_to")
ACTIVITY_FIELDS = ("name", "connection", "settings")
FIELDS = {"operation": OPERATION_FIELDS, "activity": ACTIVITY_FIELDS}


def snapshot(obj: Operation | Activity) -> dict[str, Any]:
    """The design fields of ``obj`` as JSON."""
    data = {}
    for name in FIELDS[obj._meta.model_name]:
        value = getattr(obj, name)
        if isinstance(value, models.Model):
            value = {"id": value.pk, "name": str(value)}
        elif hasattr(value, "total_seconds"):
            value = int(value.total_seconds())
        data[name] = value
    return data


def _shown(data: dict[str, Any]) -> dict[str, Any]:
    """Fields as a person reads a change: references by name, settings and mappings by dotted key."""
    plain = {k: v["name"] if isinstance(v, dict) and set(v) == {"id", "name"} else v for k, v in data.items()}
    return audit.flatten(plain)


def record(obj: Operation | Activity, user: Any, before: dict[str, Any] | None = None) -> DesignVersion | None:
    """Keep ``obj`` as saved as a new version (none when nothing changed); ``before`` is its state
    before this save, recorded first when the object has no history yet."""
    kind = obj._meta.model_name
    data = snapshot(obj)
    last = DesignVersion.objects.filter(object_type=kind, object_id=obj.pk).order_by("-number").first()
    if last is None and before is not None and before != data:
        last = DesignVersion.objects.create(project_id=obj.project_id, object_type=kind, object_id=obj.pk,
                                            number=1, data=before)
    if last is not None and last.data == data:
        return None
    authenticated = user is not None and getattr(user, "is_authenticated", False)
    return DesignVersion.objects.create(
        project_id=obj.project_id, object_type=kind, object_id=obj.pk, number=last.number + 1 if last else 1,
        user=user if authenticated else None, username=user.get_username() if authenticated else "",
        data=data, changes=audit.changes(_shown(last.data), _shown(data)) if last else {},
    )


def versions(obj: Operation | Activity, limit: int = 50) -> list[DesignVersion]:
    return list(DesignVersion.objects.filter(object_type=obj._meta.model_name, object_id=obj.pk)
                .order_by("-number")[:limit])
