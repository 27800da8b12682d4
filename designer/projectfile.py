"""The project file (SPEC §8): export a project to one JSON document and import it back.

Import validates the whole file first and reports every problem with its path
(``connections[0].imap.port: must be between 1 and 65535``); only a clean file is applied, in
one transaction, matching existing objects by name so importing twice changes nothing.
Secrets are never exported; on import each is a literal string or ``{"env": "VAR_NAME"}``.
"""

from __future__ import annotations

import json
import os
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

from django.core.exceptions import ValidationError
from django.db import transaction

from connectors.base import ConfigError, get_connector
from designer import audit, connection_store
from designer.models import Connection, Project, Team, validate_object_name

FORMAT = "mailwright.project/1"


class ProjectFileError(Exception):
    def __init__(self, errors: list[str]) -> None:
        super().__init__("\n".join(errors))
        self.errors = errors


def loads(text: str | bytes) -> Any:
    """Parse JSON, naming line and column when it is broken."""
    if isinstance(text, bytes):
        try:
            text = text.decode("utf-8-sig")
        except UnicodeDecodeError as exc:
            raise ProjectFileError([f"the file is not UTF-8 text (byte {exc.start})"]) from None
    try:
        return json.loads(text)
    except json.JSONDecodeError as exc:
        raise ProjectFileError([f"line {exc.lineno} column {exc.colno}: {exc.msg}"]) from None


@dataclass
class _Plan:
    """What a valid file asks for, ready to apply."""

    name: str
    description: str
    connections: list[dict[str, Any]] = field(default_factory=list)


def _resolve_secret(path: str, raw: Any, environ: Mapping[str, str], errors: list[str]) -> str | None:
    if isinstance(raw, Mapping) and set(raw) == {"env"}:
        var = raw["env"]
        if not isinstance(var, str) or not var:
            errors.append(f"{path}.env: must be the name of an environment variable")
            return None
        if var not in environ:
            errors.append(f"{path}: environment variable {var} is not set")
            return None
        return environ[var]
    if isinstance(raw, str):
        if not raw:
            errors.append(f"{path}: must not be empty (leave it out to keep the stored value)")
            return None
        return raw
    errors.append(f'{path}: must be a string or {{"env": "VAR_NAME"}}')
    return None


def _check_name(path: str, value: Any, errors: list[str]) -> str:
    if not isinstance(value, str):
        errors.append(f"{path}: is required and must be a string")
        return ""
    try:
        validate_object_name(value)
    except ValidationError as exc:
        errors.append(f"{path}: {' '.join(exc.messages)}")
    if len(value) > 100:
        errors.append(f"{path}: must be at most 100 characters")
    return value


def _plan_connections(entries: Any, environ: Mapping[str, str], errors: list[str]) -> list[dict[str, Any]]:
    if entries is None:
        return []
    if not isinstance(entries, list):
        errors.append("connections: must be a list")
        return []
    planned, seen = [], set()
    for index, entry in enumerate(entries):
        path = f"connections[{index}]"
        if not isinstance(entry, Mapping):
            errors.append(f"{path}: must be an object")
            continue
        name = _check_name(f"{path}.name", entry.get("name"), errors)
        if name in seen:
            errors.append(f"{path}.name: {name!r} appears twice in this file")
        seen.add(name)
        connector_key = entry.get("connector", "email")
        try:
            connector = get_connector(connector_key)
        except LookupError as exc:
            errors.append(f"{path}.connector: {exc}")
            continue
        description = entry.get("description", "")
        if not isinstance(description, str):
            errors.append(f"{path}.description: must be a string")
        body = {k: v for k, v in entry.items() if k not in {"name", "connector", "description"}}
        config_data, raw_secrets = connector.split_secrets(body)
        secrets = {}
        for secret_name, (secret_path, raw) in raw_secrets.items():
            value = _resolve_secret(f"{path}.{secret_path}", raw, environ, errors)
            if value is not None:
                secrets[secret_name] = value
        try:
            config = connector.parse_config(config_data)
        except ConfigError as exc:
            errors.extend(f"{path}.{sub}: {' '.join(msgs)}" for sub, msgs in exc.errors.items())
            continue
        planned.append({
            "path": path, "name": name, "connector": connector_key, "description": description or "",
            "config": config.to_dict(), "parsed": config, "secrets": secrets,
        })
    return planned


def plan(data: Any, environ: Mapping[str, str] | None = None) -> _Plan:
    """Validate a parsed project file; raise ProjectFileError listing every problem."""
    environ = os.environ if environ is None else environ
    errors: list[str] = []
    if not isinstance(data, Mapping):
        raise ProjectFileError(["the file must hold a JSON object"])
    if data.get("format") != FORMAT:
        errors.append(f"format: must be {FORMAT!r}, found {data.get('format')!r}")
    name = _check_name("name", data.get("name"), errors)
    description = data.get("description", "")
    if not isinstance(description, str):
        errors.append("description: must be a string")
    connections = _plan_connections(data.get("connections"), environ, errors)
    if errors:
        raise ProjectFileError(errors)
    return _Plan(name=name, description=description or "", connections=connections)


def _required_secrets_missing(connection: Connection, entry: dict[str, Any]) -> list[str]:
    """Secrets a new connection needs and the file does not give (an existing one keeps its own)."""
    if connection.secrets_token:
        return []
    needed = get_connector(entry["connector"]).required_secret_names(entry["parsed"])
    return [f"{entry['path']}.auth.{n}: is required for a new connection" for n in needed if n not in entry["secrets"]]


@transaction.atomic
def apply(file_plan: _Plan, team: Team, user: Any = None) -> list[str]:
    """Create or update the project and its connections by name; return a line per object.

    ``team`` may be unsaved: it is then created in the same transaction, so a failed import
    leaves no empty team behind.
    """
    report: list[str] = []
    if team.pk is None:
        team.save()
    project, created = Project.objects.get_or_create(team=team, name=file_plan.name,
                                                     defaults={"description": file_plan.description})
    if created:
        audit.record(user, team, "imported", project)
        report.append(f"created project {project.name}")
    elif project.description != file_plan.description:
        project.description = file_plan.description
        project.save(update_fields=["description", "updated_at"])
        report.append(f"updated project {project.name}")
    else:
        report.append(f"unchanged project {project.name}")

    errors: list[str] = []
    for entry in file_plan.connections:
        connection = Connection.objects.filter(project=project, name=entry["name"]).first()
        is_new = connection is None
        connection = connection or Connection(team=team, project=project, connector=entry["connector"], created_by=user)
        missing = _required_secrets_missing(connection, entry)
        if missing:
            errors.extend(missing)
            continue
        stored = {} if is_new else connection.get_secrets()
        secrets = {**stored, **entry["secrets"]} if entry["secrets"] else None
        changes = connection_store.apply(connection, entry["name"], entry["description"], entry["config"], secrets)
        if is_new or changes:
            connection.save()
            audit.record(user, team, "imported", connection, {} if is_new else {"fields": changes})
        report.append(f"{'created' if is_new else 'updated' if changes else 'unchanged'} connection {entry['name']}")
    if errors:
        # Nothing of a file with an error is kept.
        raise ProjectFileError(errors)
    return report


def import_text(text: str | bytes, team: Team, user: Any = None, environ: Mapping[str, str] | None = None) -> list[str]:
    return apply(plan(loads(text), environ), team, user)


def export(project: Project) -> dict[str, Any]:
    connections = []
    for connection in project.connections.order_by("name"):
        entry: dict[str, Any] = {"name": connection.name, "connector": connection.connector}
        if connection.description:
            entry["description"] = connection.description
        entry.update({k: v for k, v in connection.config.items() if v not in ("", None) or k in ("imap", "smtp")})
        connections.append(entry)
    document: dict[str, Any] = {"format": FORMAT, "name": project.name}
    if project.description:
        document["description"] = project.description
    document["connections"] = connections
    return document


def dumps(project: Project) -> str:
    return json.dumps(export(project), indent=2, ensure_ascii=False) + "\n"
