"""Run now from an operation's card: the run's live status in the card, so the designer page stays open."""

from __future__ import annotations

from django.http import HttpRequest, HttpResponse
from django.shortcuts import render
from django_htmx.http import HttpResponseStopPolling

from designer.models import Membership, Operation, Run
from designer.teams.access import get_membership, get_run

TEMPLATE = "designer/canvas/_run_badge.html"


def target(operation: Operation) -> str:
    """The id of the card's run status: Run now posted from there is answered with the badge."""
    return f"run-of-{operation.pk}"


def badge(request: HttpRequest, membership: Membership, run: Run, note: str = "") -> HttpResponse:
    response = render(request, TEMPLATE, {"membership": membership, "run": run, "note": note})
    return HttpResponseStopPolling(response.content) if run.finished else response


def run_badge(request: HttpRequest, team: str, run: int) -> HttpResponse:
    """Polled by the badge while the run goes on; 286 (stop polling) once it ended."""
    membership = get_membership(request, team)
    return badge(request, membership, get_run(membership, run))
