"""A project's settings page (rename, description) and its deletion behind a confirm page."""

from __future__ import annotations

from django.contrib import messages
from django.http import HttpRequest, HttpResponse
from django.shortcuts import redirect, render
from django.urls import reverse
from django.views.decorators.http import require_http_methods

from designer.authoring import projects
from designer.models import Role
from designer.teams.access import get_membership, get_project, require_role
from designer.web.teams import ProjectForm


@require_http_methods(["GET", "POST"])
def project_settings(request: HttpRequest, team: str, project: int) -> HttpResponse:
    membership = get_membership(request, team)
    project_obj = get_project(membership, project)
    require_role(membership, Role.EDITOR, "rename a project")
    old = project_obj.name
    form = ProjectForm(request.POST or None, instance=project_obj, team=membership.team)
    if request.method == "POST" and form.is_valid():
        projects.rename(project_obj, form.cleaned_data["name"], form.cleaned_data["description"], request.user)
        messages.success(request, f"Project {old} renamed to {project_obj.name}." if old != project_obj.name
                         else f"Project {project_obj.name} saved.")
        return redirect("project", team=team, project=project_obj.pk)
    return render(request, "designer/project_settings.html", {
        "membership": membership, "project": project_obj, "form": form,
    }, status=400 if request.method == "POST" else 200)


@require_http_methods(["GET", "POST"])
def project_delete(request: HttpRequest, team: str, project: int) -> HttpResponse:
    membership = get_membership(request, team)
    project_obj = get_project(membership, project)
    require_role(membership, Role.EDITOR, "delete a project")
    error = ""
    if request.method == "POST":
        try:
            projects.delete(project_obj, request.user)
        except projects.ProjectBusy as exc:
            error = f"{project_obj.name} cannot be deleted now: {exc}. Wait for them to end, or cancel them."
        else:
            messages.success(request, f"Project {project_obj.name} deleted.")
            return redirect(reverse("team", kwargs={"team": team}))
    return render(request, "designer/project_delete.html", {
        "membership": membership, "project": project_obj, "contents": projects.contents(project_obj),
        "active_runs": projects.active_runs(project_obj), "error": error,
    }, status=409 if error else 200)
