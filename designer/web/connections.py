from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from csp.constants import SELF
from csp.decorators import csp_replace
from django import forms
from django.conf import settings
from django.contrib import messages
from django.db import transaction
from django.http import Http404, HttpRequest, HttpResponse
from django.shortcuts import redirect, render
from django.urls import reverse
from django.utils import timezone
from django.views.decorators.clickjacking import xframe_options_sameorigin
from django.views.decorators.http import require_http_methods, require_POST
from django.views.decorators.vary import vary_on_headers
from django_htmx.http import HttpResponseStopPolling, reswap, retarget

from connectors.base import all_connectors, get_connector
from designer.authoring import canvas as design
from designer.authoring import connection_store, connection_tests
from designer.models import Connection, ConnectionCheck, Membership, Project, Role
from designer.running import agents
from designer.running.tasks import check_connection
from designer.teams import audit
from designer.teams.access import (
    can_change_connection,
    get_check,
    get_connection,
    get_membership,
    get_project,
    require_connection_change,
    require_role,
)
from designer.web import kept_secrets
from designer.web.htmx import redirect_to


class ConnectionMetaForm(forms.ModelForm):
    """Name and description: the part of a connection every connector shares."""

    class Meta:
        model = Connection
        fields = ["name", "description"]
        widgets = {"description": forms.Textarea(attrs={"rows": 2})}

    def clean_name(self) -> str:
        # The uniqueness constraints involve team and project, which are not form fields, so
        # Django's form validation would skip them; check here for a message instead of a crash.
        name = self.cleaned_data["name"]
        same = Connection.objects.filter(team=self.instance.team, project=self.instance.project, name=name)
        if same.exclude(pk=self.instance.pk).exists():
            where = "this project" if self.instance.project_id else "the team's connections"
            raise forms.ValidationError(f"A connection called “{name}” already exists in {where}.")
        return name


def team_connections(request: HttpRequest, team: str) -> HttpResponse:
    membership = get_membership(request, team)
    return render(request, "designer/team_connections.html", {
        "membership": membership,
        "connections": membership.team.connections.filter(project__isnull=True),
    })


# The id of the connection form's test box: a Test posted from there is answered with the box alone.
FORM_TEST = "form-test"


@dataclass
class FormTest:
    """The connection form's Test: the check of its unsaved settings, or why it could not start."""

    check: ConnectionCheck | None = None
    problem: str = ""
    here: bool = False  # run in the web process: no worker answered


def _test_unsaved(request: HttpRequest, membership: Membership, connection: Connection, settings_form: Any,
                  stored: dict[str, str]) -> FormTest:
    """Test the settings as typed, saving nothing: with the typed secrets, or the stored ones when
    nothing that binds them changed (the form refuses them otherwise, as Save does)."""
    require_role(membership, Role.EDITOR, "test a connection")
    if not settings_form.is_valid():
        return FormTest(problem="Correct the fields marked below first; nothing was tested.")
    check = connection_tests.draft(membership.team, connection.connector, settings_form.config.to_dict(),
                                   settings_form.merged_secrets(stored), request.user)
    if agents.live_agents() == []:
        # The broker says no worker is running: test here, bounded by the same connection timeouts.
        return FormTest(connection_tests.perform(check.pk), here=True)
    check_connection.delay(check.pk)  # its id only: the secrets stay encrypted in the database
    check.refresh_from_db()
    return FormTest(check)


def _save(request: HttpRequest, membership: Membership, connection: Connection,
          project: Project | None) -> HttpResponse:
    """Create or edit: one view body for both, as the style guide asks."""
    creating = connection.pk is None
    stored = connection.get_secrets() if connection.secrets_token else {}
    connector = connection.connector_type
    form_class = connector.connection_form
    form_test, kept_token = None, ""
    # Opened in a dialog of the designer (?framed=1): the page has no header, and tells its opener.
    framed = request.GET.get("framed") == "1"
    from_test_box = bool(request.htmx) and request.htmx.target == FORM_TEST
    if request.method == "POST":
        data = kept_secrets.restore(request)
        meta = ConnectionMetaForm(data, instance=connection)
        settings_form = form_class(data, stored_secrets=stored,
                                   stored_config=None if creating else connection.config)
        if request.POST.get("action") == "test":
            form_test = _test_unsaved(request, membership, connection, settings_form, stored)
            if form_test.check and from_test_box:
                return render(request, "designer/connection_form.html#form_test",
                              {"membership": membership, "form_test": form_test})
        elif meta.is_valid() and settings_form.is_valid():
            changes = connection_store.apply(
                connection,
                meta.cleaned_data["name"],
                meta.cleaned_data["description"],
                settings_form.config.to_dict(),
                settings_form.merged_secrets(stored),
            )
            if creating:
                connection.created_by = request.user
            connection.save()
            kept_secrets.discard(request)
            audit.record(request.user, membership.team, "created" if creating else "changed", connection,
                         {} if creating else changes)
            if framed:
                template = "designer/connection_created.html" + ("#created" if request.htmx else "")
                return render(request, template, {
                    "membership": membership, "connection": connection, "framed": True,
                    "serves": " ".join(design.serving_kinds(connection)),
                })
            messages.success(request, f"Connection {connection.name} {'created' if creating else 'saved'}.")
            url = reverse("connection", kwargs={"team": membership.team.slug, "connection": connection.pk})
            return redirect_to(request, url)
        status = 200 if form_test and form_test.check else 400
        # The secrets typed are kept (encrypted, in the session) for this form, so an error elsewhere
        # never makes anyone type them again.
        kept_token = kept_secrets.keep(request, settings_form, data)
    else:
        meta = ConnectionMetaForm(instance=connection)
        initial = form_class.initial_from_config(connection.config) if not creating else None
        settings_form = form_class(initial=initial, stored_secrets=stored)
        status = 200
    connector.bind_connection_form(settings_form, request)
    template = "designer/connection_form.html#form" if request.htmx else "designer/connection_form.html"
    response = render(request, template, {
        "membership": membership,
        "project": project,
        "connection": connection,
        "creating": creating,
        "meta": meta,
        "form": settings_form,
        "form_test": form_test,
        "kept_token": kept_token,
        "framed": framed,
    }, status=status)
    if from_test_box:
        # Test refused settings with errors: the whole form comes back, so the fields it names are marked.
        return reswap(retarget(response, "#connection-form"), "outerHTML")
    return response


@vary_on_headers("HX-Request")
@require_http_methods(["GET", "POST"])
@xframe_options_sameorigin
@csp_replace({"frame-ancestors": [SELF]})
def connection_create(request: HttpRequest, team: str, project: int | None = None) -> HttpResponse:
    membership = get_membership(request, team)
    project_obj = get_project(membership, project) if project else None
    if project_obj is None:
        require_role(membership, Role.ADMIN, "create a team connection (its credentials are shared)")
    else:
        require_role(membership, Role.EDITOR, "create a connection")
    connection = Connection(team=membership.team, project=project_obj, connector=_connector_key(request))
    return _save(request, membership, connection, project_obj)


@vary_on_headers("HX-Request")
@require_http_methods(["GET", "POST"])
def connection_edit(request: HttpRequest, team: str, connection: int) -> HttpResponse:
    membership = get_membership(request, team)
    connection_obj = get_connection(membership, connection)
    require_connection_change(membership, connection_obj)
    return _save(request, membership, connection_obj, connection_obj.project)


def connection_detail(request: HttpRequest, team: str, connection: int) -> HttpResponse:
    membership = get_membership(request, team)
    connection_obj = get_connection(membership, connection)
    return render(request, "designer/connection_detail.html", {
        "membership": membership,
        "connection": connection_obj,
        "config": connection_obj.config,
        "can_change": can_change_connection(membership, connection_obj),
        "can_test": membership.has_role(Role.EDITOR),
        "last_check": connection_obj.checks.first(),
        "history": audit.history(connection_obj),
        "dependents": connection_obj.dependents(),
        **connection_obj.connector_type.connection_page_context(request, connection_obj),
    })


@require_http_methods(["GET", "POST"])
def connection_delete(request: HttpRequest, team: str, connection: int) -> HttpResponse:
    membership = get_membership(request, team)
    connection_obj = get_connection(membership, connection)
    require_connection_change(membership, connection_obj)
    dependents = connection_obj.dependents()
    if request.method == "POST" and not dependents:
        audit.record(request.user, membership.team, "deleted", connection_obj)
        project = connection_obj.project
        connection_obj.delete()
        messages.success(request, f"Connection {connection_obj.name} deleted.")
        if project:
            return redirect("project", team=team, project=project.pk)
        return redirect("team_connections", team=team)
    return render(request, "designer/connection_delete.html", {
        "membership": membership,
        "connection": connection_obj,
        "dependents": dependents,
    }, status=409 if request.method == "POST" else 200)


@require_POST
def connection_test(request: HttpRequest, team: str, connection: int) -> HttpResponse:
    membership = get_membership(request, team)
    connection_obj = get_connection(membership, connection)
    require_role(membership, Role.EDITOR, "test a connection")
    with transaction.atomic():
        check = ConnectionCheck.objects.create(connection=connection_obj, requested_by=request.user)
        # Only the id travels to the worker; it reads the rest from the database.
        check_connection.delay_on_commit(check.pk)
    check.refresh_from_db()
    return render(request, "designer/connection_detail.html#check", {
        "membership": membership, "connection": connection_obj, "last_check": check,
    })


def check_status(request: HttpRequest, team: str, check: int) -> HttpResponse:
    membership = get_membership(request, team)
    check_obj = get_check(membership, check)
    waited = (timezone.now() - check_obj.created_at).total_seconds()
    no_worker = check_obj.status == ConnectionCheck.Status.QUEUED and waited > settings.MAILWRIGHT_CHECK_PICKUP_SECONDS
    if check_obj.is_draft:
        here = no_worker
        if here:  # nobody picked the form's test up: the web process runs it, and says so
            check_obj = connection_tests.perform(check_obj.pk)
        response = render(request, "designer/connection_form.html#form_test",
                          {"membership": membership, "form_test": FormTest(check_obj, here=here)})
        return HttpResponseStopPolling(response.content) if check_obj.done else response
    response = render(request, "designer/connection_detail.html#check", {
        "membership": membership,
        "connection": check_obj.connection,
        "last_check": check_obj,
        "no_worker": no_worker,
    })
    # 286 tells htmx to stop polling, with the final result still swapped in.
    return HttpResponseStopPolling(response.content) if check_obj.done or no_worker else response


def _connector_key(request: HttpRequest) -> str:
    """The kind of connection to create: ``?connector=`` when given, else the first one registered."""
    key = request.GET.get("connector") or all_connectors()[0].key
    try:
        return get_connector(key).key
    except LookupError:
        raise Http404(f"no connector {key!r}") from None
