from __future__ import annotations

import json
from typing import Any

from django.conf import settings
from django.db import models

from designer.models.teams import Team


class AuditEntry(models.Model):
    """Who did what to which object, and when. Details never hold a secret, only which fields changed."""

    team = models.ForeignKey(Team, on_delete=models.CASCADE, related_name="audit_entries")
    user = models.ForeignKey(
        settings.AUTH_USER_MODEL, null=True, blank=True, on_delete=models.SET_NULL, related_name="+"
    )
    # Kept as text so the entry outlives a deleted user or object.
    username = models.CharField(max_length=150, blank=True)
    action = models.CharField(max_length=20)  # created, changed, deleted, tested, imported, rotated
    object_type = models.CharField(max_length=40)
    object_id = models.BigIntegerField(null=True)
    object_name = models.CharField(max_length=200)
    details = models.JSONField(default=dict, blank=True)
    created_at = models.DateTimeField(auto_now_add=True, db_index=True)

    class Meta:
        ordering = ["-created_at", "-id"]
        indexes = [models.Index(fields=["object_type", "object_id", "-created_at"], name="audit_by_object")]
        verbose_name_plural = "audit entries"

    def __str__(self) -> str:
        return f"{self.username or 'system'} {self.action} {self.object_type} {self.object_name}"

    @property
    def change_lines(self) -> list[str]:
        return change_lines(self.details)


def change_lines(details: dict[str, Any]) -> list[str]:
    """Each changed field of ``audit.changes`` details in words: from what to what, or only "changed"
    for a secret."""
    shown = details.get("changes") or {}
    lines = []
    for name in details.get("fields") or []:
        change = shown.get(name)
        if change is None:
            lines.append(f"{name} changed")
        else:
            lines.append(f"{name}: {_word(change.get('from'))} → {_word(change.get('to'))}")
    return lines


def _word(value: Any) -> str:
    if value in (None, ""):
        return "(empty)"
    return value if isinstance(value, str) else json.dumps(value, ensure_ascii=False)
