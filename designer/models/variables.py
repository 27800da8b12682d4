from __future__ import annotations

import re

from django.core.exceptions import ValidationError
from django.db import models

from designer.crypto import decrypt_secrets, encrypt_secrets
from designer.models.teams import Project

MAX_VALUE_CHARS = 10_000
_IDENTIFIER = re.compile(r"^[A-Za-z_][A-Za-z0-9_]*$")


def validate_variable_name(value: str) -> None:
    """Templates reach a variable as ``vars.NAME``, so its name must be an identifier."""
    if not _IDENTIFIER.match(value or ""):
        raise ValidationError("Use letters, digits and _ only, not starting with a digit (e.g. helpdesk_address).")


class Variable(models.Model):
    """A project variable: ``{{ vars.NAME }}`` in any mapping, condition or activity field.

    A secret one keeps its value only in ``value_token``, encrypted like a connection's secrets.
    """

    project = models.ForeignKey(Project, on_delete=models.CASCADE, related_name="variable_set")
    name = models.CharField(max_length=64, validators=[validate_variable_name])
    value = models.TextField(blank=True, max_length=MAX_VALUE_CHARS)
    secret = models.BooleanField(default=False)
    value_token = models.TextField(blank=True, editable=False)
    description = models.CharField(max_length=300, blank=True)
    created_at = models.DateTimeField(auto_now_add=True)
    updated_at = models.DateTimeField(auto_now=True)

    class Meta:
        constraints = [models.UniqueConstraint(fields=["project", "name"], name="variable_name_unique_in_project")]
        ordering = ["name"]

    def __str__(self) -> str:
        return self.name

    def get_value(self) -> str:
        return decrypt_secrets(self.value_token).get("value", "") if self.secret else self.value

    def set_value(self, value: str, *, secret: bool) -> None:
        self.secret = secret
        self.value = "" if secret else value
        self.value_token = encrypt_secrets({"value": value}) if secret else ""
