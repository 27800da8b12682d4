"""Running a connection's Test: shared by the Test button (through a worker) and the command line."""

from __future__ import annotations

from collections.abc import Iterator

from django.utils import timezone

from connectors.base import CheckStep, ConfigError
from designer.crypto import SecretsUnreadable
from designer.models import Connection, ConnectionCheck
from designer.teams import audit


def check_steps(connection: Connection) -> Iterator[CheckStep]:
    """The connector's steps, with a config or key problem reported as a failed first step."""
    try:
        config = connection.parsed_config()
    except ConfigError as exc:
        yield CheckStep("Settings", False, f"the saved settings are invalid: {exc}")
        return
    try:
        secrets = connection.get_secrets()
    except SecretsUnreadable as exc:
        yield CheckStep("Secrets", False, str(exc))
        return
    yield from connection.connector_type.check(config, secrets)


def perform(check_id: int) -> ConnectionCheck:
    """Run a queued check, saving each step as it finishes so the page can show progress."""
    check = ConnectionCheck.objects.select_related("connection__team", "requested_by").get(pk=check_id)
    if check.done:
        # A redelivered message after a worker crash: the result is already there.
        return check
    check.status = ConnectionCheck.Status.RUNNING
    check.steps = []
    check.save(update_fields=["status", "steps"])
    for step in check_steps(check.connection):
        check.steps.append({"name": step.name, "ok": step.ok, "detail": step.detail})
        check.save(update_fields=["steps"])
    passed = bool(check.steps) and all(s["ok"] for s in check.steps)
    check.status = ConnectionCheck.Status.PASSED if passed else ConnectionCheck.Status.FAILED
    check.finished_at = timezone.now()
    check.save(update_fields=["status", "finished_at"])
    failed = next((s for s in check.steps if not s["ok"]), None)
    audit.record(
        check.requested_by,
        check.connection.team,
        "tested",
        check.connection,
        {"result": "Connection Success" if passed else f"failed at {failed['name']}" if failed else "failed"},
    )
    return check
