"""Design history on the operation page: the versions of the operation and of its activities, with Restore."""

from __future__ import annotations

from django.contrib import messages
from django.http import HttpRequest, HttpResponse
from django.shortcuts import render
from django.urls import reverse
from django.views.decorators.http import require_POST

from designer.authoring import canvas as design
from designer.authoring import restore, versions
from designer.models import Role
from designer.teams.access import get_design_version, get_membership, get_operation, require_role
from designer.web.htmx import redirect_to


def operation_history(request: HttpRequest, team: str, operation: int) -> HttpResponse:
    membership = get_membership(request, team)
    operation_obj = get_operation(membership, operation)
    histories = [("Operation", operation_obj.name, versions.versions(operation_obj))]
    for role, activity in (("Source", operation_obj.source), ("Target", operation_obj.target)):
        if activity is not None:
            histories.append((role, activity.name, versions.versions(activity)))
    return render(request, "designer/canvas/design_history.html", {
        "membership": membership, "project": operation_obj.project, "operation": operation_obj,
        "histories": histories, "can_edit": membership.has_role(Role.EDITOR), "partial": bool(request.htmx),
    })


@require_POST
def version_restore(request: HttpRequest, team: str, operation: int, version: int) -> HttpResponse:
    membership = get_membership(request, team)
    require_role(membership, Role.EDITOR, "restore a version")
    operation_obj = get_operation(membership, operation)
    version_obj = get_design_version(membership, version)
    try:
        kept = restore.restore(version_obj, request.user)
    except design.Conflict as exc:
        messages.error(request, str(exc))
    except ValueError as exc:
        messages.error(request, f"Version {version_obj.number} was not restored: {exc}.")
    else:
        note = f" Kept as it is: {'; '.join(kept)}." if kept else ""
        messages.success(request, f"Restored version {version_obj.number}.{note}")
    return redirect_to(request, reverse("operation", kwargs={"team": team, "operation": operation_obj.pk}))
