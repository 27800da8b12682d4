"""Where a new activity goes once its wizard finishes, when it was started by dropping a palette chip.

Dropped on an operation, it fills that operation's slot for its role; dropped elsewhere on the
canvas, it becomes the source or target of a new operation at the place it was dropped. The
placement travels in the wizard's URL (``?place=…``), so it survives every step of the wizard
and works the same with and without JavaScript.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from designer.authoring import canvas as design
from designer.models import Activity, Operation, Project, Workflow

NEW = "new"


@dataclass(frozen=True)
class Placement:
    """``operation`` set: fill its slot. Otherwise: a new operation in ``workflow`` at ``position``."""

    operation: int | None = None
    workflow: int | None = None
    position: int | None = None

    @classmethod
    def from_query(cls, query: Mapping[str, str]) -> Placement | None:
        """The placement a wizard URL asks for; None when the wizard was opened from a "+ New" link."""
        place = query.get("place", "")
        if place.isdigit():
            return cls(operation=int(place))
        if place != NEW:
            return None
        workflow, position = query.get("workflow", ""), query.get("position", "")
        return cls(workflow=int(workflow) if workflow.isdigit() else None,
                   position=int(position) if position.isdigit() else None)


@dataclass
class Placed:
    """What the canvas shows after a placement: the workflow to open and a sentence for the editor."""

    workflow: Workflow | None
    notice: str
    error: str = ""


def _new_operation(project: Project, placement: Placement, user: Any) -> Operation:
    workflow = project.workflows.filter(pk=placement.workflow).first() if placement.workflow else None
    workflow = workflow or design.default_workflow(project, user)
    operation = design.create_operation(workflow, user)
    if placement.position is not None:
        siblings = design.workflow_operations(workflow)
        index = list(siblings.values_list("pk", flat=True)).index(operation.pk)
        design.move(operation, siblings, placement.position - index)
    return operation


def apply(placement: Placement, activity: Activity, user: Any) -> Placed:
    """Put the new ``activity`` where it was dropped. A slot that cannot take it is reported, not forced."""
    role = "source" if activity.is_source else "target"
    project = activity.project
    operation = project.operations.filter(pk=placement.operation).first() if placement.operation else None
    if placement.operation is not None and operation is None:
        return Placed(project.workflows.first(), "",
                      f"{activity.name} was created, but the operation it was dropped on no longer exists; "
                      "place it from the palette.")
    created = operation is None
    if created:
        operation = _new_operation(project, placement, user)
    workflow = operation.workflow or project.workflows.first()
    problem = design.place(operation, role, activity)
    if problem:
        return Placed(workflow, "", f"{activity.name} was created but not placed: {problem}.")
    try:
        design.save_operation(operation, operation.version, {role: activity}, user)
    except design.Conflict as exc:
        return Placed(workflow, "", f"{activity.name} was created but not placed: {exc}")
    where = f"a new operation, {operation.name}" if created else operation.name
    return Placed(workflow, f"{activity.name} created and placed as the {role} of {where}.")
