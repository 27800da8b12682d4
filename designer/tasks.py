"""Celery tasks. Messages carry ids only: never a secret, never a setting."""

from celery import shared_task

from designer import checks, engine, runs
from designer.models import Operation, Run


@shared_task(acks_late=True, soft_time_limit=240, time_limit=300)
def check_connection(check_id: int) -> None:
    checks.perform(check_id)


@shared_task(acks_late=True)
def execute_run(run_id: int) -> None:
    # Time limits come with each message, from the operation's timeout (runs.start).
    engine.execute(run_id)


@shared_task
def run_scheduled(operation_id: int) -> None:
    operation = Operation.objects.filter(pk=operation_id, enabled=True).first()
    if operation is not None:
        runs.start(operation, Run.Trigger.SCHEDULE)


@shared_task
def purge_old_runs() -> int:
    return runs.purge()


@shared_task
def reap_stale_runs() -> int:
    return runs.reap_stale()
