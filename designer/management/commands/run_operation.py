import time

from django.core.management.base import BaseCommand, CommandError

from designer.authoring.rules import operation_problems
from designer.models import Run
from designer.running import runs
from designer.teams.lookup import operation_by_name, project_by_name, team_by_name


class Command(BaseCommand):
    help = "Run an operation through a Celery worker (or --inline here) and wait; exit 0 only on success."

    def add_arguments(self, parser) -> None:
        parser.add_argument("operation")
        parser.add_argument("--project", required=True)
        parser.add_argument("--team", required=True)
        parser.add_argument("--inline", action="store_true", help="run in this process instead of a worker")
        parser.add_argument("--wait", type=int, default=None, metavar="SECONDS",
                            help="give up waiting for the worker after this long (default: the operation's timeout)")
        parser.add_argument("--pickup", type=int, default=60, metavar="SECONDS",
                            help="cancel the run if no worker has started it after this long (default 60)")

    def handle(self, operation: str, project: str, team: str, inline: bool, wait: int | None, pickup: int,
               **options) -> None:
        operation_obj = operation_by_name(project_by_name(team_by_name(team), project), operation)
        problems = operation_problems(operation_obj)
        if problems:
            raise CommandError(f"{operation_obj.name} was not started, it cannot run: {'; '.join(problems)}",
                               returncode=1)
        if inline:
            run = Run.objects.create(operation=operation_obj, trigger=Run.Trigger.COMMAND)
            self.stdout.write(f"run {run.pk} started in this process")
            run = runs.execute(run.pk)
        else:
            run = runs.start(operation_obj, Run.Trigger.COMMAND)
            self.stdout.write(f"run {run.pk} queued; waiting for a worker (celery -A designer worker)")
            run = self._wait(run, wait if wait is not None else operation_obj.timeout.total_seconds() + 120, pickup)
        self.stdout.write(
            f"run {run.pk} {run.status}: {run.read_count} read, {run.sent_count} sent, "
            f"{run.skipped_count} skipped, {run.failed_count} failed"
        )
        if run.message:
            self.stdout.write(run.message)
        if run.status != Run.Status.SUCCEEDED:
            raise CommandError(f"run {run.pk} ended {run.status}", returncode=1)

    def _wait(self, run: Run, seconds: float, pickup: float) -> Run:
        started = time.monotonic()
        status = run.status
        while time.monotonic() - started < seconds:
            run.refresh_from_db()
            if run.status != status:
                status = run.status
                if not run.finished:
                    self.stdout.write(f"run {run.pk} {status}")
            if run.finished:
                return run
            if run.status == Run.Status.QUEUED and time.monotonic() - started > pickup:
                runs.cancel(run)
                raise CommandError(
                    f"no worker started run {run.pk} within {pickup} s, so it was cancelled: start one with "
                    "`celery -A designer worker` (make run does), or run here with --inline", returncode=2)
            time.sleep(0.5)
        raise CommandError(f"run {run.pk} still {run.status} after {seconds:.0f} s", returncode=2)
