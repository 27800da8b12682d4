"""Finding objects by the names operators type on the command line."""

from __future__ import annotations

from django.core.management.base import CommandError
from django.db.models import Q

from designer.models import AgentGroup, Connection, Operation, Project, Team


def team_by_name(name: str) -> Team:
    team = Team.objects.filter(Q(name=name) | Q(slug=name)).first()
    if team is None:
        raise CommandError(f"no team called {name!r}")
    return team


def project_by_name(team: Team, name: str) -> Project:
    try:
        return Project.objects.get(team=team, name=name)
    except Project.DoesNotExist:
        known = ", ".join(team.projects.values_list("name", flat=True)) or "none"
        raise CommandError(f"no project {name!r} in team {team.name} (projects: {known})") from None


def connection_by_name(project: Project, name: str) -> Connection:
    """A project's own connection first, else a team connection of the same name."""
    connection = (
        Connection.objects.filter(project=project, name=name).first()
        or Connection.objects.filter(team=project.team, project__isnull=True, name=name).first()
    )
    if connection is None:
        raise CommandError(f"no connection {name!r} in project {project.name} or its team's connections")
    return connection


def operation_by_name(project: Project, name: str) -> Operation:
    try:
        return Operation.objects.select_related("project").get(project=project, name=name)
    except Operation.DoesNotExist:
        known = ", ".join(project.operations.values_list("name", flat=True)) or "none"
        raise CommandError(f"no operation {name!r} in project {project.name} (operations: {known})") from None


def agent_group_by_name(name: str, team: Team | None = None) -> AgentGroup:
    """The group called ``name`` (in ``team``, needed when several teams have one of that name)."""
    groups = list(AgentGroup.objects.filter(name=name, **({"team": team} if team else {})).select_related("team"))
    if len(groups) == 1:
        return groups[0]
    if not groups:
        where = f" in team {team.name}" if team else ""
        known = ", ".join(sorted(AgentGroup.objects.filter(**({"team": team} if team else {}))
                                 .values_list("name", flat=True))) or "none"
        raise CommandError(f"no agent group {name!r}{where} (groups: {known}); create it on the team's Agents page")
    teams = ", ".join(sorted(group.team.name for group in groups))
    raise CommandError(f"several teams have an agent group {name!r} ({teams}): say which with --team")
