"""An operation's page: the mapping editor with inline template errors, the preview, options and actions.

The form saves itself (htmx, on change) and answers with the save state, the new version and
every field's errors as out-of-band swaps, so what the editor is typing is never replaced.
"""

from __future__ import annotations

from typing import Any

from django.contrib import messages
from django.http import HttpRequest, HttpResponse
from django.shortcuts import redirect, render
from django.urls import reverse
from django.utils import timezone
from django.views.decorators.http import require_POST
from django.views.decorators.vary import vary_on_headers

from connectors.base import FieldSpec
from designer.authoring import canvas as design
from designer.authoring import record_fields
from designer.authoring.forms import OperationForm, timezone_names
from designer.authoring.rules import operation_problems
from designer.models import Membership, Operation, Role
from designer.running import agents, preview
from designer.teams.access import get_membership, get_operation
from designer.web.canvas import designer_url, editor

TEMPLATE = "designer/canvas/operation.html"


def _source_fields(operation: Operation) -> list[FieldSpec]:
    """What a template can insert: the source's fields, then the project's variables."""
    return [*record_fields.fields_of(operation.source),
            *(FieldSpec(f"vars.{name}", f"vars.{name}", "variable", "Project variable")
              for name in operation.project.variables)]


def _page(request: HttpRequest, membership: Membership, operation: Operation, form: OperationForm, *,
          status: int = 200, **extra: Any) -> HttpResponse:
    context = {
        "membership": membership,
        "project": operation.project,
        "operation": operation,
        "form": form,
        "can_edit": membership.has_role(Role.EDITOR),
        "problems": operation_problems(operation),
        "source_fields": _source_fields(operation),
        "timezones": timezone_names(),
        "back_url": designer_url(operation.project, operation.workflow),
        "message_choices": [(preview.SAMPLE, "Sample message")],
        "agent_note": agents.waiting_note(operation),
        **extra,
    }
    return render(request, TEMPLATE, context, status=status)


@vary_on_headers("HX-Request")
def operation_detail(request: HttpRequest, team: str, operation: int) -> HttpResponse:
    membership = get_membership(request, team)
    operation_obj = get_operation(membership, operation)
    extra: dict[str, Any] = {}
    if request.GET.get("messages") and membership.has_role(Role.EDITOR):
        extra = _latest(operation_obj)
    return _page(request, membership, operation_obj, OperationForm(operation=operation_obj), **extra)


@require_POST
def operation_save(request: HttpRequest, team: str, operation: int) -> HttpResponse:
    membership = editor(request, team)
    operation_obj = get_operation(membership, operation)
    form = OperationForm(request.POST, operation=operation_obj)
    # Each valid field saves even while another is invalid: that one shows its error and waits.
    saving = form if form.is_valid() else form.valid_part()
    status, state = (200, "saved") if form.is_valid() else (400, "invalid")
    conflict = ""
    if saving is not None:
        try:
            design.save_operation(operation_obj, saving.cleaned_data["version"], saving.changes(), request.user)
        except design.Conflict as exc:
            status, state, conflict = 409, "conflict", str(exc)
    if not request.htmx:
        if status == 200:
            messages.success(request, f"Operation {operation_obj.name} saved.")
            return redirect("operation", team=team, operation=operation_obj.pk)
        return _page(request, membership, operation_obj, form, status=status, state=state, conflict=conflict,
                     kept=saving is not None, unsaved=len(form.unsaved_fields()))
    return render(request, f"{TEMPLATE}#saved", {
        "form": form,
        "operation": operation_obj,
        "state": state,
        "kept": saving is not None,
        "unsaved": len(form.unsaved_fields()),
        "saved_at": timezone.now(),
        "conflict": conflict,
        "problems": operation_problems(operation_obj),
    }, status=status)


@require_POST
def operation_validate(request: HttpRequest, team: str, operation: int) -> HttpResponse:
    """Template errors as you type: the error slots of the mapping fields and the condition."""
    membership = editor(request, team)
    form = OperationForm(request.POST, operation=get_operation(membership, operation))
    form.is_valid()
    return render(request, f"{TEMPLATE}#template_errors", {"form": form})


def _latest(operation: Operation) -> dict[str, Any]:
    choices = [(preview.SAMPLE, "Sample message")]
    if operation.source is None:
        return {"message_choices": choices, "messages_error": "Place a source to preview its messages."}
    try:
        found = preview.latest_messages(operation.source)
    except preview.PreviewError as exc:
        return {"message_choices": choices, "messages_error": str(exc)}
    note = "" if found else "The source has no message to offer right now (see its filters): use the sample."
    return {"message_choices": choices + found, "messages_error": note}


@vary_on_headers("HX-Request")
def operation_messages(request: HttpRequest, team: str, operation: int) -> HttpResponse:
    """The latest messages of the source, for the preview's choice (read only, nothing marked)."""
    membership = editor(request, team)
    operation_obj = get_operation(membership, operation)
    if not request.htmx:
        return redirect(reverse("operation", kwargs={"team": team, "operation": operation}) + "?messages=1")
    return render(request, f"{TEMPLATE}#message_choice", {"operation": operation_obj, **_latest(operation_obj)})


@vary_on_headers("HX-Request")
@require_POST
def operation_preview(request: HttpRequest, team: str, operation: int) -> HttpResponse:
    """The message the operation would send for the chosen record, with what is in the form now."""
    membership = editor(request, team)
    operation_obj = get_operation(membership, operation)
    form = OperationForm(request.POST, operation=operation_obj)
    mapping, condition = form.mapping_and_condition()
    choice = request.POST.get("message", preview.SAMPLE)
    try:
        record, label = preview.source_record(operation_obj.source, choice)
        result = preview.build(operation_obj, mapping, condition, record, label)
    except preview.PreviewError as exc:
        result = preview.Preview(source_label="", error=str(exc))
    if request.htmx:
        # Also each field's rendered value and the source's values beside the chips (out-of-band).
        rendered = dict(result.fields)
        return render(request, f"{TEMPLATE}#preview_live", {
            "preview": result, "rendered_values": [(name, rendered.get(name, "")) for name in form.mapping_names]})
    extra = _latest(operation_obj) if choice != preview.SAMPLE else {}
    return _page(request, membership, operation_obj, form, preview=result, chosen=choice, **extra)
