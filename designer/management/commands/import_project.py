from pathlib import Path

from django.core.exceptions import ValidationError
from django.core.management.base import BaseCommand, CommandError

from designer.authoring import projectfile
from designer.models import Team
from designer.teams.policy import describe_team


class Command(BaseCommand):
    help = "Import a project file (creating the team if missing); idempotent by names."

    def add_arguments(self, parser) -> None:
        parser.add_argument("file", help="path of the JSON project file, or - for standard input")
        parser.add_argument("--team", required=True)

    def handle(self, file: str, team: str, **options) -> None:
        try:
            text = self.stdin.buffer.read() if file == "-" else Path(file).read_bytes()
        except OSError as exc:
            raise CommandError(f"cannot read {file}: {exc.strerror}") from None
        try:
            file_plan = projectfile.plan(projectfile.loads(text))
            team_obj = Team.objects.filter(name=team).first()
            created_team = team_obj is None
            if created_team:
                team_obj = Team(name=team)
                team_obj.full_clean()
            report = projectfile.apply(file_plan, team_obj)
        except projectfile.ProjectFileError as exc:
            for line in exc.errors:
                self.stderr.write(f"{file}: {line}")
            raise CommandError(f"nothing imported: {len(exc.errors)} problem(s) in {file}") from None
        except ValidationError as exc:
            raise CommandError(f"--team: {' '.join(exc.messages)}") from None
        self.stdout.write(describe_team(team_obj, created_team))
        for line in report:
            self.stdout.write(line)
