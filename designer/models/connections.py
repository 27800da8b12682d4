from __future__ import annotations

import logging
from typing import Any

from django.conf import settings
from django.db import models
from django.db.models import Q

from connectors.base import Connector, Secrets, get_connector
from designer.crypto import SecretsUnreadable, decrypt_secrets, encrypt_secrets
from designer.models.teams import Project, Team, validate_object_name

logger = logging.getLogger(__name__)


class Connection(models.Model):
    """One configured account of a connector. Team connections have no project.

    ``config`` holds the connector's settings (never a secret); ``secrets_token`` holds the
    secrets as one encrypted token, decrypted only when the connection is used.
    ``token_cache_token`` holds, encrypted the same way, what the connector keeps between uses
    (OAuth access and refresh tokens); a column of its own, so that a token refreshed by a run
    never overwrites secrets an admin saves at the same moment.
    """

    team = models.ForeignKey(Team, on_delete=models.CASCADE, related_name="connections")
    project = models.ForeignKey(
        Project, null=True, blank=True, on_delete=models.CASCADE, related_name="connections"
    )
    connector = models.CharField(max_length=40, default="email")
    name = models.CharField(max_length=100, validators=[validate_object_name])
    description = models.TextField(blank=True)
    config = models.JSONField(default=dict)
    secrets_token = models.TextField(blank=True, editable=False)
    token_cache_token = models.TextField(blank=True, editable=False)
    created_by = models.ForeignKey(
        settings.AUTH_USER_MODEL, null=True, blank=True, on_delete=models.SET_NULL, related_name="+"
    )
    created_at = models.DateTimeField(auto_now_add=True)
    updated_at = models.DateTimeField(auto_now=True)

    class Meta:
        constraints = [
            models.UniqueConstraint(
                fields=["team", "name"], condition=Q(project__isnull=True), name="team_connection_name_unique"
            ),
            models.UniqueConstraint(fields=["project", "name"], name="project_connection_name_unique"),
        ]
        ordering = ["name"]

    def __str__(self) -> str:
        return self.name

    @property
    def is_team_connection(self) -> bool:
        return self.project_id is None

    @property
    def connector_type(self) -> Connector:
        return get_connector(self.connector)

    def parsed_config(self) -> Any:
        return self.connector_type.parse_config(self.config)

    def get_secrets(self) -> Secrets:
        """The decrypted secrets, with this connection's encrypted token store (once it is saved)."""
        store = ConnectionTokenStore(self.pk) if self.pk else None
        return Secrets(decrypt_secrets(self.secrets_token), token_store=store)

    def set_secrets(self, values: dict[str, str]) -> None:
        self.secrets_token = encrypt_secrets({k: v for k, v in values.items() if v})

    def dependents(self) -> list[str]:
        """Names of what uses this connection; a connection in use cannot be deleted."""
        return [f"{a.project.name} / {a.name}" for a in self.activities.select_related("project")]


class ConnectionTokenStore:
    """A connection's ``TokenStore``: its ``token_cache_token`` column, read fresh on every load.

    Fresh because another worker may have refreshed the tokens since this object was loaded;
    written with ``update()`` so nothing else of the row (nor ``updated_at``) is touched.
    """

    def __init__(self, connection_id: int) -> None:
        self.connection_id = connection_id

    def load(self) -> str:
        token = Connection.objects.filter(pk=self.connection_id).values_list("token_cache_token", flat=True).first()
        if not token:
            return ""
        try:
            return decrypt_secrets(token).get("cache", "")
        except SecretsUnreadable:
            # Tokens can be obtained again (a browser sign-in by signing in again): start afresh.
            logger.warning("token cache of connection %s is unreadable; ignored", self.connection_id)
            return ""

    def save(self, value: str) -> None:
        token = encrypt_secrets({"cache": value}) if value else ""
        Connection.objects.filter(pk=self.connection_id).update(token_cache_token=token)


class ConnectionCheck(models.Model):
    """One press of Test: queued for a worker, which fills in the steps."""

    class Status(models.TextChoices):
        QUEUED = "queued", "Queued"
        RUNNING = "running", "Running"
        PASSED = "passed", "Connection Success"
        FAILED = "failed", "Failed"

    # A saved connection's test; None for a test of the connection form's unsaved settings (a draft).
    connection = models.ForeignKey(Connection, null=True, blank=True, on_delete=models.CASCADE, related_name="checks")
    # A draft's team, settings and secrets (encrypted like a connection's, and wiped once tested).
    team = models.ForeignKey(Team, null=True, blank=True, on_delete=models.CASCADE, related_name="+")
    draft_connector = models.CharField(max_length=40, blank=True)
    draft_config = models.JSONField(null=True, blank=True)
    draft_secrets_token = models.TextField(blank=True, editable=False)
    requested_by = models.ForeignKey(
        settings.AUTH_USER_MODEL, null=True, blank=True, on_delete=models.SET_NULL, related_name="+"
    )
    status = models.CharField(max_length=10, choices=Status.choices, default=Status.QUEUED)
    steps = models.JSONField(default=list)
    created_at = models.DateTimeField(auto_now_add=True)
    finished_at = models.DateTimeField(null=True, blank=True)

    class Meta:
        ordering = ["-created_at"]

    def __str__(self) -> str:
        return f"Test of {self.connection or 'unsaved settings'} ({self.status})"

    @property
    def is_draft(self) -> bool:
        return self.connection_id is None

    def tested_connection(self) -> Connection:
        """What is tested: the saved connection, or one built in memory from the draft."""
        if self.connection is not None:
            return self.connection
        return Connection(team=self.team, connector=self.draft_connector, config=self.draft_config or {},
                          secrets_token=self.draft_secrets_token)

    @property
    def done(self) -> bool:
        return self.status in (self.Status.PASSED, self.Status.FAILED)
