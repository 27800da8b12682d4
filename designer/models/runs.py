from __future__ import annotations

from django.db import models

from designer.models.connections import Connection
from designer.models.operations import Operation


class Run(models.Model):
    """One execution of an operation."""

    class Trigger(models.TextChoices):
        MANUAL = "manual", "Run now"
        SCHEDULE = "schedule", "Schedule"
        CHAINED = "chained", "Chained"
        COMMAND = "command", "Command line"
        REPLAY = "replay", "Replay"

    class Status(models.TextChoices):
        QUEUED = "queued", "Queued"
        RUNNING = "running", "Running"
        SUCCEEDED = "succeeded", "Succeeded"
        PARTIAL = "partial", "Partial"
        FAILED = "failed", "Failed"
        CANCELLED = "cancelled", "Cancelled"

    FINISHED = (Status.SUCCEEDED, Status.PARTIAL, Status.FAILED, Status.CANCELLED)

    operation = models.ForeignKey(Operation, on_delete=models.CASCADE, related_name="runs")
    trigger = models.CharField(max_length=10, choices=Trigger.choices, default=Trigger.MANUAL)
    parent = models.ForeignKey("self", null=True, blank=True, on_delete=models.SET_NULL, related_name="children")
    # A replay run re-sends exactly this one record, on purpose.
    replay_of = models.ForeignKey("RunRecord", null=True, blank=True, on_delete=models.SET_NULL, related_name="+")
    status = models.CharField(max_length=10, choices=Status.choices, default=Status.QUEUED)
    queued_at = models.DateTimeField(auto_now_add=True)
    started_at = models.DateTimeField(null=True, blank=True)
    finished_at = models.DateTimeField(null=True, blank=True)
    read_count = models.PositiveIntegerField(default=0)
    sent_count = models.PositiveIntegerField(default=0)
    skipped_count = models.PositiveIntegerField(default=0)
    failed_count = models.PositiveIntegerField(default=0)
    message = models.TextField(blank=True)
    cancel_requested = models.BooleanField(default=False)
    worker = models.CharField(max_length=200, blank=True)

    class Meta:
        ordering = ["-id"]
        indexes = [
            models.Index(fields=["operation", "-id"], name="run_by_operation"),
            models.Index(fields=["status", "-id"], name="run_by_status"),
            models.Index(fields=["queued_at"], name="run_by_queued_at"),
            # A team's history filtered by status or by dates, and its chart's days: a seek per
            # operation of the team, never a walk through other teams' runs.
            models.Index(fields=["operation", "status", "-id"], name="run_by_operation_status"),
            models.Index(fields=["operation", "queued_at"], name="run_by_operation_queued"),
        ]

    def __str__(self) -> str:
        return f"Run {self.pk} of {self.operation} ({self.status})"

    @property
    def finished(self) -> bool:
        return self.status in self.FINISHED

    @property
    def worker_host(self) -> str:
        """The host of the worker that ran it (``worker`` is "host:pid")."""
        return self.worker.rpartition(":")[0] or self.worker

    @property
    def worker_process(self) -> str:
        return self.worker.rpartition(":")[2] if ":" in self.worker else "?"


class LedgerEntry(models.Model):
    """The delivery ledger: one row per source record per connection, written before each side effect.

    Keyed by (operation, connection, scope, epoch, position) — for Email (folder, UIDVALIDITY, UID) — with
    ``identity`` (the Message-ID) to recognise a record renumbered by a UIDVALIDITY change.
    """

    class State(models.TextChoices):
        SENDING = "sending", "Sending"  # written before the target is asked
        SENT = "sent", "Sent"  # the target accepted it; the source is not acknowledged yet
        ACKNOWLEDGED = "acknowledged", "Acknowledged"  # after-read action done
        FAILED = "failed", "Failed permanently"  # refused by the target; only a replay sends it again
        SKIPPED = "skipped", "Skipped"  # by the condition, or unreadable
        RETRY = "retry", "Transient failure"  # to be tried again by a later run
        # Sent, but no reply after the final dot: never resent in the same run, and later only
        # under the same Message-ID.
        IN_DOUBT = "in_doubt", "In doubt"
        # Failed for a reason of its own (its content, the mapping) in QUARANTINE_RUNS runs: kept
        # aside with the reason so the mailbox keeps flowing; a replay sends it after a fix.
        QUARANTINED = "quarantined", "Quarantined"

    connection = models.ForeignKey(Connection, on_delete=models.CASCADE, related_name="+")
    scope = models.CharField(max_length=500)
    epoch = models.BigIntegerField()
    position = models.BigIntegerField()
    identity = models.CharField(max_length=998, blank=True)
    state = models.CharField(max_length=12, choices=State.choices)
    operation = models.ForeignKey(Operation, null=True, on_delete=models.SET_NULL, related_name="+")
    out_message_id = models.CharField(max_length=998, blank=True)
    reply = models.TextField(blank=True)
    error = models.TextField(blank=True)
    attempts = models.PositiveIntegerField(default=0)
    # Runs in which this message failed for a reason of its own (see State.QUARANTINED).
    poison_runs = models.PositiveIntegerField(default=0)
    created_at = models.DateTimeField(auto_now_add=True)
    updated_at = models.DateTimeField(auto_now=True)

    class Meta:
        # Per operation: two operations reading one folder (after-read "leave") each deliver its messages.
        constraints = [
            models.UniqueConstraint(fields=["operation", "connection", "scope", "epoch", "position"],
                                    name="ledger_source_key"),
        ]
        indexes = [models.Index(fields=["operation", "connection", "scope", "identity"], name="ledger_by_identity")]
        verbose_name_plural = "ledger entries"

    def __str__(self) -> str:
        return f"{self.scope}/{self.epoch}/{self.position} {self.state}"


class RunRecord(models.Model):
    """One message a run handled: the history's per-message row."""

    class Status(models.TextChoices):
        SENT = "sent", "Sent"
        ACKNOWLEDGED = "acknowledged", "Acknowledged (sent earlier)"
        SKIPPED = "skipped", "Skipped"
        FAILED = "failed", "Failed"
        RETRY = "retry", "Will retry"
        IN_DOUBT = "in_doubt", "In doubt"
        QUARANTINED = "quarantined", "Quarantined"

    run = models.ForeignKey(Run, on_delete=models.CASCADE, related_name="records")
    ledger = models.ForeignKey(LedgerEntry, null=True, blank=True, on_delete=models.SET_NULL, related_name="records")
    position = models.BigIntegerField(null=True)
    identity = models.CharField(max_length=998, blank=True)
    subject = models.TextField(blank=True)
    sender = models.TextField(blank=True)
    recipients = models.TextField(blank=True)
    # What the target was given: the rendered recipients and subject (secret variables masked).
    delivered_to = models.TextField(blank=True)
    delivered_subject = models.TextField(blank=True)
    status = models.CharField(max_length=12, choices=Status.choices)
    error = models.TextField(blank=True)
    # The rendered message, kept only while the operation's debug mode is on (secrets redacted).
    rendered = models.JSONField(null=True, blank=True)
    replayed = models.BooleanField(default=False)
    created_at = models.DateTimeField(auto_now_add=True)

    class Meta:
        ordering = ["id"]

    def __str__(self) -> str:
        return f"{self.subject[:50]} ({self.status})"


class RunLog(models.Model):
    run = models.ForeignKey(Run, on_delete=models.CASCADE, related_name="logs")
    at = models.DateTimeField(auto_now_add=True)
    level = models.CharField(max_length=8, default="info")
    text = models.TextField()

    class Meta:
        ordering = ["id"]

    def __str__(self) -> str:
        return self.text[:80]


class Lease(models.Model):
    """A lock in the database that any worker on any host can see, and that expires if its holder dies."""

    key = models.CharField(max_length=300, unique=True)
    holder = models.CharField(max_length=200)
    expires_at = models.DateTimeField()
    # Fencing token: a new value at every acquisition, so a copy of the same run that lost the lease
    # (redelivered, or stalled past its expiry) cannot write as if it still held it.
    token = models.CharField(max_length=32, default="")

    def __str__(self) -> str:
        return f"{self.key} held by {self.holder}"
