from __future__ import annotations

from django.conf import settings
from django.db import models

from designer.models.audit import change_lines
from designer.models.teams import Project


class DesignVersion(models.Model):
    """One saved state of an operation or an activity (design history): who, when, what changed."""

    project = models.ForeignKey(Project, on_delete=models.CASCADE, related_name="design_versions")
    object_type = models.CharField(max_length=20)  # "operation" or "activity"
    object_id = models.BigIntegerField()
    number = models.PositiveIntegerField()
    user = models.ForeignKey(settings.AUTH_USER_MODEL, null=True, blank=True, on_delete=models.SET_NULL,
                             related_name="+")
    username = models.CharField(max_length=150, blank=True)
    # The design fields as saved (references as {"id", "name"}), what Restore brings back.
    data = models.JSONField()
    # What changed from the version before, as audit details ({"fields", "changes"}).
    changes = models.JSONField(default=dict, blank=True)
    created_at = models.DateTimeField(auto_now_add=True)

    class Meta:
        ordering = ["-created_at", "-id"]
        constraints = [models.UniqueConstraint(fields=["object_type", "object_id", "number"],
                                               name="one_design_version_number")]

    def __str__(self) -> str:
        return f"{self.object_type} {self.object_id} v{self.number}"

    @property
    def change_lines(self) -> list[str]:
        return change_lines(self.changes)
