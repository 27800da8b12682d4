"""How long a broker lets a worker hold a run's task, against how long a run may last.

A run holds its task unacknowledged until it ends (late acknowledgement), up to its operation's
timeout plus the time limits' slack. A broker that hands the task to a second worker sooner starts a
second copy of a live run: the lease keeps the copy from sending, but that is a safety net, not a way
to run. So the settings refuse to start when the broker's redelivery time is not above that hold.
"""

from __future__ import annotations

from django.core.exceptions import ImproperlyConfigured

# Celery's soft limit fires this long after the operation's timeout, the hard limit this long after.
SOFT_LIMIT_SLACK = 30
HARD_LIMIT_SLACK = 90
# Redis' default visibility timeout: the longest hold and this margin.
VISIBILITY_MARGIN = 3600
# RabbitMQ's own default consumer_timeout (30 min), in its unit.
RABBITMQ_DEFAULT_CONSUMER_TIMEOUT_MS = 30 * 60 * 1000


def longest_hold(max_operation_minutes: int) -> int:
    """Seconds a run of the longest allowed timeout may hold its task."""
    return max_operation_minutes * 60 + HARD_LIMIT_SLACK


def is_redis(url: str) -> bool:
    return url.startswith(("redis://", "rediss://", "redis+socket://"))


def is_rabbitmq(url: str) -> bool:
    return url.startswith(("amqp://", "amqps://", "pyamqp://", "librabbitmq://"))


def default_visibility_timeout(max_operation_minutes: int) -> int:
    return longest_hold(max_operation_minutes) + VISIBILITY_MARGIN


def _duration(seconds: float) -> str:
    seconds = int(seconds)
    hours, rest = divmod(seconds, 3600)
    minutes, secs = divmod(rest, 60)
    parts = [f"{hours} h" if hours else "", f"{minutes} min" if minutes else "", f"{secs} s" if secs else ""]
    return " ".join(part for part in parts if part) or "0 s"


def check_redelivery(url: str, transport_options: dict[str, object], max_operation_minutes: int,
                     rabbitmq_consumer_timeout_ms: int) -> None:
    """Refuse a broker that would hand a live run's task to a second worker (numbers in the message)."""
    hold = longest_hold(max_operation_minutes)
    fix = f"or lower MAILWRIGHT_MAX_OPERATION_MINUTES (now {max_operation_minutes})"
    needed = (f"the longest a run may hold its task: {_duration(hold)} (MAILWRIGHT_MAX_OPERATION_MINUTES="
              f"{max_operation_minutes} plus {HARD_LIMIT_SLACK} s of time limit)")
    if is_redis(url):
        visibility = transport_options.get("visibility_timeout")
        if not isinstance(visibility, int | float) or visibility <= hold:
            raise ImproperlyConfigured(
                f"Redis' visibility timeout ({visibility!r} s) must exceed {needed}: set "
                f"CELERY_VISIBILITY_TIMEOUT above {hold} (default {default_visibility_timeout(max_operation_minutes)}) "
                f"{fix}."
            )
    elif is_rabbitmq(url) and rabbitmq_consumer_timeout_ms <= hold * 1000:
        raise ImproperlyConfigured(
            f"RabbitMQ's consumer_timeout ({rabbitmq_consumer_timeout_ms} ms = "
            f"{_duration(rabbitmq_consumer_timeout_ms / 1000)}, as RABBITMQ_CONSUMER_TIMEOUT declares) must exceed "
            f"{needed}: raise consumer_timeout in rabbitmq.conf above {hold * 1000} and set "
            f"RABBITMQ_CONSUMER_TIMEOUT to it, {fix}."
        )
