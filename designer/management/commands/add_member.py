from django.contrib.auth import get_user_model
from django.core.management.base import BaseCommand, CommandError
from django.db import transaction

from designer.models import Membership, Role, Team
from designer.teams import audit
from designer.teams.policy import describe_team


class Command(BaseCommand):
    help = "Add an existing user to a team with a role, creating the team if missing."

    def add_arguments(self, parser) -> None:
        parser.add_argument("username")
        parser.add_argument("--team", required=True)
        parser.add_argument("--role", required=True, choices=[r.value for r in Role])

    @transaction.atomic
    def handle(self, username: str, team: str, role: str, **options) -> None:
        try:
            user = get_user_model().objects.get(username=username)
        except get_user_model().DoesNotExist:
            raise CommandError(f"no user {username!r}; create one first, e.g. manage.py createsuperuser") from None
        team_obj = Team.objects.filter(name=team).first()
        if team_obj is None:
            team_obj = Team(name=team)
            team_obj.full_clean()
            team_obj.save()
            self.stdout.write(describe_team(team_obj, created=True))
        else:
            self.stdout.write(describe_team(team_obj, created=False))
        member, created = Membership.objects.update_or_create(team=team_obj, user=user, defaults={"role": role})
        audit.record(None, team_obj, "added" if created else "changed", member, {"role": role})
        self.stdout.write(f"{'added' if created else 'updated'} {username} as {role} of {team_obj.name}")
