"""Changing a project's design from the canvas: workflows, operations and the activities placed in them.

Operations are saved with optimistic locking: a save names the version the editor saw and the
row is updated only while it still has that version, in one UPDATE, so two editors never
overwrite each other silently, whatever the database or the number of web processes.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from typing import Any

from django.db import transaction
from django.db.models import F, Max, Q, QuerySet
from django.utils import timezone

from connectors.base import ActivityType, ConfigError, ConnectorError, activity_ui, all_connectors
from designer.authoring import versions
from designer.authoring.rules import operation_problems
from designer.crypto import SecretsUnreadable
from designer.history import health
from designer.models import Activity, Connection, Operation, Project, Workflow
from designer.running import schedules
from designer.teams import audit

DEFAULT_WORKFLOW = "Main"
NEW_OPERATION = "New operation"
NEW_WORKFLOW = "Workflow"
# Fields whose change must reach celery beat's periodic task.
SCHEDULE_FIELDS = {"enabled", "schedule", "interval_minutes", "cron", "timezone"}


class Conflict(Exception):
    """The operation changed since the editor loaded it; ``operation`` holds the current state."""

    def __init__(self, operation: Operation) -> None:
        last = audit.history(operation, 1).first()
        who = (last.username if last else "") or "Someone"
        super().__init__(
            f"{who} changed “{operation.name}” after you opened it (it is now at version {operation.version}). "
            "Your change was not saved, so nothing of theirs was overwritten: reload to see their version, "
            "then make your change again."
        )
        self.operation = operation


def save_operation(operation: Operation, version: int, changes: Mapping[str, Any], user: Any) -> list[str]:
    """Apply ``changes`` if ``operation`` is still at ``version``; return the names of the changed fields.

    ``operation`` is the row as loaded for this request and is refreshed afterwards. A save that
    changes nothing succeeds whatever the version: there is nothing to overwrite.
    """
    changed = sorted(name for name, value in changes.items() if getattr(operation, name) != value)
    if not changed:
        return []
    details = audit.changes({name: getattr(operation, name) for name in changed},
                            {name: changes[name] for name in changed})
    before = versions.snapshot(operation)
    with transaction.atomic():
        updated = Operation.objects.filter(pk=operation.pk, version=version).update(
            **{name: changes[name] for name in changed}, version=F("version") + 1, updated_at=timezone.now()
        )
        operation.refresh_from_db()
        if not updated:
            raise Conflict(operation)
        audit.record(user, operation.project.team, "changed", operation, details)
        versions.record(operation, user, before)
    if SCHEDULE_FIELDS & set(changed):
        schedules.sync(operation)
    return changed


def unique_name(existing: Iterable[str], base: str) -> str:
    """``base``, or ``base 2``, ``base 3``... whichever is free."""
    taken = set(existing)
    name, n = base, 2
    while name in taken:
        name, n = f"{base} {n}", n + 1
    return name


def _next_position(siblings: QuerySet) -> int:
    highest = siblings.aggregate(highest=Max("position"))["highest"]
    return 0 if highest is None else highest + 1


def create_workflow(project: Project, user: Any) -> Workflow:
    names = list(project.workflows.values_list("name", flat=True))
    name = unique_name(names, f"{NEW_WORKFLOW} {len(names) + 1}")
    workflow = Workflow.objects.create(project=project, name=name, position=_next_position(project.workflows.all()))
    audit.record(user, project.team, "created", workflow)
    return workflow


def default_workflow(project: Project, user: Any) -> Workflow:
    """The first workflow, created when the project has none yet."""
    workflow = project.workflows.first()
    if workflow is None:
        workflow = Workflow.objects.create(project=project, name=DEFAULT_WORKFLOW)
        audit.record(user, project.team, "created", workflow)
    return workflow


def create_operation(workflow: Workflow, user: Any) -> Operation:
    project = workflow.project
    operation = Operation.objects.create(
        project=project,
        workflow=workflow,
        name=unique_name(project.operations.values_list("name", flat=True), NEW_OPERATION),
        position=_next_position(project.operations.filter(workflow=workflow)),
    )
    audit.record(user, project.team, "created", operation)
    versions.record(operation, user)
    return operation


def move(item: Workflow | Operation, siblings: QuerySet, step: int) -> None:
    """Move ``item`` ``step`` places among its ordered ``siblings`` and renumber them.

    Positions are written with UPDATE so the move never writes back (stale) fields of a row,
    and never bumps an operation's version: order is not content two editors can conflict on.
    """
    ordered = list(siblings.values_list("pk", flat=True))
    index = ordered.index(item.pk)
    ordered.insert(max(0, min(len(ordered) - 1, index + step)), ordered.pop(index))
    with transaction.atomic():
        for position, pk in enumerate(ordered):
            siblings.model.objects.filter(pk=pk).exclude(position=position).update(position=position)


def workflow_operations(workflow: Workflow) -> QuerySet[Operation]:
    """The operations a workflow tab shows; the first tab also collects those without a workflow."""
    first = workflow.project.workflows.first()
    where = Q(workflow=workflow) | Q(workflow__isnull=True) if workflow == first else Q(workflow=workflow)
    return workflow.project.operations.filter(where)


def _unschedule(operation: Operation) -> None:
    # schedules.sync removes the periodic task of an operation that is not scheduled.
    operation.schedule = Operation.Schedule.NONE
    schedules.sync(operation)


def delete_operation(operation: Operation, user: Any) -> None:
    with transaction.atomic():
        audit.record(user, operation.project.team, "deleted", operation)
        _unschedule(operation)
        operation.delete()


def delete_workflow(workflow: Workflow, user: Any) -> None:
    with transaction.atomic():
        for operation in workflow_operations(workflow):
            delete_operation(operation, user)
        audit.record(user, workflow.project.team, "deleted", workflow)
        workflow.delete()


def place(operation: Operation, role: str, activity: Activity | None) -> str:
    """Why ``activity`` cannot go into the ``role`` slot ("source" or "target"), or ""."""
    if activity is None:
        return ""
    if activity.project_id != operation.project_id:
        return f"{activity.name} belongs to another project"
    try:
        kind = activity.activity_type
    except LookupError as exc:
        return str(exc)
    if (kind.role == "source") != (role == "source"):
        return f"{activity.name} is a {kind.label} activity, which cannot be a {role}"
    return ""


def users_of(activity: Activity) -> list[Operation]:
    """Operations that use ``activity`` as source, target or notification; it cannot be deleted while any do."""
    return list(Operation.objects.filter(
        Q(source=activity) | Q(target=activity) | Q(notify_activity=activity), project=activity.project_id
    ))


# What the designer page shows ------------------------------------------------------------------


@dataclass
class Endpoint:
    """A connection with its activity types and the project's activities of each type."""

    connection: Connection
    kinds: list[tuple[ActivityType, list[Activity]]]


@dataclass
class Card:
    operation: Operation
    problems: list[str]


def project_activities(project: Project) -> list[Activity]:
    """The project's activities, each with its source health (SPEC §10) for the palette's badges."""
    return health.attach_health(project.activities.select_related("connection"))


def usable_connections(project: Project) -> QuerySet[Connection]:
    """The project's own connections and the team's shared ones."""
    return Connection.objects.filter(Q(project=project) | Q(team=project.team_id, project__isnull=True))


def offers(connection: Connection, kind: str) -> bool:
    """Whether the connection's connector has the activity type ``kind``."""
    try:
        return any(t.key == kind for t in connection.connector_type.activity_types)
    except LookupError:
        return False


def serving_kinds(connection: Connection) -> list[str]:
    """The activity types ``connection`` can serve as configured (Read Email needs its IMAP part...)."""
    try:
        kinds = connection.connector_type.activity_types
    except LookupError:
        return []
    return [kind.key for kind in kinds if not activity_ui(kind.key).connection_problem(connection.config)]


def endpoints(connections: Iterable[Connection], activities: list[Activity]) -> list[Endpoint]:
    found = []
    for connection in connections:
        try:
            kinds = connection.connector_type.activity_types
        except LookupError:
            kinds = ()
        found.append(Endpoint(connection, [
            (kind, [a for a in activities if a.connection_id == connection.pk and a.type == kind.key])
            for kind in kinds
        ]))
    return found


def palette(project: Project, activities: list[Activity]) -> dict[str, Any]:
    connections = list(usable_connections(project))
    return {
        "connectors": all_connectors(),
        "project_endpoints": endpoints([c for c in connections if c.project_id], activities),
        "team_endpoints": endpoints([c for c in connections if not c.project_id], activities),
    }


def cards(operations: Iterable[Operation]) -> list[Card]:
    return [Card(operation, operation_problems(operation)) for operation in operations]


def with_slots(operations: QuerySet[Operation]) -> QuerySet[Operation]:
    """What a card reads: its activities and their connections, in one query."""
    return operations.select_related("source__connection", "target__connection", "project", "on_success",
                                     "on_failure")


def slot_choices(activities: list[Activity]) -> dict[str, list[Activity]]:
    """Activities each slot may take, for the keyboard alternative to drag and drop."""
    choices: dict[str, list[Activity]] = {"source": [], "target": []}
    for activity in activities:
        try:
            choices["source" if activity.is_source else "target"].append(activity)
        except LookupError:
            continue
    return choices


def list_folders(connection: Connection) -> tuple[list[str] | None, str]:
    """The folders a source of this connection can read, or None and why not (in plain words)."""
    connector = connection.connector_type
    lister = getattr(connector, "list_folders", None)
    if lister is None:
        return None, f"{connector.label} connections have no folders."
    try:
        return lister(connection.parsed_config(), connection.get_secrets()), ""
    except ConfigError as exc:
        return None, f"The connection's settings are invalid: {exc}"
    except (ConnectorError, SecretsUnreadable) as exc:
        return None, str(exc)
