"""The project designer page: the palette, and the canvas of workflows and operation cards.

Every change answers htmx with the part it changed (the canvas, or one card) and a plain
browser with a redirect back to the page, so the designer works without JavaScript too.
"""

from __future__ import annotations

from typing import Any
from urllib.parse import urlencode

from django.contrib import messages
from django.http import HttpRequest, HttpResponse
from django.shortcuts import redirect, render
from django.urls import reverse
from django.views.decorators.http import require_POST
from django.views.decorators.vary import vary_on_headers
from django_htmx.http import reswap, retarget, trigger_client_event

from designer.authoring import canvas as design
from designer.authoring.forms import OperationCardForm, WorkflowForm
from designer.authoring.placement import Placed
from designer.models import Membership, Operation, Project, Role, Workflow
from designer.teams import audit
from designer.teams.access import get_membership, get_operation, get_project, get_workflow, require_role

PALETTE_TABS = ("project", "team")
DESIGN = "change this project's design"


# Objects of the membership's team only: another team's id is a 404, as with designer.teams.access.


def editor(request: HttpRequest, team: str) -> Membership:
    """The membership of someone allowed to change designs (viewers get a 403 that says why)."""
    membership = get_membership(request, team)
    require_role(membership, Role.EDITOR, DESIGN)
    return membership


def designer_url(project: Project, workflow: Workflow | None = None) -> str:
    url = reverse("project", kwargs={"team": project.team.slug, "project": project.pk})
    return f"{url}?{urlencode({'workflow': workflow.pk})}" if workflow else url


def _workflow_of(operation: Operation) -> Workflow | None:
    return operation.workflow or operation.project.workflows.first()


def _context(request: HttpRequest, membership: Membership, project: Project,
             workflow: Workflow | None = None) -> dict[str, Any]:
    workflows = list(project.workflows.all())
    if workflow is None:
        chosen = request.GET.get("workflow", "")
        workflow = next((w for w in workflows if str(w.pk) == chosen), workflows[0] if workflows else None)
    operations = (design.workflow_operations(workflow) if workflow
                  else project.operations.filter(workflow__isnull=True))
    activities = design.project_activities(project)
    tab = request.GET.get("palette")
    return {
        "membership": membership,
        "project": project,
        "can_edit": membership.has_role(Role.EDITOR),
        "tab": tab if tab in PALETTE_TABS else PALETTE_TABS[0],
        "workflows": workflows,
        "workflow": workflow,
        "cards": design.cards(design.with_slots(operations)),
        "choices": design.slot_choices(activities),
        "has_activities": bool(activities),
        **design.palette(project, activities),
    }


@vary_on_headers("HX-Request")
@vary_on_headers("HX-Request", "HX-Target")
def designer(request: HttpRequest, team: str, project: int) -> HttpResponse:
    membership = get_membership(request, team)
    project_obj = get_project(membership, project)
    part = request.htmx.target if request.htmx else None
    template = "designer/project.html" + (f"#{part}" if part in ("palette", "canvas") else "")
    return render(request, template, _context(request, membership, project_obj))


def _canvas(request: HttpRequest, membership: Membership, project: Project, workflow: Workflow | None,
            status: int = 200, error: str = "") -> HttpResponse:
    if not request.htmx:
        if error:
            messages.error(request, error)
        return redirect(designer_url(project, workflow))
    context = {**_context(request, membership, project, workflow), "canvas_error": error}
    return render(request, "designer/project.html#canvas", context, status=status)


def placed(request: HttpRequest, membership: Membership, project: Project, result: Placed) -> HttpResponse:
    """After a wizard started by a drop: the canvas with the new activity in place, and the palette
    listing it. htmx swaps both where the dialog was opened and closes the dialog."""
    if not request.htmx:
        if result.error:
            messages.error(request, result.error)
        else:
            messages.success(request, result.notice)
        return redirect(designer_url(project, result.workflow))
    context = {**_context(request, membership, project, result.workflow),
               "canvas_error": result.error, "canvas_notice": result.notice, "oob": True}
    response = render(request, "designer/canvas/_placed.html", context)
    return trigger_client_event(reswap(retarget(response, "#canvas"), "outerHTML"), "mailwright:placed")


def _card(request: HttpRequest, membership: Membership, operation: Operation, *, status: int = 200,
          message: str = "") -> HttpResponse:
    if not request.htmx:
        if message:
            messages.error(request, message)
        return redirect(designer_url(operation.project, _workflow_of(operation)))
    operation = get_operation(membership, operation.pk)
    activities = design.project_activities(operation.project)
    return render(request, "designer/project.html#card", {
        "membership": membership,
        "project": operation.project,
        "can_edit": True,
        "card": design.cards([operation])[0],
        "choices": design.slot_choices(activities),
        "saved": status == 200,
        "message": message,
    }, status=status)


# Workflows ------------------------------------------------------------------------------------


@require_POST
def workflow_create(request: HttpRequest, team: str, project: int) -> HttpResponse:
    membership = editor(request, team)
    project_obj = get_project(membership, project)
    return _canvas(request, membership, project_obj, design.create_workflow(project_obj, request.user))


@require_POST
def workflow_rename(request: HttpRequest, team: str, workflow: int) -> HttpResponse:
    membership = editor(request, team)
    workflow_obj = get_workflow(membership, workflow)
    before = workflow_obj.name
    form = WorkflowForm(request.POST, instance=workflow_obj)
    if not form.is_valid():
        workflow_obj.name = before
        return _canvas(request, membership, workflow_obj.project, workflow_obj, 400,
                       error=f"Not renamed: {' '.join(form.errors['name'])}")
    if form.has_changed():
        form.save()
        audit.record(request.user, membership.team, "changed", workflow_obj, {"fields": ["name"]})
    return _canvas(request, membership, workflow_obj.project, workflow_obj)


@require_POST
def workflow_move(request: HttpRequest, team: str, workflow: int) -> HttpResponse:
    membership = editor(request, team)
    workflow_obj = get_workflow(membership, workflow)
    step = -1 if request.POST.get("direction") == "left" else 1
    design.move(workflow_obj, workflow_obj.project.workflows.all(), step)
    return _canvas(request, membership, workflow_obj.project, workflow_obj)


@require_POST
def workflow_delete(request: HttpRequest, team: str, workflow: int) -> HttpResponse:
    membership = editor(request, team)
    workflow_obj = get_workflow(membership, workflow)
    design.delete_workflow(workflow_obj, request.user)
    if not request.htmx:
        messages.success(request, f"Workflow {workflow_obj.name} deleted.")
    return _canvas(request, membership, workflow_obj.project, workflow_obj.project.workflows.first())


# Operations on the canvas ---------------------------------------------------------------------


@require_POST
def operation_create(request: HttpRequest, team: str, project: int) -> HttpResponse:
    membership = editor(request, team)
    project_obj = get_project(membership, project)
    chosen = request.POST.get("workflow", "")
    workflow = (get_workflow(membership, int(chosen)) if chosen.isdigit()
                else design.default_workflow(project_obj, request.user))
    if workflow.project_id != project_obj.pk:
        workflow = design.default_workflow(project_obj, request.user)
    design.create_operation(workflow, request.user)
    return _canvas(request, membership, project_obj, workflow)


@require_POST
def operation_card(request: HttpRequest, team: str, operation: int) -> HttpResponse:
    """Rename, or place an activity in a slot (dropped, or chosen with the keyboard)."""
    membership = editor(request, team)
    operation_obj = get_operation(membership, operation)
    form = OperationCardForm(request.POST, operation=operation_obj)
    if not form.is_valid():
        return _card(request, membership, operation_obj, status=400, message=f"Not saved: {form.error_text()}")
    try:
        design.save_operation(operation_obj, form.cleaned_data["version"], form.changes(), request.user)
    except design.Conflict as exc:
        return _card(request, membership, exc.operation, status=409, message=str(exc))
    return _card(request, membership, operation_obj)


@require_POST
def operation_move(request: HttpRequest, team: str, operation: int) -> HttpResponse:
    membership = editor(request, team)
    operation_obj = get_operation(membership, operation)
    workflow = _workflow_of(operation_obj)
    siblings = (design.workflow_operations(workflow) if workflow
                else operation_obj.project.operations.filter(workflow__isnull=True))
    design.move(operation_obj, siblings, -1 if request.POST.get("direction") == "up" else 1)
    return _canvas(request, membership, operation_obj.project, workflow)


@require_POST
def operation_delete(request: HttpRequest, team: str, operation: int) -> HttpResponse:
    membership = editor(request, team)
    operation_obj = get_operation(membership, operation)
    workflow = _workflow_of(operation_obj)
    design.delete_operation(operation_obj, request.user)
    if not request.htmx:
        messages.success(request, f"Operation {operation_obj.name} deleted.")
    return _canvas(request, membership, operation_obj.project, workflow)
