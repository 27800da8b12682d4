"""Writing the audit log: one call per action, details limited to non-secret facts."""

from __future__ import annotations

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


def history(obj: models.Model, limit: int = 50) -> models.QuerySet[AuditEntry]:
    return AuditEntry.objects.filter(object_type=obj._meta.model_name, object_id=obj.pk)[:limit]
