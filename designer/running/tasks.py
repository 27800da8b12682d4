"""Celery tasks. Messages carry ids only: never a secret, never a setting.

Task names stay ``designer.tasks.*`` whatever module holds them: beat's schedules and queued
messages name them. The tasks that run operations live with ``runs.start`` (``runs.execute_run``,
``runs.run_scheduled``); importing ``runs`` here registers them for the worker, and importing
``agents`` its ``mailwright_agent`` inspect command (the Agents page's versions).
"""

from celery import shared_task

from designer.authoring import connection_tests as checks
from designer.running import agents, runs, stalls  # noqa: F401 - agents: registers its inspect command


@shared_task(acks_late=True, soft_time_limit=240, time_limit=300, name="designer.tasks.check_connection")
def check_connection(check_id: int) -> None:
    checks.perform(check_id)


@shared_task(name="designer.tasks.purge_old_runs")
def purge_old_runs() -> int:
    return runs.purge() + checks.purge_drafts()


@shared_task(name="designer.tasks.reap_stale_runs")
def reap_stale_runs() -> int:
    return runs.reap_stale()


@shared_task(name="designer.tasks.watch_stalled_sources")
def watch_stalled_sources() -> int:
    return stalls.watch()
