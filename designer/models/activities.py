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
    # Source health (SPEC §10), written after every poll so a dying trigger is visible.
    last_poll_at = models.DateTimeField(null=True, blank=True)
    last_success_at = models.DateTimeField(null=True, blank=True)
    last_error = models.TextField(blank=True)
    backlog = models.PositiveIntegerField(null=True, blank=True)
    oldest_unread_at = models.DateTimeField(null=True, blank=True)
    # A source's stall warning: sent through a Send Email activity once per stall, and once on recovery.
    stall_notify_activity = models.ForeignKey("self", null=True, blank=True, on_delete=models.SET_NULL,
                                              related_name="+")
    stall_notify_to = models.CharField(max_length=500, blank=True)
    stall_minutes = models.PositiveIntegerField(null=True, blank=True)
    stall_notified_at = models.DateTimeField(null=True, blank=True)
    created_at = models.DateTimeField(auto_now_add=True)
    updated_at = models.DateTimeField(auto_now=True)

    class Meta:
        constraints = [models.UniqueConstraint(fields=["project", "name"], name="activity_name_unique_in_project")]
        ordering = ["name"]

    def __str__(self) -> str:
        return self.name

    @property
    def activity_type(self):
        return self.connection.connector_type.activity_type(self.type)

    @property
    def is_source(self) -> bool:
        return self.activity_type.role == "source"
