"""Celery tasks. Messages carry ids only: never a secret, never a setting.

Task names stay ``designer.tasks.*`` whatever module holds them: beat's schedules and queued
messages name them.
"""

from celery import shared_task

from designer.authoring import connection_tests as checks
from designer.models import Operation, Run
from designer.running import engine, runs


@shared_task(acks_late=True, soft_time_limit=240, time_limit=300, name="designer.tasks.check_connection")
def check_connection(check_id: int) -> None:
    checks.perform(check_id)


@shared_task(acks_late=True, name="designer.tasks.execute_run")
def execute_run(run_id: int) -> None:
    # Time limits come with each message, from the operation's timeout (runs.start).
    engine.execute(run_id)


@shared_task(name="designer.tasks.run_scheduled")
def run_scheduled(operation_id: int) -> None:
    operation = Operation.objects.filter(pk=operation_id, enabled=True).first()
    if operation is not None:
        runs.start(operation, Run.Trigger.SCHEDULE)


@shared_task(name="designer.tasks.purge_old_runs")
def purge_old_runs() -> int:
    return runs.purge()


@shared_task(name="designer.tasks.reap_stale_runs")
def reap_stale_runs() -> int:
    return runs.reap_stale()
