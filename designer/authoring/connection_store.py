"""Saving a connection from any entry point (form, project file) with one set of rules."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from designer.models import Connection
from designer.teams import audit


def changed_fields(connection: Connection, name: str, description: str, config: dict[str, Any],
                   secrets: Mapping[str, str] | None) -> dict[str, Any]:
    """The audit details of an update: which fields change, by dotted name, from what to what;
    a secret is named ("secret password"), never valued."""
    before = {"name": connection.name, "description": connection.description, **audit.flatten(connection.config)}
    after = {"name": name, "description": description, **audit.flatten(config)}
    details = audit.changes(before, after)
    if secrets is not None:
        stored = connection.get_secrets() if connection.secrets_token else {}
        changed = sorted(f"secret {k}" for k in stored.keys() | secrets.keys() if stored.get(k) != secrets.get(k))
        if changed:
            details = {**details, "fields": [*details.get("fields", []), *changed]}
    return details


def rebinding_changes(connection: Connection, config: Mapping[str, Any]) -> list[str]:
    """What a new config changes in where the connection's secrets go (its connector's rule)."""
    return connection.connector_type.rebinding_changes(connection.config or {}, config)


def apply(connection: Connection, name: str, description: str, config: dict[str, Any],
          secrets: Mapping[str, str] | None) -> dict[str, Any]:
    """Set the fields (secrets only when given) and return what changed (audit details, empty when
    nothing did); the caller validates and saves."""
    changes = changed_fields(connection, name, description, config, secrets)
    if connection.pk is not None and rebinding_changes(connection, config):
        connection.token_cache_token = ""  # tokens were obtained for the old servers: never sent elsewhere
    connection.name = name
    connection.description = description
    connection.config = config
    if secrets is not None:
        connection.set_secrets(dict(secrets))
    return changes
