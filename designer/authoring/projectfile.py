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

from connectors.base import ConfigError, connector_for_activity, get_connector
from designer.authoring import connection_store, versions
from designer.authoring import rules as operation_spec
from designer.authoring import variables as project_variables
from designer.authoring.rules import chain_cycle, describe_cycle, operation_problems
from designer.models import Activity, AgentGroup, Connection, Operation, Project, Team, Workflow, validate_object_name
from designer.running import activity_settings, schedules
from designer.teams import audit

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
    except RecursionError:
        raise ProjectFileError(["the file nests lists or objects too deeply to be a project file"]) from None


@dataclass
class _Plan:
    """What a valid file asks for, ready to apply."""

    name: str
    description: str
    connections: list[dict[str, Any]] = field(default_factory=list)
    activities: list[dict[str, Any]] = field(default_factory=list)
    operations: list[dict[str, Any]] = field(default_factory=list)
    variables: list[dict[str, Any]] = field(default_factory=list)


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


def _entries(data: Mapping[str, Any], key: str, errors: list[str]) -> list[tuple[str, Mapping[str, Any]]]:
    entries = data.get(key)
    if entries is None:
        return []
    if not isinstance(entries, list):
        errors.append(f"{key}: must be a list")
        return []
    valid = []
    for index, entry in enumerate(entries):
        if isinstance(entry, Mapping):
            valid.append((f"{key}[{index}]", entry))
        else:
            errors.append(f"{key}[{index}]: must be an object")
    return valid


def _plan_activities(data: Mapping[str, Any], errors: list[str]) -> list[dict[str, Any]]:
    planned, seen = [], set()
    for path, entry in _entries(data, "activities", errors):
        name = _check_name(f"{path}.name", entry.get("name"), errors)
        if name in seen:
            errors.append(f"{path}.name: {name!r} appears twice in this file")
        seen.add(name)
        connection = entry.get("connection")
        if not isinstance(connection, str) or not connection:
            errors.append(f"{path}.connection: is required (the name of a connection)")
        try:
            connector = connector_for_activity(entry.get("type"))
        except LookupError as exc:
            errors.append(f"{path}.type: {exc}")
            continue
        body = {k: v for k, v in entry.items() if k not in {"name", "type", "connection"}}
        try:
            settings = connector.parse_activity_settings(entry["type"], body)
        except ConfigError as exc:
            errors.extend(f"{path}.{sub}: {' '.join(msgs)}" for sub, msgs in exc.errors.items())
            continue
        planned.append({"path": path, "name": name, "type": entry["type"], "connection": connection,
                        "settings": settings.to_dict()})
    return planned


def _plan_operations(data: Mapping[str, Any], activity_names: set[str], errors: list[str]) -> list[dict[str, Any]]:
    planned, seen = [], set()
    entries = _entries(data, "operations", errors)
    names = {entry.get("name") for _path, entry in entries}
    for path, entry in entries:
        name = _check_name(f"{path}.name", entry.get("name"), errors)
        if name in seen:
            errors.append(f"{path}.name: {name!r} appears twice in this file")
        seen.add(name)
        refs: dict[str, Any] = {}
        for role in ("source", "target"):
            value = entry.get(role)
            if value is not None and value not in activity_names:
                errors.append(f"{path}.{role}: no activity {value!r} in this file")
            refs[role] = value
        for action in ("on_success", "on_failure"):
            value = entry.get(action)
            if value is not None and value not in names:
                errors.append(f"{path}.{action}: no operation {value!r} in this file")
            refs[action] = value
        workflow = entry.get("workflow", "Main")
        refs["workflow"] = _check_name(f"{path}.workflow", workflow, errors)
        group = entry.get("agent_group")
        refs["agent_group"] = None if group is None else _check_name(f"{path}.agent_group", group, errors)
        notify = entry.get("notify")
        if notify is not None:
            if not isinstance(notify, Mapping) or notify.get("when") not in ("failure", "always"):
                errors.append(
                    f'{path}.notify: must be null or {{"when": "failure"|"always", "activity": ..., "to": ...}}'
                )
            else:
                if notify.get("activity") not in activity_names:
                    errors.append(f"{path}.notify.activity: no activity {notify.get('activity')!r} in this file")
                if not isinstance(notify.get("to"), str) or "@" not in notify.get("to", ""):
                    errors.append(f"{path}.notify.to: must be an email address")
        refs["notify"] = notify
        planned.append({"path": path, "name": name, "refs": refs,
                        "fields": operation_spec.parse_options(errors, path, entry)})
    links = {entry["name"]: (entry["refs"]["on_success"], entry["refs"]["on_failure"]) for entry in planned}
    reported: set[str] = set()
    for entry in planned:
        cycle = chain_cycle(links, entry["name"])
        if cycle and not reported & set(cycle):
            reported |= set(cycle)
            errors.append(f"{entry['path']}: {describe_cycle(cycle)}")
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
    variables = project_variables.plan(data.get("variables"), environ, errors)
    connections = _plan_connections(data.get("connections"), environ, errors)
    activities = _plan_activities(data, errors)
    operations = _plan_operations(data, {a["name"] for a in activities}, errors)
    if errors:
        raise ProjectFileError(errors)
    return _Plan(name=name, description=description or "", connections=connections, activities=activities,
                 operations=operations, variables=variables)


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
    project_variables.apply(project, file_plan.variables, user, report, errors)
    for entry in file_plan.connections:
        connection = Connection.objects.filter(project=project, name=entry["name"]).first()
        is_new = connection is None
        connection = connection or Connection(team=team, project=project, connector=entry["connector"], created_by=user)
        missing = _required_secrets_missing(connection, entry)
        rebound = [] if is_new else connection_store.rebinding_changes(connection, entry["config"])
        needed = get_connector(entry["connector"]).required_secret_names(entry["parsed"])
        if rebound and any(name not in entry["secrets"] for name in needed):
            missing.append(f"{entry['path']}: {' and '.join(rebound)} changed, so the file must give the "
                           "secrets again (a stored secret is only sent to the server it was entered for)")
        if missing:
            errors.extend(missing)
            continue
        stored = {} if is_new else connection.get_secrets()
        secrets = {**({} if rebound else stored), **entry["secrets"]} if entry["secrets"] else None
        changes = connection_store.apply(connection, entry["name"], entry["description"], entry["config"], secrets)
        if is_new or changes:
            connection.save()
            audit.record(user, team, "imported", connection, {} if is_new else changes)
        report.append(f"{'created' if is_new else 'updated' if changes else 'unchanged'} connection {entry['name']}")
    activities = _apply_activities(file_plan, project, user, report, errors)
    if not errors:
        _apply_operations(file_plan, project, activities, user, report)
    if errors:
        # Nothing of a file with an error is kept.
        raise ProjectFileError(errors)
    return report


def _agent_group(project: Project, name: str | None, user: Any, report: list[str]) -> AgentGroup | None:
    """The team's agent group ``name``, created when the team has none of that name yet (its workers
    are started with ``run_agent --group``)."""
    if name is None:
        return None
    group, created = AgentGroup.objects.get_or_create(team=project.team, name=name)
    if created:
        audit.record(user, project.team, "imported", group)
        report.append(f"created agent group {name} (start its workers with: manage.py run_agent --group {name!r})")
    return group


def _report(report: list[str], kind: str, name: str, created: bool, changed: bool) -> None:
    report.append(f"{'created' if created else 'updated' if changed else 'unchanged'} {kind} {name}")


def _apply_activities(file_plan: _Plan, project: Project, user: Any, report: list[str],
                      errors: list[str]) -> dict[str, Activity]:
    activities: dict[str, Activity] = {}
    for entry in file_plan.activities:
        connection = (Connection.objects.filter(project=project, name=entry["connection"]).first()
                      or Connection.objects.filter(team=project.team, project__isnull=True,
                                                   name=entry["connection"]).first())
        if connection is None:
            errors.append(f"{entry['path']}.connection: no connection {entry['connection']!r} in this file "
                          "or the team's connections")
            continue
        activity = Activity.objects.filter(project=project, name=entry["name"]).first()
        created = activity is None
        activity = activity or Activity(project=project, name=entry["name"])
        changed = (activity.connection_id, activity.type, activity.settings) != (
            connection.pk, entry["type"], entry["settings"])
        activity.connection, activity.type, activity.settings = connection, entry["type"], entry["settings"]
        if created or changed:
            activity.save()
            audit.record(user, project.team, "imported", activity)
            versions.record(activity, user)
        activities[entry["name"]] = activity
        _report(report, "activity", entry["name"], created, changed)
        for path, problems in activity_settings.problems(activity, activity.settings).items():
            report += [f"  warning: activity {entry['name']}: {path}: {problem}" for problem in problems]
    return activities


def _apply_operations(file_plan: _Plan, project: Project, activities: dict[str, Activity], user: Any,
                      report: list[str]) -> None:
    operations: dict[str, Operation] = {}
    states: dict[str, tuple[bool, bool]] = {}
    for position, entry in enumerate(file_plan.operations):
        refs = entry["refs"]
        workflow, _ = Workflow.objects.get_or_create(project=project, name=refs["workflow"])
        operation = Operation.objects.filter(project=project, name=entry["name"]).first()
        created = operation is None
        operation = operation or Operation(project=project, name=entry["name"])
        notify = refs["notify"] or {}
        values = {
            **entry["fields"],
            "workflow": workflow,
            "position": position,
            "source": activities.get(refs["source"]),
            "target": activities.get(refs["target"]),
            "notify": notify.get("when", Operation.Notify.NEVER),
            "notify_activity": activities.get(notify.get("activity")),
            "notify_to": notify.get("to", ""),
            "agent_group": _agent_group(project, refs["agent_group"], user, report),
        }
        changed = any(getattr(operation, k) != v for k, v in values.items())
        for key, value in values.items():
            setattr(operation, key, value)
        if created or changed:
            operation.version += 0 if created else 1
            operation.save()
        operations[entry["name"]] = operation
        states[entry["name"]] = (created, changed)
    for entry in file_plan.operations:
        operation = operations[entry["name"]]
        success = operations.get(entry["refs"]["on_success"])
        failure = operations.get(entry["refs"]["on_failure"])
        if (operation.on_success, operation.on_failure) != (success, failure):
            operation.on_success, operation.on_failure = success, failure
            operation.save(update_fields=["on_success", "on_failure", "updated_at"])
            states[entry["name"]] = (states[entry["name"]][0], True)
        created, changed = states[entry["name"]]
        if created or changed:
            schedules.sync(operation)
            audit.record(user, project.team, "imported", operation)
            versions.record(operation, user)
        _report(report, "operation", entry["name"], created, changed)
        for problem in operation_problems(operation):
            report.append(f"  warning: operation {entry['name']}: {problem}")


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
    document["variables"] = project_variables.export(project)
    document["connections"] = connections
    document["activities"] = [
        {"name": a.name, "type": a.type, "connection": a.connection.name, **a.settings}
        for a in project.activities.select_related("connection").order_by("name")
    ]
    document["operations"] = [
        operation_spec.export(op)
        for op in project.operations.select_related("source", "target", "on_success", "on_failure", "workflow",
                                                    "notify_activity", "agent_group").order_by("position", "id")
    ]
    return document


def dumps(project: Project) -> str:
    return json.dumps(export(project), indent=2, ensure_ascii=False) + "\n"
