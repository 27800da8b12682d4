"""Restoring an operation or an activity to a version of its design history.

A restore is one more saved change (audited, and itself a version), so it can be undone the same
way. A reference whose object is gone, or a name another object took since, keeps today's value and
is named in the answer.
"""

from __future__ import annotations

from datetime import timedelta
from typing import Any

from django.db import transaction

from connectors.base import ConfigError
from designer.authoring import canvas as design
from designer.authoring import versions
from designer.models import Activity, Connection, DesignVersion, Operation
from designer.teams import audit


def restore(version: DesignVersion, user: Any) -> list[str]:
    """Bring the version's object back to it; return what could not be brought back."""
    if version.object_type == "operation":
        operation = Operation.objects.select_related("project").get(pk=version.object_id)
        return _restore_operation(operation, version.data, user)
    activity = Activity.objects.select_related("project", "connection").get(pk=version.object_id)
    return _restore_activity(activity, version.data, user)


def _restore_operation(operation: Operation, data: dict[str, Any], user: Any) -> list[str]:
    changes, kept = {}, []
    for name in versions.OPERATION_FIELDS:
        if name not in data:
            continue
        value, field = data[name], Operation._meta.get_field(name)
        if field.is_relation and value is not None:
            target = field.related_model.objects.filter(pk=value["id"], project=operation.project_id).first()
            if target is None:
                kept.append(f"{name}: {value['name']} no longer exists")
                continue
            value = target
        elif name == "timeout":
            value = timedelta(seconds=value)
        changes[name] = value
    if operation.project.operations.exclude(pk=operation.pk).filter(name=changes.get("name")).exists():
        kept.append(f"name: another operation is called {changes.pop('name')} now")
    design.save_operation(operation, operation.version, changes, user)
    return kept


def _restore_activity(activity: Activity, data: dict[str, Any], user: Any) -> list[str]:
    kept = []
    before = versions.snapshot(activity)
    shown_before = {"name": activity.name, "connection": str(activity.connection), "settings": activity.settings}
    connection = Connection.objects.filter(pk=data["connection"]["id"], team=activity.project.team_id).first()
    if connection is None:
        kept.append(f"connection: {data['connection']['name']} no longer exists")
    else:
        activity.connection = connection
    if activity.project.activities.exclude(pk=activity.pk).filter(name=data["name"]).exists():
        kept.append(f"name: another activity is called {data['name']} now")
    else:
        activity.name = data["name"]
    try:
        activity.connection.connector_type.parse_activity_settings(activity.type, data["settings"])
    except ConfigError as exc:
        raise ValueError(f"that version's settings are no longer valid: {exc}") from None
    activity.settings = data["settings"]
    with transaction.atomic():
        activity.save()
        shown_after = {"name": activity.name, "connection": str(activity.connection), "settings": activity.settings}
        audit.record(user, activity.project.team, "changed", activity,
                     audit.changes(audit.flatten(shown_before), audit.flatten(shown_after)))
        versions.record(activity, user, before)
    return kept
