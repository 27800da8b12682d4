"""The team's Agents page: its agent groups, and the workers alive in each, from Celery's control API."""

from __future__ import annotations

from django import forms
from django.contrib import messages
from django.db import IntegrityError, transaction
from django.http import HttpRequest, HttpResponse
from django.shortcuts import get_object_or_404, redirect, render
from django.views.decorators.http import require_http_methods, require_POST

from designer.models import AgentGroup, Membership, Role
from designer.running import agents
from designer.teams import audit
from designer.teams.access import get_membership, require_role


class AgentGroupForm(forms.ModelForm):
    class Meta:
        model = AgentGroup
        fields = ["name", "description"]
        widgets = {"description": forms.Textarea(attrs={"rows": 2})}


def _groups(membership: Membership) -> list[dict]:
    live = agents.live_agents()
    groups = [{"group": None, "name": "Default", "queue": agents.group_queue(None),
               "description": "Operations without an agent group: any worker started without -Q runs them."}]
    for group in membership.team.agent_groups.all():
        groups.append({"group": group, "name": group.name, "queue": agents.group_queue(group),
                       "description": group.description,
                       "operations": list(group.operations.select_related("project"))})
    for entry in groups:
        entry["agents"] = agents.serving(entry["queue"], live) if live is not None else None
    return groups


@require_http_methods(["GET", "POST"])
def agents_page(request: HttpRequest, team: str) -> HttpResponse:
    membership = get_membership(request, team)
    form = AgentGroupForm()
    status = 200
    if request.method == "POST":
        require_role(membership, Role.ADMIN, "define agent groups")
        form = AgentGroupForm(request.POST, instance=AgentGroup(team=membership.team))
        if form.is_valid():
            try:
                with transaction.atomic():
                    group = form.save()
            except IntegrityError:
                form.add_error("name", "The team has an agent group of that name already.")
            else:
                audit.record(request.user, membership.team, "created", group)
                messages.success(request, f"Agent group {group.name} created. Start its workers with "
                                          f"manage.py run_agent --group {group.name!r}.")
                return redirect("agents", team=team)
        status = 400
    return render(request, "designer/agents.html", {
        "membership": membership, "groups": _groups(membership), "form": form,
        "status_known": agents.live_agents() is not None, "can_manage": membership.has_role(Role.ADMIN),
    }, status=status)


@require_POST
def agent_group_delete(request: HttpRequest, team: str, group: int) -> HttpResponse:
    membership = get_membership(request, team)
    require_role(membership, Role.ADMIN, "delete agent groups")
    group_obj = get_object_or_404(AgentGroup, team=membership.team, pk=group)
    users = [f"{op.project.name} / {op.name}" for op in group_obj.operations.select_related("project")]
    if users:
        messages.error(request, f"Agent group {group_obj.name} is not deleted: operations run on it ("
                                f"{', '.join(users)}). Choose another group for them first.")
    else:
        audit.record(request.user, membership.team, "deleted", group_obj)
        group_obj.delete()
        messages.success(request, f"Agent group {group_obj.name} deleted.")
    return redirect("agents", team=team)
