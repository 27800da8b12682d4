"""Writing the audit log: one call per action, details limited to non-secret facts."""

from __future__ import annotations

import json
from collections.abc import Iterable, Mapping
from typing import Any

from django.db import models

from designer.models import AuditEntry, Team


def record(user: Any, team: Team, action: str, obj: models.Model, details: dict[str, Any] | None = None) -> AuditEntry:
    authenticated = user is not None and getattr(user, "is_authenticated", False)
    return AuditEntry.objects.create(
        team=team,
        user=user if authenticated else None,
        username=user.get_username() if authenticated else "",
        action=action,
        object_type=obj._meta.model_name,
        object_id=obj.pk,
        object_name=str(obj),
        details=details or {},
    )


# A changed text longer than this is kept shortened: the log says what changed, it is not a backup.
MAX_SHOWN_CHARS = 200


def changes(before: Mapping[str, Any], after: Mapping[str, Any], hidden: Iterable[str] = ()) -> dict[str, Any]:
    """The details of a "changed" entry: which fields changed and from what to what; a ``hidden``
    field (a secret) is only named. Empty when nothing changed."""
    hidden = set(hidden)
    # A setting left out and one saved empty read the same to a person: not a change.
    names = sorted(k for k in before.keys() | after.keys()
                   if before.get(k) != after.get(k) and not (_blank(before.get(k)) and _blank(after.get(k))))
    if not names:
        return {}
    shown = {name: {"from": _shown(before.get(name)), "to": _shown(after.get(name))}
             for name in names if name not in hidden}
    return {"fields": names, **({"changes": shown} if shown else {})}


def _blank(value: Any) -> bool:
    return value is None or value == ""


def flatten(value: Any, prefix: str = "") -> dict[str, Any]:
    """Nested settings as one level of dotted names, so a change names the very setting."""
    if isinstance(value, Mapping):
        flat: dict[str, Any] = {}
        for key, item in value.items():
            flat.update(flatten(item, f"{prefix}.{key}" if prefix else str(key)))
        return flat
    return {prefix: value}


def _shown(value: Any) -> Any:
    try:
        json.dumps(value)
    except (TypeError, ValueError):
        value = str(value)
    if isinstance(value, str) and len(value) > MAX_SHOWN_CHARS:
        return value[:MAX_SHOWN_CHARS] + "…"
    return value


def history(obj: models.Model, limit: int = 50) -> models.QuerySet[AuditEntry]:
    return AuditEntry.objects.filter(object_type=obj._meta.model_name, object_id=obj.pk)[:limit]


# What the Activity page offers to filter by: object types as people call them.
OBJECT_TYPES = {"connection": "Connections", "activity": "Activities", "operation": "Operations",
                "workflow": "Workflows", "variable": "Variables", "membership": "Members", "project": "Projects",
                "agentgroup": "Agent groups", "imported": "Imports"}


def team_entries(team: Team, object_type: str = "", username: str = "") -> models.QuerySet[AuditEntry]:
    """The team's audit trail, newest first, optionally of one object type and one person
    (``-`` for what no person did: the command line)."""
    entries = AuditEntry.objects.filter(team=team)
    if object_type == "imported":  # not a type: what project files brought, whatever the object
        entries = entries.filter(action="imported")
    elif object_type:
        entries = entries.filter(object_type=object_type)
    if username:
        entries = entries.filter(username="" if username == "-" else username)
    return entries


def people(team: Team) -> list[str]:
    return sorted(set(AuditEntry.objects.filter(team=team).values_list("username", flat=True)) - {""})
