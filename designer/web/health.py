"""The team's overview of its sources: is every Read Email activity still polling successfully?"""

from __future__ import annotations

from django.http import HttpRequest, HttpResponse
from django.shortcuts import render

from designer.history import health
from designer.teams.access import get_membership


def sources(request: HttpRequest, team: str) -> HttpResponse:
    membership = get_membership(request, team)
    return render(request, "designer/runs/sources.html", {
        "membership": membership,
        "sources": health.team_sources(membership.team),
    })
