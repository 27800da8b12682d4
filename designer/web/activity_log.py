"""The team's Activity page: its audit trail, filtered by object type and person, a page at a time."""

from __future__ import annotations

from urllib.parse import urlencode

from django.core.paginator import Paginator
from django.http import HttpRequest, HttpResponse
from django.shortcuts import render

from designer.teams import audit
from designer.teams.access import get_membership

PER_PAGE = 50


def team_activity(request: HttpRequest, team: str) -> HttpResponse:
    membership = get_membership(request, team)
    object_type = request.GET.get("type", "")
    object_type = object_type if object_type in audit.OBJECT_TYPES else ""
    person = request.GET.get("person", "")
    entries = audit.team_entries(membership.team, object_type, person)
    page = Paginator(entries, PER_PAGE).get_page(request.GET.get("page"))
    filters = {k: v for k, v in (("type", object_type), ("person", person)) if v}
    return render(request, "designer/team_activity.html", {
        "membership": membership,
        "page": page,
        "types": audit.OBJECT_TYPES.items(),
        "people": audit.people(membership.team),
        "object_type": object_type,
        "person": person,
        "query": urlencode(filters),
    })
