from __future__ import annotations

from datetime import timedelta

from django.conf import settings
from django.db import models

from designer.models.activities import Activity
from designer.models.teams import Project, validate_object_name

DEFAULT_TIMEOUT = timedelta(hours=2)
MAX_DEBUG_AHEAD = timedelta(days=14)


class Workflow(models.Model):
    """A tab of the canvas: a named group of a project's operations."""

    project = models.ForeignKey(Project, on_delete=models.CASCADE, related_name="workflows")
    name = models.CharField(max_length=100, validators=[validate_object_name])
    position = models.PositiveIntegerField(default=0)

    class Meta:
        constraints = [models.UniqueConstraint(fields=["project", "name"], name="workflow_name_unique_in_project")]
        ordering = ["position", "id"]

    def __str__(self) -> str:
        return self.name


class Operation(models.Model):
    """Source activity -> mapping (+ condition) -> target activity, with its options and actions."""

    class Schedule(models.TextChoices):
        NONE = "none", "Not scheduled"
        INTERVAL = "interval", "Every N minutes"
        CRON = "cron", "Cron expression"

    class LogLevel(models.TextChoices):
        EVERYTHING = "everything", "Everything"
        ERRORS = "errors", "Errors only"

    class Notify(models.TextChoices):
        NEVER = "never", "Never"
        FAILURE = "failure", "On failure"
        ALWAYS = "always", "After every run"

    project = models.ForeignKey(Project, on_delete=models.CASCADE, related_name="operations")
    workflow = models.ForeignKey(Workflow, null=True, blank=True, on_delete=models.SET_NULL, related_name="operations")
    name = models.CharField(max_length=100, validators=[validate_object_name])
    position = models.PositiveIntegerField(default=0)
    source = models.ForeignKey(Activity, null=True, blank=True, on_delete=models.SET_NULL, related_name="+")
    target = models.ForeignKey(Activity, null=True, blank=True, on_delete=models.SET_NULL, related_name="+")
    # target field -> template, e.g. {"subject": "Fwd: {{ subject }}"}
    mapping = models.JSONField(default=dict, blank=True)
    condition = models.TextField(blank=True)
    enabled = models.BooleanField(default=True)
    schedule = models.CharField(max_length=10, choices=Schedule.choices, default=Schedule.NONE)
    interval_minutes = models.PositiveIntegerField(null=True, blank=True)
    cron = models.CharField(max_length=120, blank=True)
    timezone = models.CharField(max_length=64, default="UTC")
    timeout = models.DurationField(default=DEFAULT_TIMEOUT)
    retries = models.PositiveSmallIntegerField(default=2, help_text="Attempts again after a transient failure")
    retry_backoff_seconds = models.PositiveIntegerField(default=2)
    log_level = models.CharField(max_length=12, choices=LogLevel.choices, default=LogLevel.EVERYTHING)
    debug_until = models.DateTimeField(null=True, blank=True)
    on_success = models.ForeignKey("self", null=True, blank=True, on_delete=models.SET_NULL, related_name="+")
    on_failure = models.ForeignKey("self", null=True, blank=True, on_delete=models.SET_NULL, related_name="+")
    notify = models.CharField(max_length=10, choices=Notify.choices, default=Notify.NEVER)
    notify_activity = models.ForeignKey(Activity, null=True, blank=True, on_delete=models.SET_NULL, related_name="+")
    notify_to = models.CharField(max_length=500, blank=True)
    # Where its runs go: a group's workers only; none, the default queue that every plain worker serves.
    agent_group = models.ForeignKey("designer.AgentGroup", null=True, blank=True, on_delete=models.PROTECT,
                                    related_name="operations")
    # Bumped on every save; an editor saving an older version gets a conflict, not a silent overwrite.
    version = models.PositiveIntegerField(default=1)
    created_at = models.DateTimeField(auto_now_add=True)
    updated_at = models.DateTimeField(auto_now=True)

    class Meta:
        constraints = [models.UniqueConstraint(fields=["project", "name"], name="operation_name_unique_in_project")]
        ordering = ["position", "id"]

    def __str__(self) -> str:
        return self.name

    @property
    def time_limit(self) -> timedelta:
        """The timeout a run keeps: the operation's, within the installation's cap (a project file or an
        older installation may carry a longer one), which the broker's redelivery time is checked against."""
        return min(self.timeout, timedelta(minutes=settings.MAILWRIGHT_MAX_OPERATION_MINUTES))
