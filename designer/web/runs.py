"""Runs in the browser: Run now, a run's live page, cancel and replay, the history with its chart, import.

Viewers see everything and change nothing: every action checks the role on the server, and the
templates leave out the controls a member cannot use.
"""

from __future__ import annotations

import json
from datetime import timedelta

from django import forms
from django.conf import settings
from django.contrib import messages
from django.http import HttpRequest, HttpResponse
from django.shortcuts import get_object_or_404, render
from django.urls import reverse
from django.utils import timezone
from django.views.decorators.http import require_http_methods, require_POST
from django.views.decorators.vary import vary_on_headers
from django_htmx.http import HttpResponseStopPolling

from designer.authoring import projectfile
from designer.authoring.rules import operation_problems
from designer.history import chart as charts
from designer.history import health
from designer.history import queries as history
from designer.history.filters import HistoryFilterForm
from designer.models import Membership, Operation, Project, Role, Run, RunRecord
from designer.running import agents, runs
from designer.teams import audit
from designer.teams.access import get_membership, get_operation, get_project, get_run, require_role
from designer.web import card_runs
from designer.web.htmx import redirect_to

# A project file is a few kilobytes; this only stops a mistaken upload of something else.
MAX_IMPORT_BYTES = 2 * 1024 * 1024


def _run_url(membership: Membership, run: Run) -> str:
    return reverse("run", kwargs={"team": membership.team.slug, "run": run.pk})


# -- run now, a run's page ----------------------------------------------------------------------------


@require_POST
def operation_run(request: HttpRequest, team: str, operation: int) -> HttpResponse:
    membership = get_membership(request, team)
    require_role(membership, Role.EDITOR, "run an operation")
    operation_obj = get_operation(membership, operation)
    problems = operation_problems(operation_obj)
    if problems:
        return _run_refused(request, membership, operation_obj, problems)
    run = runs.start(operation_obj, Run.Trigger.MANUAL, user=request.user)
    note = agents.waiting_note(operation_obj)
    if request.htmx and request.htmx.target == card_runs.target(operation_obj):
        return card_runs.badge(request, membership, run, note)
    if note:
        messages.warning(request, f"Run {run.pk} queued, but {note}.")
    return redirect_to(request, _run_url(membership, run), status=303)


def _run_refused(request: HttpRequest, membership: Membership, operation: Operation,
                 problems: list[str]) -> HttpResponse:
    """No run for an operation that cannot run: the reasons, where Run now was pressed (409, swapped)."""
    if request.htmx:
        return render(request, "designer/runs/_run_refused.html", {"problems": problems}, status=409)
    messages.error(request, f"{operation.name} was not started: {'; '.join(problems)}.")
    return redirect_to(request, reverse("operation", kwargs={"team": membership.team.slug,
                                                            "operation": operation.pk}), status=303)


def _run_context(membership: Membership, run: Run) -> dict:
    run.duration_text = history.duration_text(run)
    waited = (timezone.now() - run.queued_at).total_seconds()
    return {
        "membership": membership,
        "run": run,
        "detail": history.run_detail(run),
        "can_run": membership.has_role(Role.EDITOR),
        "replayable": runs.REPLAYABLE,
        # The Test button's patience, reused: a run nobody picks up means no worker is running.
        "no_worker": run.status == Run.Status.QUEUED and waited > settings.MAILWRIGHT_CHECK_PICKUP_SECONDS,
        "agent_note": agents.waiting_note(run.operation) if run.status == Run.Status.QUEUED else "",
    }


def run_page(request: HttpRequest, team: str, run: int) -> HttpResponse:
    membership = get_membership(request, team)
    return render(request, "designer/runs/run.html", _run_context(membership, get_run(membership, run)))


def run_progress(request: HttpRequest, team: str, run: int) -> HttpResponse:
    """The live part of a run page; polled while the run goes on, 286 (stop polling) once it ended."""
    membership = get_membership(request, team)
    run_obj = get_run(membership, run)
    response = render(request, "designer/runs/run.html#progress", _run_context(membership, run_obj))
    if run_obj.finished:
        return HttpResponseStopPolling(response.content)
    return response


def _rendered_fields(rendered: dict) -> list[tuple[str, str]]:
    """The rendered message's header-like fields as text; body and attachments are shown on their own."""
    fields = []
    for name, value in rendered.items():
        if name in ("text", "html", "attachments") or value in (None, "", [], {}):
            continue
        if isinstance(value, list):
            value = ", ".join(str(item) for item in value)
        elif isinstance(value, dict):
            value = "; ".join(f"{k}: {v}" for k, v in value.items())
        fields.append((name, str(value)))
    return fields


def record_page(request: HttpRequest, team: str, run: int, record: int) -> HttpResponse:
    """One message of a run: as read, as delivered, its ledger entry across runs, and the whole rendered
    message when the operation's debug mode was on."""
    membership = get_membership(request, team)
    run_obj = get_run(membership, run)
    record_obj = get_object_or_404(RunRecord.objects.select_related("ledger"), run=run_obj, pk=record)
    rendered = record_obj.rendered or {}
    steps = (RunRecord.objects.filter(ledger_id=record_obj.ledger_id).order_by("created_at", "pk")[:50]
             if record_obj.ledger_id else [])
    return render(request, "designer/runs/record.html", {
        "membership": membership,
        "run": run_obj,
        "record": record_obj,
        "rendered": rendered,
        "rendered_fields": _rendered_fields(rendered),
        "ledger_steps": steps,
        # Shown as text in a <pre>: the page never renders a message's HTML.
        "rendered_json": json.dumps(rendered, indent=2, ensure_ascii=False, default=str) if rendered else "",
        "can_run": membership.has_role(Role.EDITOR),
        "replayable": runs.REPLAYABLE,
    })


@require_http_methods(["GET", "POST"])
def run_cancel(request: HttpRequest, team: str, run: int) -> HttpResponse:
    """GET asks for confirmation (the page without JavaScript); POST cancels."""
    membership = get_membership(request, team)
    run_obj = get_run(membership, run)
    require_role(membership, Role.EDITOR, "cancel a run")
    if request.method == "POST":
        if run_obj.finished:
            messages.info(request, f"Run {run_obj.pk} had already ended {run_obj.get_status_display().lower()}.")
        else:
            runs.cancel(run_obj)
            audit.record(request.user, membership.team, "cancelled", run_obj.operation, {"run": run_obj.pk})
            messages.success(request, f"Run {run_obj.pk} is being cancelled: it stops before its next message.")
        return redirect_to(request, _run_url(membership, run_obj), status=303)
    return render(request, "designer/runs/confirm.html", {
        "membership": membership, "run": run_obj, "action": "cancel",
    })


@require_http_methods(["GET", "POST"])
def record_replay(request: HttpRequest, team: str, run: int, record: int) -> HttpResponse:
    """GET asks for confirmation; POST sends the one message again, once (runs.replay guards "once")."""
    membership = get_membership(request, team)
    run_obj = get_run(membership, run)
    record_obj = get_object_or_404(RunRecord.objects.select_related("run__operation"), run=run_obj, pk=record)
    require_role(membership, Role.EDITOR, "replay a message")
    if request.method == "POST":
        try:
            replay = runs.replay(record_obj, user=request.user)
        except runs.ReplayRefused as exc:
            messages.error(request, f"Not replayed: {exc}.")
            return redirect_to(request, _run_url(membership, run_obj), status=303)
        messages.success(request, f"Replaying “{record_obj.subject or '(no subject)'}” as run {replay.pk}.")
        return redirect_to(request, _run_url(membership, replay), status=303)
    return render(request, "designer/runs/confirm.html", {
        "membership": membership, "run": run_obj, "record": record_obj, "action": "replay",
    })


# -- history ------------------------------------------------------------------------------------------


def _history_scope(request: HttpRequest, team: str, project: int | None) -> tuple[Membership, Project | None,
                                                                                 HistoryFilterForm]:
    membership = get_membership(request, team)
    project_obj = get_project(membership, project) if project else None
    form = HistoryFilterForm(request.GET, team=membership.team, project=project_obj)
    return membership, project_obj, form


@vary_on_headers("HX-Request")
def run_list(request: HttpRequest, team: str, project: int | None = None) -> HttpResponse:
    """The history of the team's (or one project's) runs.

    htmx swaps parts: the filters swap the table and the chart (which follows the operation),
    the page links only the table.
    """
    membership, project_obj, form = _history_scope(request, team, project)
    scope = history.team_runs(membership.team, project_obj)
    runs = form.filter(scope)
    # Chained runs are listed under the run that started them, unless a filter is set: then every
    # matching run is a row of its own (a chained run whose starter the filter leaves out included).
    filtered = any(form.cleaned_data.get(name) for name in form.fields)
    grouped = not filtered
    runs_page = history.page(
        runs.filter(parent__isnull=True) if grouped else runs,
        before=history.cursor(request.GET.get("before")),
        after=history.cursor(request.GET.get("after")),
    )
    runs_page.runs = history.with_durations(runs_page.runs)
    if grouped:
        for run in history.with_chains(runs_page.runs, scope):
            history.with_durations(run.chain)
    context = {
        "membership": membership,
        "project": project_obj,
        "form": form,
        "page": runs_page,
        "newest_url": form.query(),
        "newer_url": form.query(after=runs_page.newer) if runs_page.newer else "",
        "older_url": form.query(before=runs_page.older) if runs_page.older else "",
        "operation": form.cleaned_data.get("operation"),
        "filtered": filtered,
        "can_run": membership.has_role(Role.EDITOR),
        "chart_url": _chart_url(membership, project_obj) + form.query(),
        "days": history.CHART_DAYS,
    }
    template = "designer/runs/history.html"
    if request.htmx:
        part = "table" if request.htmx.target == "runs-table" else "history"
        return render(request, f"{template}#{part}", context)
    context["alarms"] = [a for a in health.team_sources(membership.team) if a.health.alarm]
    return render(request, template, context)


def _chart_url(membership: Membership, project: Project | None) -> str:
    if project is None:
        return reverse("runs_chart", kwargs={"team": membership.team.slug})
    return reverse("project_runs_chart", kwargs={"team": membership.team.slug, "project": project.pk})


def _chart_series(days: list[history.DayCounts]) -> tuple[charts.Chart, charts.Chart]:
    labels = [d.day for d in days]
    runs_chart = charts.stacked_bars(
        "runs-per-day", "Runs per day by status", labels,
        [charts.Series(status, label, [d.runs.get(status, 0) for d in days]) for status, label in Run.Status.choices],
        "runs",
    )
    messages_chart = charts.stacked_bars(
        "messages-per-day", "Messages per day by outcome", labels,
        [charts.Series(key, label, [d.messages.get(key, 0) for d in days]) for key, label in history.MESSAGE_OUTCOMES],
        "messages",
    )
    return runs_chart, messages_chart


@vary_on_headers("HX-Request")
def run_chart(request: HttpRequest, team: str, project: int | None = None) -> HttpResponse:
    """The chart beside the table, loaded on its own so paging never recomputes it. It follows every
    filter of the table: operation, status, and the date range (else the last 30 days)."""
    membership, project_obj, form = _history_scope(request, team, project)
    form.is_valid()
    data = form.cleaned_data
    operations = history.team_operations(membership.team, project_obj)
    operation, status = data.get("operation"), data.get("status") or ""
    if operation:
        operations = operations.filter(pk=operation.pk)
    last = data.get("until") or timezone.localdate()
    first = data.get("since") or last - timedelta(days=history.CHART_DAYS - 1)
    days = max(1, min((last - first).days + 1, history.MAX_CHART_DAYS))
    scope = f"{membership.team_id}:{project_obj.pk if project_obj else ''}:{operation.pk if operation else ''}"
    context = {
        "membership": membership,
        "project": project_obj,
        "charts": _chart_series(history.per_day(operations, days, cache_key=scope, last=last, status=status)),
        "days": days,
        "period": (f"the last {days} days" if not data.get("since") and not data.get("until")
                   else f"{last - timedelta(days=days - 1):%b %-d} – {last:%b %-d, %Y}"),
    }
    return render(request, "designer/runs/chart.html#chart" if request.htmx else "designer/runs/chart.html", context)


# -- project import -----------------------------------------------------------------------------------


class ImportForm(forms.Form):
    file = forms.FileField(label="Project file",
                           help_text="A JSON file in the format mailwright.project/1, e.g. exported from a project.")

    def clean_file(self):
        upload = self.cleaned_data["file"]
        if upload.size > MAX_IMPORT_BYTES:
            raise forms.ValidationError(f"The file is {upload.size // 1024} KB; a project file is at most "
                                        f"{MAX_IMPORT_BYTES // 1024 // 1024} MB.")
        return upload


@require_http_methods(["GET", "POST"])
def project_import(request: HttpRequest, team: str) -> HttpResponse:
    """Import a project file: every error with its path and nothing imported, or the report of what changed."""
    membership = get_membership(request, team)
    require_role(membership, Role.EDITOR, "import a project")
    form = ImportForm(request.POST, request.FILES) if request.method == "POST" else ImportForm()
    context: dict = {"membership": membership, "form": form, "errors": [], "report": [], "project": None}
    if request.method == "POST" and form.is_valid():
        try:
            # No environment: a browser user must not read the server's variables into a connection's
            # password (and so out to a server of theirs). {"env": ...} is for manage.py import_project.
            file_plan = projectfile.plan(projectfile.loads(form.cleaned_data["file"].read()), environ={})
            context["report"] = projectfile.apply(file_plan, membership.team, request.user)
        except projectfile.ProjectFileError as exc:
            context["errors"] = exc.errors
        else:
            context["project"] = Project.objects.get(team=membership.team, name=file_plan.name)
    status = 400 if request.method == "POST" and (form.errors or context["errors"]) else 200
    return render(request, "designer/runs/project_import.html", context, status=status)

