from __future__ import annotations

from django.db import models

from designer.models.connections import Connection
from designer.models.teams import Project, validate_object_name


class Activity(models.Model):
    """A configured use of a connection in a project: a source (Read Email) or a target (Send Email)."""

    project = models.ForeignKey(Project, on_delete=models.CASCADE, related_name="activities")
    # PROTECT: a connection in use cannot disappear from under its activities.
    connection = models.ForeignKey(Connection, on_delete=models.PROTECT, related_name="activities")
    type = models.CharField(max_length=40)
    name = models.CharField(max_length=100, validators=[validate_object_name])
    settings = models.JSONField(default=dict)
    created_at = models.DateTimeField(auto_now_add=True)
    updated_at = models.DateTimeField(auto_now=True)

    class Meta:
        constraints = [models.UniqueConstraint(fields=["project", "name"], name="activity_name_unique_in_project")]
        ordering = ["name"]

    def __str__(self) -> str:
        return self.name
