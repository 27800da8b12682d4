"""Running a connection's Test: shared by the Test button (through a worker) and the command line."""

from __future__ import annotations

from collections.abc import Iterator
from datetime import datetime, timedelta
from typing import Any

from django.utils import timezone

from connectors.base import CheckStep, ConfigError
from designer.crypto import SecretsUnreadable
from designer.models import Connection, ConnectionCheck, Team
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


def draft(team: Team, connector: str, config: dict[str, Any], secrets: dict[str, str], user: Any) -> ConnectionCheck:
    """A test of a connection form's unsaved settings. Only its id goes to a worker; the secrets wait
    here encrypted, like a connection's, and are wiped as soon as the test has run."""
    check = ConnectionCheck(team=team, draft_connector=connector, draft_config=config, requested_by=user)
    carrier = check.tested_connection()
    carrier.set_secrets(secrets)
    check.draft_secrets_token = carrier.secrets_token
    check.save()
    return check


# A draft nobody ran (no worker, the page closed) keeps its encrypted secrets at most this long.
DRAFT_LIFETIME = timedelta(hours=1)


def purge_drafts(now: datetime | None = None) -> int:
    """Forget the form tests of unsaved settings once they are of no more use (and their secrets)."""
    cutoff = (now or timezone.now()) - DRAFT_LIFETIME
    return ConnectionCheck.objects.filter(connection__isnull=True, created_at__lt=cutoff).delete()[0]


def perform(check_id: int) -> ConnectionCheck:
    """Run a queued check, saving each step as it finishes so the page can show progress."""
    check = ConnectionCheck.objects.select_related("connection__team", "team", "requested_by").get(pk=check_id)
    if check.done or (check.is_draft and check.status != ConnectionCheck.Status.QUEUED):
        # A redelivered message after a worker crash, or a draft the web process took over.
        return check
    claimed = ConnectionCheck.objects.filter(pk=check.pk, status=check.status).update(
        status=ConnectionCheck.Status.RUNNING, steps=[])
    if not claimed:
        return check  # the worker and the web process raced for a draft: the other one runs it
    check.status, check.steps = ConnectionCheck.Status.RUNNING, []
    try:
        for step in check_steps(check.tested_connection()):
            check.steps.append({"name": step.name, "ok": step.ok, "detail": step.detail})
            check.save(update_fields=["steps"])
    finally:
        if check.is_draft:
            check.draft_secrets_token = ""
            check.save(update_fields=["draft_secrets_token"])
    passed = bool(check.steps) and all(s["ok"] for s in check.steps)
    check.status = ConnectionCheck.Status.PASSED if passed else ConnectionCheck.Status.FAILED
    check.finished_at = timezone.now()
    check.save(update_fields=["status", "finished_at"])
    if check.is_draft:
        return check  # nothing saved, nothing to audit: the form's Save records the connection
    failed = next((s for s in check.steps if not s["ok"]), None)
    audit.record(
        check.requested_by,
        check.connection.team,
        "tested",
        check.connection,
        {"result": "Connection Success" if passed else f"failed at {failed['name']}" if failed else "failed"},
    )
    return check
