"""Who may start a team, and how the commands that create teams say what they did (SPEC §9).

A team's name is its identity for the management commands: if any user could create teams, one
could create "Ops" before an operator's `import_project --team Ops` and receive its secrets. So
creating teams in the browser is for staff unless MAILWRIGHT_TEAM_CREATION=anyone, and the
commands say plainly whether they created the team or joined an existing one, and whose it is.
"""

from __future__ import annotations

from django.conf import settings
from django.contrib.auth.models import AbstractBaseUser, AnonymousUser

from designer.models import Role, Team

TEAM_CREATION_CHOICES = ("staff", "anyone")


def may_create_team(user: AbstractBaseUser | AnonymousUser) -> bool:
    """Whether ``user`` may create a team in the browser, as ``MAILWRIGHT_TEAM_CREATION`` says."""
    if not user.is_authenticated:
        return False
    if getattr(settings, "MAILWRIGHT_TEAM_CREATION", "staff") == "anyone":
        return True
    return bool(getattr(user, "is_staff", False) or getattr(user, "is_superuser", False))


def describe_team(team: Team, created: bool) -> str:
    """One line for a command's output: "created team X" or the existing team and its admins."""
    if created:
        return f"created team {team.name}"
    admins = sorted(
        team.memberships.filter(role=Role.ADMIN).values_list("user__username", flat=True)
    ) if team.pk else []
    whose = f"its admins: {', '.join(admins)}" if admins else "it has no admin"
    return f"used the existing team {team.name} ({whose}); it was not created by this command"
