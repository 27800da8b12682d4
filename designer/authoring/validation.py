"""Why an operation cannot run yet: the reasons the canvas marks and the project file reports."""

from __future__ import annotations

from typing import Any

from designer.models import Activity, Operation
from designer.running.mapping import check_condition, check_template


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
    problems += mapping_problems(operation.mapping, operation.condition, source, target)
    return problems


def mapping_problems(mapping: dict[str, Any], condition: str, source: Activity | None,
                     target: Activity | None) -> list[str]:
    known = (*_fields(source), "vars") if source is not None else None
    target_fields = _fields(target)
    problems = []
    for field, template in mapping.items():
        if target_fields and field not in target_fields:
            problems.append(f"mapping: the target has no field {field!r}")
        if isinstance(template, str):
            for problem in check_template(field, template, known if known is not None else ("vars",)):
                if known is not None or "does not have" not in problem.message:
                    problems.append(f"mapping of {problem.field}: {problem.message}")
    if condition:
        problems += [f"condition: {p.message}" for p in check_condition(condition, known or ("vars",))
                     if known is not None or "does not have" not in p.message]
    return problems
