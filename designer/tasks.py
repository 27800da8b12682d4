"""Celery tasks. Messages carry ids only: never a secret, never a setting."""

from celery import shared_task

from designer import checks


@shared_task(acks_late=True, soft_time_limit=240, time_limit=300)
def check_connection(check_id: int) -> None:
    checks.perform(check_id)
