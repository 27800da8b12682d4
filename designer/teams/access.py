"""The one place where team isolation and roles are enforced.

Every view gets its team through ``get_membership`` and every object through the getters
below, so another team's object is a 404 and a missing right is a 403 that says why.
"""

from __future__ import annotations

from django.core.exceptions import PermissionDenied
from django.db.models import Q
from django.http import Http404, HttpRequest
from django.shortcuts import get_object_or_404

from designer.models import (
    Activity,
    Connection,
    ConnectionCheck,
    DesignVersion,
    Membership,
    Operation,
    Project,
    Role,
    Run,
    Variable,
    Workflow,
)

_ROLE_WORDS = {Role.VIEWER: "a viewer", Role.EDITOR: "an editor", Role.ADMIN: "an admin"}


def get_membership(request: HttpRequest, team_slug: str) -> Membership:
    try:
        return Membership.objects.select_related("team").get(team__slug=team_slug, user=request.user)
    except Membership.DoesNotExist:
        raise Http404("No such team.") from None


def require_role(membership: Membership, role: str, doing: str) -> None:
    """Refuse with a 403 naming the role needed, e.g. doing="change this team's members"."""
    if not membership.has_role(role):
        raise PermissionDenied(
            f"To {doing} you need to be {_ROLE_WORDS[role]} of {membership.team.name}; "
            f"you are {_ROLE_WORDS[membership.role]}."
        )


def get_project(membership: Membership, project_id: int) -> Project:
    return get_object_or_404(Project, team=membership.team, pk=project_id)


def get_connection(membership: Membership, connection_id: int) -> Connection:
    return get_object_or_404(
        Connection.objects.select_related("project", "team"), team=membership.team, pk=connection_id
    )


def get_check(membership: Membership, check_id: int) -> ConnectionCheck:
    # A draft (the connection form's Test) has no connection yet, and holds settings one member
    # typed: it is only theirs to follow (or to have the web process run).
    return get_object_or_404(
        ConnectionCheck.objects.select_related("connection").filter(
            Q(connection__team=membership.team)
            | Q(connection__isnull=True, team=membership.team, requested_by=membership.user_id)),
        pk=check_id,
    )


def connection_manager_role(connection: Connection) -> str:
    """Team connections hold shared credentials, so only admins may change them."""
    return Role.ADMIN if connection.is_team_connection else Role.EDITOR


def require_connection_change(membership: Membership, connection: Connection) -> None:
    role = connection_manager_role(connection)
    kind = "a team connection (its credentials are shared)" if connection.is_team_connection else "a project connection"
    require_role(membership, role, f"change {kind}")


def can_change_connection(membership: Membership, connection: Connection) -> bool:
    return membership.has_role(connection_manager_role(connection))


def get_workflow(membership: Membership, workflow_id: int) -> Workflow:
    return get_object_or_404(Workflow.objects.select_related("project"), project__team=membership.team,
                             pk=workflow_id)


def get_operation(membership: Membership, operation_id: int) -> Operation:
    return get_object_or_404(
        Operation.objects.select_related("workflow", "project", "source__connection", "target__connection"),
        project__team=membership.team, pk=operation_id,
    )


def get_activity(membership: Membership, activity_id: int) -> Activity:
    return get_object_or_404(Activity.objects.select_related("project", "connection"),
                             project__team=membership.team, pk=activity_id)


def get_run(membership: Membership, run_id: int) -> Run:
    return get_object_or_404(
        Run.objects.select_related("operation__project", "parent__operation", "replay_of"),
        operation__project__team=membership.team, pk=run_id,
    )


def get_variable(membership: Membership, variable_id: int) -> Variable:
    return get_object_or_404(Variable.objects.select_related("project__team"), project__team=membership.team,
                             pk=variable_id)


def get_design_version(membership: Membership, version_id: int) -> DesignVersion:
    return get_object_or_404(DesignVersion, project__team=membership.team, pk=version_id)
