"""The Variables panel of a project: list, add, change, delete (refused while in use)."""

from __future__ import annotations

from django.contrib import messages
from django.db import transaction
from django.http import HttpRequest, HttpResponse
from django.shortcuts import render
from django.urls import reverse
from django.views.decorators.http import require_http_methods, require_POST
from django.views.decorators.vary import vary_on_headers

from designer.authoring import variables as project_variables
from designer.authoring.variable_forms import VariableForm
from designer.models import Membership, Project, Role, Variable
from designer.teams.access import get_membership, get_project, get_variable, require_role
from designer.web import kept_secrets
from designer.web.htmx import redirect_to

TEMPLATE = "designer/variables.html"
# The panel shares the project page with the canvas and the activity dialog: ids of its own.
NEW_IDS = "variable_%s"
EDIT_IDS = "variable_edit_%s"


def _panel(request: HttpRequest, membership: Membership, project: Project, *, form: VariableForm | None = None,
           editing: Variable | None = None, error: str = "", uses: list[str] | None = None,
           status: int = 200) -> HttpResponse:
    variables = list(project.variable_set.all())
    # A secret value typed into a form that comes back is kept for it (encrypted, in the session).
    kept_token = kept_secrets.keep(request, form, form.data) if form is not None and form.is_bound else ""
    return render(request, f"{TEMPLATE}#panel" if request.htmx else TEMPLATE, {
        "membership": membership,
        "project": project,
        "variables": variables,
        "can_edit": membership.has_role(Role.EDITOR),
        "form": (form if form is not None and editing is None
                 else VariableForm(variable=Variable(project=project), auto_id=NEW_IDS)),
        "editing": editing,
        "edit_form": form if editing is not None else None,
        "error": error,
        "uses": uses or [],
        "kept_token": kept_token,
    }, status=status)


def _back(request: HttpRequest, membership: Membership, project: Project, text: str) -> HttpResponse:
    if request.htmx:
        return _panel(request, membership, project)
    messages.success(request, text)
    return redirect_to(request, reverse("variables", kwargs={"team": membership.team.slug, "project": project.pk}))


@require_http_methods(["GET", "POST"])
@vary_on_headers("HX-Request")
def variables(request: HttpRequest, team: str, project: int) -> HttpResponse:
    membership = get_membership(request, team)
    project_obj = get_project(membership, project)
    if request.method == "GET":
        return _panel(request, membership, project_obj)
    require_role(membership, Role.EDITOR, "add a project variable")
    form = VariableForm(kept_secrets.restore(request), variable=Variable(project=project_obj), auto_id=NEW_IDS)
    if not form.is_valid():
        return _panel(request, membership, project_obj, form=form, status=400)
    with transaction.atomic():
        project_variables.save(form.variable, form.cleaned_data["name"], form.new_value,
                               form.cleaned_data["secret"], form.cleaned_data["description"], request.user)
    kept_secrets.discard(request)
    return _back(request, membership, project_obj, f"Variable {form.variable.name} added.")


@require_http_methods(["GET", "POST"])
@vary_on_headers("HX-Request")
def variable_edit(request: HttpRequest, team: str, variable: int) -> HttpResponse:
    membership = get_membership(request, team)
    variable_obj = get_variable(membership, variable)
    project = variable_obj.project
    require_role(membership, Role.EDITOR, "change a project variable")
    if request.method == "GET":
        return _panel(request, membership, project, form=VariableForm(variable=variable_obj, auto_id=EDIT_IDS),
                      editing=variable_obj)
    form = VariableForm(kept_secrets.restore(request), variable=variable_obj, auto_id=EDIT_IDS)
    if not form.is_valid():
        return _panel(request, membership, project, form=form, editing=variable_obj, status=400)
    try:
        with transaction.atomic():
            project_variables.save(variable_obj, form.cleaned_data["name"], form.new_value,
                                   form.cleaned_data["secret"], form.cleaned_data["description"], request.user)
    except project_variables.VariableInUse as exc:
        variable_obj.refresh_from_db()
        form.add_error("name", f"{variable_obj.name} is in use, so it keeps its name; change these first:")
        return _panel(request, membership, project, form=form, editing=variable_obj, uses=exc.uses, status=409)
    kept_secrets.discard(request)
    return _back(request, membership, project, f"Variable {variable_obj.name} saved.")


@require_POST
@vary_on_headers("HX-Request")
def variable_delete(request: HttpRequest, team: str, variable: int) -> HttpResponse:
    membership = get_membership(request, team)
    variable_obj = get_variable(membership, variable)
    require_role(membership, Role.EDITOR, "delete a project variable")
    try:
        with transaction.atomic():
            project_variables.delete(variable_obj, request.user)
    except project_variables.VariableInUse as exc:
        return _panel(request, membership, variable_obj.project, status=409, uses=exc.uses,
                      error=f"{variable_obj.name} cannot be deleted while it is used:")
    return _back(request, membership, variable_obj.project, f"Variable {variable_obj.name} deleted.")
