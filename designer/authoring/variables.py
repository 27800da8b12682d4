"""Project variables: where each is used, saving from the panel, and their part of the project file.

A variable in use keeps its name: renaming or deleting it is refused with the list of its uses, since
every template reading ``vars.NAME`` would fail at its next run. In the project file (SPEC §8) a plain
value is a string and a secret one only ``{"env": "VAR_NAME"}``; its value is never exported.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from django.core.exceptions import ValidationError

from designer.models import Project, Variable, validate_variable_name
from designer.models.variables import MAX_VALUE_CHARS
from designer.running.variables import texts, uses_variable
from designer.teams import audit


class VariableInUse(Exception):
    def __init__(self, name: str, uses: list[str]) -> None:
        super().__init__(f"vars.{name} is used by {'; '.join(uses)}")
        self.uses = uses


def uses(project: Project, name: str) -> list[str]:
    """Every template of the project that reads ``vars.NAME``, named for a person."""
    found = []
    for operation in project.operations.order_by("name"):
        where = [f"mapping of {field}" for field, template in (operation.mapping or {}).items()
                 if any(uses_variable(text, name) for _path, text in texts(template))]
        if operation.condition and uses_variable(operation.condition, name):
            where.append("condition")
        found += [f"operation {operation.name}: {place}" for place in where]
    for activity in project.activities.order_by("name"):
        found += [f"activity {activity.name}: {path}" for path, text in texts(activity.settings or {})
                  if uses_variable(text, name)]
    return found


def value_problem(value: Any) -> str:
    if not isinstance(value, str):
        return 'must be a string (a secret one: {"env": "VAR_NAME"})'
    if len(value) > MAX_VALUE_CHARS:
        return f"must be at most {MAX_VALUE_CHARS} characters"
    if "\0" in value:
        return "must not contain a NUL character"
    return ""


def name_problem(name: Any) -> str:
    try:
        validate_variable_name(name if isinstance(name, str) else "")
    except ValidationError as exc:
        return " ".join(exc.messages)
    return "must be at most 64 characters" if len(name) > 64 else ""


def save(variable: Variable, name: str, value: str | None, secret: bool, description: str, user: Any) -> None:
    """Create or change a variable (``value`` None keeps a stored secret); audited with what changed,
    a secret's value only as "changed"."""
    creating = variable.pk is None
    if not creating and variable.name != name:
        in_use = uses(variable.project, variable.name)
        if in_use:
            raise VariableInUse(variable.name, in_use)
    before = {} if creating else {"name": variable.name, "description": variable.description,
                                  "secret": variable.secret, "value": variable.get_value()}
    was_secret = variable.secret
    variable.name, variable.description = name, description
    if value is not None:
        variable.set_value(value, secret=secret)
    elif secret != variable.secret:
        variable.set_value(variable.get_value(), secret=secret)
    variable.save()
    if creating:
        audit.record(user, variable.project.team, "created", variable)
        return
    after = {"name": name, "description": description, "secret": variable.secret, "value": variable.get_value()}
    hidden = {"value"} if was_secret or variable.secret else set()
    audit.record(user, variable.project.team, "changed", variable, audit.changes(before, after, hidden))


def delete(variable: Variable, user: Any) -> None:
    in_use = uses(variable.project, variable.name)
    if in_use:
        raise VariableInUse(variable.name, in_use)
    audit.record(user, variable.project.team, "deleted", variable)
    variable.delete()


# The project file ------------------------------------------------------------------------------


def export(project: Project) -> dict[str, Any]:
    return {v.name: {"env": v.name.upper()} if v.secret else v.value for v in project.variable_set.all()}


def plan(raw: Any, environ: Mapping[str, str], errors: list[str]) -> list[dict[str, Any]]:
    """Validate the file's ``variables``; a secret whose environment variable is not set is kept as
    ``value`` None, which an existing secret variable of the same name may still satisfy."""
    if raw is None:
        return []
    if not isinstance(raw, Mapping):
        errors.append('variables: must be an object of name: "value" or {"env": "VAR_NAME"}')
        return []
    planned = []
    for name, raw_value in raw.items():
        path = f"variables.{name}"
        problem = name_problem(name)
        if problem:
            errors.append(f"{path}: {problem}")
            continue
        if isinstance(raw_value, Mapping):
            env = raw_value.get("env")
            if set(raw_value) != {"env"} or not isinstance(env, str) or not env:
                errors.append(f'{path}: a secret value must be {{"env": "VAR_NAME"}} only')
                continue
            planned.append({"path": path, "name": name, "secret": True, "env": env, "value": environ.get(env)})
            continue
        problem = value_problem(raw_value)
        if problem:
            errors.append(f"{path}: {problem}")
            continue
        planned.append({"path": path, "name": name, "secret": False, "value": raw_value})
    return planned


def apply(project: Project, planned: list[dict[str, Any]], user: Any, report: list[str],
          errors: list[str]) -> None:
    for entry in planned:
        variable = project.variable_set.filter(name=entry["name"]).first()
        created = variable is None
        variable = variable or Variable(project=project, name=entry["name"])
        value = entry["value"]
        if value is None:
            if created or not variable.secret:
                errors.append(f"{entry['path']}: environment variable {entry['env']} is not set")
                continue
            value = variable.get_value()  # the stored secret stays
        changed = (variable.secret, variable.get_value()) != (entry["secret"], value)
        if created or changed:
            variable.set_value(value, secret=entry["secret"])
            variable.save()
            audit.record(user, project.team, "imported", variable)
        report.append(f"{'created' if created else 'updated' if changed else 'unchanged'} variable {entry['name']}")
    project.__dict__.pop("variables", None)  # the cached values are stale now
