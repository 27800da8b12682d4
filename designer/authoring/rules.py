"""Operation rules: its definition as plain data (the project file's shape) <-> the model's fields, and
why an operation cannot run yet (the reasons the canvas marks and the project file reports).

Validation collects every problem with its path, like the connection settings do.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from datetime import datetime, timedelta
from typing import Any

from django.conf import settings
from django.utils import timezone

from designer.models import Activity, Operation
from designer.models.operations import DEFAULT_TIMEOUT, MAX_DEBUG_AHEAD
from designer.running.mapping import check_condition, check_template
from designer.running.schedules import validate_cron, validate_timezone
from designer.running.variables import variable_problems

# Keys an operation entry may have besides these options.
REFERENCE_KEYS = ("name", "source", "target", "on_success", "on_failure", "workflow", "notify", "agent_group")
OPTION_KEYS = ("mapping", "condition", "schedule", "enabled", "timeout_minutes", "retries",
               "retry_backoff_seconds", "log_level", "debug_until")


def _int(errors: list[str], path: str, value: Any, low: int, high: int) -> int | None:
    if isinstance(value, bool) or not isinstance(value, int) or not low <= value <= high:
        errors.append(f"{path}: must be a whole number between {low} and {high}")
        return None
    return value


def parse_schedule(errors: list[str], path: str, value: Any) -> dict[str, Any]:
    none = {"schedule": Operation.Schedule.NONE, "interval_minutes": None, "cron": "", "timezone": "UTC"}
    if value is None:
        return none
    if not isinstance(value, Mapping):
        errors.append(f'{path}: must be null, {{"every_minutes": N}} or {{"cron": "...", "timezone": "..."}}')
        return none
    if "every_minutes" in value:
        minutes = _int(errors, f"{path}.every_minutes", value["every_minutes"], 1, 10080)
        return {**none, "schedule": Operation.Schedule.INTERVAL, "interval_minutes": minutes}
    if "cron" in value:
        cron = value["cron"]
        zone = value.get("timezone", "UTC")
        if not isinstance(cron, str):
            errors.append(f"{path}.cron: must be a string")
            return none
        errors.extend(f"{path}.cron: {p}" for p in validate_cron(cron))
        if not isinstance(zone, str):
            errors.append(f"{path}.timezone: must be a string")
            zone = "UTC"
        errors.extend(f"{path}.timezone: {p}" for p in validate_timezone(zone))
        return {**none, "schedule": Operation.Schedule.CRON, "cron": " ".join(cron.split()), "timezone": zone}
    errors.append(f"{path}: give every_minutes or cron")
    return none


def parse_debug_until(errors: list[str], path: str, value: Any) -> datetime | None:
    if value in (None, ""):
        return None
    try:
        moment = datetime.fromisoformat(str(value))
    except ValueError:
        errors.append(f"{path}: must be an ISO date-time, e.g. 2026-12-01T18:00:00+00:00")
        return None
    if timezone.is_naive(moment):
        moment = timezone.make_aware(moment, timezone.get_default_timezone())
    if moment > timezone.now() + MAX_DEBUG_AHEAD:
        errors.append(f"{path}: debug mode may be on for at most {MAX_DEBUG_AHEAD.days} days ahead")
        return None
    return moment


def parse_options(errors: list[str], path: str, entry: Mapping[str, Any]) -> dict[str, Any]:
    """The model fields an operation entry sets (references by name are resolved by the caller)."""
    for key in sorted(set(entry) - set(REFERENCE_KEYS) - set(OPTION_KEYS)):
        errors.append(f"{path}.{key}: is not a known setting")
    fields: dict[str, Any] = {}
    mapping = entry.get("mapping") or {}
    if not isinstance(mapping, Mapping) or not all(isinstance(k, str) for k in mapping):
        errors.append(f"{path}.mapping: must be an object of target field -> template")
        mapping = {}
    for field, template in mapping.items():
        if isinstance(template, str):
            errors.extend(f"{path}.mapping.{field}: {p.message}" for p in check_template(field, template, ())
                          if not p.unknown_name)
    fields["mapping"] = dict(mapping)
    condition = entry.get("condition") or ""
    if not isinstance(condition, str):
        errors.append(f"{path}.condition: must be a string or null")
        condition = ""
    errors.extend(f"{path}.condition: {p.message}" for p in check_condition(condition, ())
                  if not p.unknown_name)
    fields["condition"] = condition
    fields.update(parse_schedule(errors, f"{path}.schedule", entry.get("schedule")))
    enabled = entry.get("enabled", True)
    if not isinstance(enabled, bool):
        errors.append(f"{path}.enabled: must be true or false")
    fields["enabled"] = enabled is not False
    cap = settings.MAILWRIGHT_MAX_OPERATION_MINUTES
    default = min(int(DEFAULT_TIMEOUT.total_seconds() // 60), cap)
    minutes = _int(errors, f"{path}.timeout_minutes", entry.get("timeout_minutes", default), 1, cap)
    fields["timeout"] = timedelta(minutes=minutes or default)
    fields["retries"] = _int(errors, f"{path}.retries", entry.get("retries", 2), 0, 10) or 0
    fields["retry_backoff_seconds"] = _int(
        errors, f"{path}.retry_backoff_seconds", entry.get("retry_backoff_seconds", 2), 0, 600) or 0
    log_level = entry.get("log_level", Operation.LogLevel.EVERYTHING)
    if log_level not in Operation.LogLevel.values:
        errors.append(f"{path}.log_level: must be one of {', '.join(Operation.LogLevel.values)}")
        log_level = Operation.LogLevel.EVERYTHING
    fields["log_level"] = log_level
    fields["debug_until"] = parse_debug_until(errors, f"{path}.debug_until", entry.get("debug_until"))
    return fields


def export_schedule(operation: Operation) -> dict[str, Any] | None:
    if operation.schedule == Operation.Schedule.INTERVAL:
        return {"every_minutes": operation.interval_minutes}
    if operation.schedule == Operation.Schedule.CRON:
        return {"cron": operation.cron, "timezone": operation.timezone}
    return None


def export(operation: Operation) -> dict[str, Any]:
    entry: dict[str, Any] = {
        "name": operation.name,
        "source": operation.source.name if operation.source else None,
        "target": operation.target.name if operation.target else None,
        "mapping": operation.mapping,
        "condition": operation.condition or None,
        "schedule": export_schedule(operation),
        "on_success": operation.on_success.name if operation.on_success else None,
        "on_failure": operation.on_failure.name if operation.on_failure else None,
        "enabled": operation.enabled,
        "timeout_minutes": int(operation.time_limit.total_seconds() // 60),
        "retries": operation.retries,
        "retry_backoff_seconds": operation.retry_backoff_seconds,
        "log_level": operation.log_level,
    }
    if operation.workflow:
        entry["workflow"] = operation.workflow.name
    if operation.agent_group:
        entry["agent_group"] = operation.agent_group.name
    if operation.notify != Operation.Notify.NEVER and operation.notify_activity:
        entry["notify"] = {"when": operation.notify, "activity": operation.notify_activity.name,
                           "to": operation.notify_to}
    return entry


def _fields(activity: Activity | None) -> tuple[str, ...]:
    if activity is None:
        return ()
    try:
        return activity.activity_type.fields
    except LookupError:
        return ()


def operation_problems(operation: Operation) -> list[str]:
    source, target = operation.source, operation.target
    if source is None and target is None and not operation.mapping:
        return ["empty: place a source and a target"]
    problems = []
    if source is None:
        problems.append("source missing")
    elif not source.is_source:
        problems.append(f"{source.name} cannot be a source")
    if target is None:
        problems.append("target missing")
    elif target.is_source:
        problems.append(f"{target.name} cannot be a target")
    else:
        problems += unfilled_problems(operation.mapping, target)
    problems += mapping_problems(operation.mapping, operation.condition, source, target,
                                 operation.project.variables)
    return problems


def unfilled_problems(mapping: dict[str, Any], target: Activity) -> list[str]:
    """The target fields nothing fills: every message would be refused, so the operation is not ready."""
    mapped = {name for name, template in mapping.items() if str(template).strip()}
    try:
        unfilled = target.connection.connector_type.unfilled_fields(target.type, target.settings, mapped)
    except LookupError:
        return []
    return [f"{target.name} has no default {name!r} and the mapping does not fill it: every message would be "
            "refused" for name in unfilled]


def mapping_problems(mapping: dict[str, Any], condition: str, source: Activity | None,
                     target: Activity | None, variables: Iterable[str] | None = None) -> list[str]:
    """Template problems of a mapping and condition; ``variables`` given, a ``vars.NAME`` the project
    does not define is one."""
    known = (*_fields(source), "vars") if source is not None else None
    target_fields = _fields(target)
    problems = []
    for field, template in mapping.items():
        if target_fields and field not in target_fields:
            problems.append(f"mapping: the target has no field {field!r}")
        if isinstance(template, str):
            for problem in check_template(field, template, known if known is not None else ("vars",)):
                if known is not None or not problem.unknown_name:
                    problems.append(f"mapping of {problem.field}: {problem.message}")
            if variables is not None:
                problems += [f"mapping of {field}: {p.message}" for p in variable_problems(field, template, variables)]
    if condition:
        problems += [f"condition: {p.message}" for p in check_condition(condition, known or ("vars",))
                     if known is not None or not p.unknown_name]
        if variables is not None:
            problems += [f"condition: {p.message}" for p in variable_problems("condition", condition, variables)]
    return problems


def chain_cycle(links: Mapping[str, Iterable[str | None]], start: str) -> list[str] | None:
    """The first loop of on-success / on-failure links that ``start`` runs into, as names
    (``["A", "B", "A"]``), or None: a loop would chain runs forever."""
    path: list[str] = []
    on_path: set[str] = set()
    done: set[str] = set()

    def visit(name: str) -> list[str] | None:
        path.append(name)
        on_path.add(name)
        for follow in sorted(f for f in links.get(name, ()) if f):
            if follow in on_path:
                return path[path.index(follow):] + [follow]
            if follow not in done:
                found = visit(follow)
                if found:
                    return found
        path.pop()
        on_path.discard(name)
        done.add(name)
        return None

    return visit(start)


def describe_cycle(cycle: list[str]) -> str:
    return "on success / on failure would run in a loop: " + " → ".join(cycle)
