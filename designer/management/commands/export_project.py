import sys
from pathlib import Path

from django.core.management.base import BaseCommand, CommandError

from designer.authoring import projectfile
from designer.teams.lookup import project_by_name, team_by_name


class Command(BaseCommand):
    help = "Export a project to its JSON project file (secrets are never exported)."

    def add_arguments(self, parser) -> None:
        parser.add_argument("project")
        parser.add_argument("--team", required=True)
        parser.add_argument("-o", "--output", help="file to write (default: standard output)")

    def handle(self, project: str, team: str, output: str | None, **options) -> None:
        text = projectfile.dumps(project_by_name(team_by_name(team), project))
        if output and output != "-":
            try:
                Path(output).write_text(text, encoding="utf-8")
            except OSError as exc:
                raise CommandError(f"cannot write {output}: {exc.strerror}") from None
            self.stderr.write(f"exported {project} to {output}")
        else:
            sys.stdout.write(text)
