"""Saving a connection from any entry point (form, project file) with one set of rules."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from designer.models import Connection


def _flatten(value: Any, prefix: str = "") -> dict[str, Any]:
    if isinstance(value, Mapping):
        flat: dict[str, Any] = {}
        for key, item in value.items():
            flat.update(_flatten(item, f"{prefix}.{key}" if prefix else str(key)))
        return flat
    return {prefix: value}


def changed_fields(connection: Connection, name: str, description: str, config: dict[str, Any],
                   secrets: Mapping[str, str] | None) -> list[str]:
    """Which fields an update changes, by dotted name; secrets are named, never valued."""
    changed = []
    if connection.name != name:
        changed.append("name")
    if connection.description != description:
        changed.append("description")
    before, after = _flatten(connection.config), _flatten(config)
    changed += sorted(k for k in before.keys() | after.keys() if before.get(k) != after.get(k))
    if secrets is not None:
        stored = connection.get_secrets() if connection.secrets_token else {}
        changed += sorted(f"secret {k}" for k in stored.keys() | secrets.keys() if stored.get(k) != secrets.get(k))
    return changed


def rebinding_changes(connection: Connection, config: Mapping[str, Any]) -> list[str]:
    """What a new config changes in where the connection's secrets go (its connector's rule)."""
    return connection.connector_type.rebinding_changes(connection.config or {}, config)


def apply(connection: Connection, name: str, description: str, config: dict[str, Any],
          secrets: Mapping[str, str] | None) -> list[str]:
    """Set the fields (secrets only when given) and return what changed; the caller validates and saves."""
    changes = changed_fields(connection, name, description, config, secrets)
    if connection.pk is not None and rebinding_changes(connection, config):
        connection.token_cache_token = ""  # tokens were obtained for the old servers: never sent elsewhere
    connection.name = name
    connection.description = description
    connection.config = config
    if secrets is not None:
        connection.set_secrets(dict(secrets))
    return changes
