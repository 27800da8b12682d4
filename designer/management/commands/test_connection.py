from django.core.management.base import BaseCommand, CommandError

from designer.authoring import connection_tests as checks
from designer.teams import audit
from designer.teams.lookup import connection_by_name, project_by_name, team_by_name


class Command(BaseCommand):
    help = "Run a connection's Test checks, one line per step; exit 0 only when every step passed."

    def add_arguments(self, parser) -> None:
        parser.add_argument("connection")
        parser.add_argument("--project", required=True)
        parser.add_argument("--team", required=True)

    def handle(self, connection: str, project: str, team: str, **options) -> None:
        connection_obj = connection_by_name(project_by_name(team_by_name(team), project), connection)
        failed = None
        for step in checks.check_steps(connection_obj):
            self.stdout.write(f"{'ok  ' if step.ok else 'FAIL'} {step.name}: {step.detail}")
            self.stdout.flush()
            if not step.ok and failed is None:
                failed = step.name
        result = "Connection Success" if failed is None else f"failed at {failed}"
        audit.record(None, connection_obj.team, "tested", connection_obj, {"result": result, "via": "command line"})
        if failed:
            raise CommandError(f"Connection failed at step: {failed}", returncode=1)
        self.stdout.write("Connection Success")
