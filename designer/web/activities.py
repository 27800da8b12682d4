"""Activities: one wizard for every type (Read Email: name and folder, filters, output; Send Email:
one step of defaults), the folder list of a connection, and deletion refused while in use.

The wizard keeps its state in the form itself: fields of the other steps travel as hidden
inputs, so nothing is stored before the last step and each step is validated by the same
parser that checks the saved settings.
"""

from __future__ import annotations

from django import forms
from django.contrib import messages
from django.db import transaction
from django.http import Http404, HttpRequest, HttpResponse
from django.shortcuts import render
from django.views.decorators.http import require_http_methods
from django.views.decorators.vary import vary_on_headers

from connectors.base import connector_for_activity
from designer.authoring import canvas as design
from designer.authoring import versions
from designer.authoring.forms import ActivityMetaForm, activity_ui
from designer.authoring.placement import Placement
from designer.authoring.placement import apply as apply_placement
from designer.authoring.stall_forms import StallWarningForm
from designer.models import Activity, Membership, Role
from designer.running import activity_settings
from designer.teams import audit
from designer.teams.access import get_activity, get_connection, get_membership, get_project, require_role
from designer.web.canvas import designer_url, editor, placed
from designer.web.htmx import redirect_to

TEMPLATE = "designer/canvas/activity_form.html"
# What an activity's "changed" audit entry compares.
AUDITED = ("name", "connection_id", "settings", "stall_notify_activity_id", "stall_notify_to", "stall_minutes")


@require_http_methods(["GET", "POST"])
@vary_on_headers("HX-Request")
def activity_create(request: HttpRequest, team: str, project: int, kind: str) -> HttpResponse:
    membership = get_membership(request, team)
    project_obj = get_project(membership, project)
    require_role(membership, Role.EDITOR, "create an activity")
    try:
        activity_ui(kind)
    except LookupError:
        raise Http404("No such activity type.") from None
    return _wizard(request, membership, Activity(project=project_obj, type=kind))


@require_http_methods(["GET", "POST"])
@vary_on_headers("HX-Request")
def activity_edit(request: HttpRequest, team: str, activity: int) -> HttpResponse:
    membership = get_membership(request, team)
    activity_obj = get_activity(membership, activity)
    if request.method == "POST":
        require_role(membership, Role.EDITOR, "change an activity")
    return _wizard(request, membership, activity_obj)


def _first_invalid_step(meta: ActivityMetaForm, form: forms.Form, last: int) -> int | None:
    """The first step up to ``last`` with an error (name and connection are on the first)."""
    if form.non_field_errors():
        return last
    for index, (_title, names) in enumerate(form.steps[: last + 1]):
        if (index == 0 and meta.errors) or any(name in form.errors for name in names):
            return index
    return None


def _wizard(request: HttpRequest, membership: Membership, activity: Activity) -> HttpResponse:
    ui = activity_ui(activity.type)
    creating = activity.pk is None
    last = len(ui.form.steps) - 1
    status, step, folders, folder_error = 200, 0, None, ""
    kind = connector_for_activity(activity.type).activity_type(activity.type)
    # A saved source may warn when it stalls; the section is on its page, not in the wizard.
    watchable = not creating and kind.role == "source"
    if request.method == "POST":
        meta = ActivityMetaForm(request.POST, instance=activity)
        form = ui.form(request.POST, base=activity.settings)
        stall = StallWarningForm(request.POST, instance=activity) if watchable else None
        step = min(max(_number(request.POST.get("step", "")), 0), last)
        action = request.POST.get("action", "next")
        valid = meta.is_valid() & form.is_valid() & (stall is None or stall.is_valid())  # every error is known
        if action == "back":
            step = max(step - 1, 0)
        elif action == "folders" and meta.cleaned_data.get("connection"):
            folders, folder_error = design.list_folders(meta.cleaned_data["connection"])
        elif action in ("next", "save"):
            _check_folders(form, request.POST.getlist("server_folders"))
            bad = _first_invalid_step(meta, form, step if action == "next" else last)
            if bad is None and stall is not None and stall.errors:
                bad = last
            if bad is not None:
                step, status = bad, 400
            elif action == "next":
                step = min(step + 1, last)
            elif valid and not _template_errors(meta, form):
                return _save(request, membership, meta, form, creating)
            elif valid:
                step, status = _first_invalid_step(meta, form, last) or 0, 400
    else:
        meta = ActivityMetaForm(instance=activity, initial={"connection": request.GET.get("connection")})
        form = ui.form(initial=ui.form.initial_from_settings(activity.settings), base=activity.settings)
        stall = StallWarningForm(instance=activity) if watchable else None
    template = f"{TEMPLATE}#wizard" if request.htmx else TEMPLATE
    return render(request, template, {
        "membership": membership,
        "project": activity.project,
        "activity": activity,
        "kind": kind,
        "creating": creating,
        "read_only": not membership.has_role(Role.EDITOR),
        "meta": meta,
        "form": form,
        "step": step,
        "step_title": form.steps[step][0],
        "step_fields": [form[name] for name in form.steps[step][1]],
        # A wizard's first step holds the name and connection; a one-step form shows them apart.
        "meta_in_step": step == 0 and last > 0,
        "hidden_fields": [] if not creating else [form[name] for index, (_t, names) in enumerate(form.steps)
                                                  if index != step for name in names],
        "last_step": last,
        # Editing shows every step at once, in sections: changing one field is one page and one save.
        "sections": None if creating else [(title, [form[name] for name in names]) for title, names in form.steps
                                           if names],
        "outputs": [(name, form.field_descriptions.get(name, "")) for name in kind.fields]
        if kind.role == "source" else [],
        "folders": folders,
        "folder_error": folder_error,
        "stall_form": stall,
        # Opened by a drop on the canvas: the wizard lives in a dialog there, and Cancel closes it.
        "in_dialog": bool(request.htmx) and Placement.from_query(request.GET) is not None,
    }, status=status)


def _check_folders(form: forms.Form, server_folders: list[str]) -> None:
    """A folder the settings name must be one the server listed, when the page had the list.

    Templated names are left to the run, which renders them; INBOX is case-insensitive (RFC 3501).
    """
    if not server_folders or not form.is_valid() or not hasattr(form, "folders_used"):
        return
    inbox = any(folder.upper() == "INBOX" for folder in server_folders)
    for field, name in form.folders_used().items():
        listed = name in server_folders or (inbox and name.upper() == "INBOX")
        if name and "{{" not in name and not listed:
            form.add_error(field, f"The server has no folder “{name}”. Pick one of its folders, or create it "
                                  "in your mail client and reload the list.")


def _template_errors(meta: ActivityMetaForm, form: forms.Form) -> bool:
    """Templates in the settings (a folder, a default) checked like the mapping's: syntax and unknown
    variables or fields, each shown at its field. True when there is one."""
    candidate = Activity(project=meta.instance.project, type=meta.instance.type,
                         connection=meta.cleaned_data["connection"])
    found = activity_settings.problems(candidate, form.settings)
    for path, problems in found.items():
        name = path.replace(".", "_")
        shown = name in form.fields
        for problem in problems:
            form.add_error(name if shown else None, problem if shown else f"{path}: {problem}")
    return bool(found)


def _save(request: HttpRequest, membership: Membership, meta: ActivityMetaForm, form: forms.Form,
          creating: bool) -> HttpResponse:
    activity = meta.instance
    before = {} if creating else Activity.objects.values(*AUDITED).get(pk=activity.pk)
    previous = None if creating else versions.snapshot(Activity.objects.get(pk=activity.pk))
    with transaction.atomic():
        activity = meta.save(commit=False)
        activity.settings = form.settings
        activity.save()
        if creating:
            audit.record(request.user, membership.team, "created", activity)
        else:
            after = {name: getattr(activity, name) for name in AUDITED}
            audit.record(request.user, membership.team, "changed", activity, audit.changes(
                audit.flatten(before), audit.flatten(after)))
        versions.record(activity, request.user, previous)
    placement = Placement.from_query(request.GET) if creating else None
    if placement:
        return placed(request, membership, activity.project, apply_placement(placement, activity, request.user))
    messages.success(request, f"Activity {activity.name} {'created' if creating else 'saved'}.")
    return redirect_to(request, designer_url(activity.project))


def activity_folders(request: HttpRequest, team: str, project: int) -> HttpResponse:
    """The folder picker of the Read Email wizard: the chosen connection's folders, or why not."""
    membership = editor(request, team)
    project_obj = get_project(membership, project)
    chosen = request.GET.get("connection", "")
    folders, error = None, "Choose a connection to see its folders."
    if chosen.isdigit():
        connection = get_connection(membership, int(chosen))
        if connection.project_id not in (None, project_obj.pk):
            raise Http404("No such connection in this project.")
        folders, error = design.list_folders(connection)
    return render(request, f"{TEMPLATE}#folders", {
        "membership": membership, "project": project_obj, "folders": folders, "folder_error": error,
        "loaded": True,
    })


@require_http_methods(["GET", "POST"])
def activity_delete(request: HttpRequest, team: str, activity: int) -> HttpResponse:
    membership = editor(request, team)
    activity_obj = get_activity(membership, activity)
    users = design.users_of(activity_obj)
    if request.method == "POST" and not users:
        with transaction.atomic():
            audit.record(request.user, membership.team, "deleted", activity_obj)
            activity_obj.delete()
        messages.success(request, f"Activity {activity_obj.name} deleted.")
        return redirect_to(request, designer_url(activity_obj.project))
    return render(request, "designer/canvas/activity_delete.html", {
        "membership": membership, "project": activity_obj.project, "activity": activity_obj, "users": users,
    }, status=409 if request.method == "POST" else 200)


def _number(text: str) -> int:
    """A step number from the form; anything else (a hand-made request) is the first step."""
    try:
        return int(text)
    except ValueError:
        return 0
