"""Renaming and deleting a project.

Activities, operations and exports reach their project by key, so a rename is one row and every name
shown follows. A delete takes everything of the project with it (operations, their runs and
schedules, activities, its own connections, variables); it is refused while a run is queued or
running, since that run would lose its operation under it.
"""

from __future__ import annotations

from typing import Any

from django.db import transaction

from designer.authoring import canvas as design
from designer.models import Project, Run
from designer.teams import audit

ACTIVE = (Run.Status.QUEUED, Run.Status.RUNNING)


class ProjectBusy(Exception):
    """Runs of the project are queued or running."""


def rename(project: Project, name: str, description: str, user: Any) -> dict[str, Any]:
    """Save a new name and description; the audit details compare with the stored row (a form may have
    set them on ``project`` already)."""
    before = Project.objects.values("name", "description").get(pk=project.pk)
    project.name, project.description = name, description
    details = audit.changes(before, {"name": name, "description": description})
    if details:
        with transaction.atomic():
            project.save(update_fields=["name", "description", "updated_at"])
            audit.record(user, project.team, "changed", project, details)
    return details


def active_runs(project: Project) -> list[Run]:
    return list(Run.objects.filter(operation__project=project, status__in=ACTIVE)
                .select_related("operation").order_by("queued_at"))


def contents(project: Project) -> list[tuple[str, list[str]]]:
    """What deleting the project deletes, by kind, named; kinds with nothing are left out."""
    runs = Run.objects.filter(operation__project=project).count()
    kinds = [
        ("Operations", [o.name for o in project.operations.order_by("name")]),
        ("Activities", [a.name for a in project.activities.order_by("name")]),
        ("Project connections", [c.name for c in project.connections.order_by("name")]),
        ("Workflows", [w.name for w in project.workflows.all()]),
        ("Variables", [f"vars.{v.name}" for v in project.variable_set.all()]),
        ("Run history", [f"{runs} run{'' if runs == 1 else 's'} with their messages and logs"] if runs else []),
    ]
    return [(kind, names) for kind, names in kinds if names]


@transaction.atomic
def delete(project: Project, user: Any) -> None:
    # Locking the project's active runs keeps a worker from starting one of them meanwhile.
    busy = list(Run.objects.select_for_update().filter(operation__project=project, status__in=ACTIVE))
    if busy:
        raise ProjectBusy(f"{len(busy)} run{'' if len(busy) == 1 else 's'} of this project "
                          f"{'is' if len(busy) == 1 else 'are'} queued or running")
    audit.record(user, project.team, "deleted", project,
                 {"deleted": dict(contents(project))})
    for operation in project.operations.all():
        design.delete_operation(operation, user)
    # Activities go first: their connections are protected while an activity uses them.
    project.activities.all().delete()
    project.delete()
