from __future__ import annotations

from django import forms
from django.contrib import messages
from django.contrib.auth import get_user_model
from django.contrib.auth.decorators import login_not_required
from django.core.exceptions import PermissionDenied
from django.db import transaction
from django.http import HttpRequest, HttpResponse, JsonResponse
from django.shortcuts import get_object_or_404, redirect, render
from django.views.decorators.http import require_http_methods, require_POST

from designer.models import Membership, Project, Role, Team
from designer.teams import audit
from designer.teams.access import get_membership, require_role
from designer.teams.policy import may_create_team


@login_not_required
def healthz(request: HttpRequest) -> JsonResponse:
    return JsonResponse({"status": "ok"})


def home(request: HttpRequest) -> HttpResponse:
    memberships = list(request.user.memberships.select_related("team"))
    last = request.session.get("team")
    chosen = next((m for m in memberships if m.team.slug == last), memberships[0] if memberships else None)
    if chosen:
        return redirect("team", team=chosen.team.slug)
    return render(request, "designer/no_team.html",
                  {"form": TeamForm(), "may_create_team": may_create_team(request.user)})


class TeamForm(forms.ModelForm):
    class Meta:
        model = Team
        fields = ["name"]


@require_POST
def team_create(request: HttpRequest) -> HttpResponse:
    if not may_create_team(request.user):
        raise PermissionDenied("Only staff can start a team here: ask an administrator.")
    form = TeamForm(request.POST)
    if not form.is_valid():
        return render(request, "designer/no_team.html", {"form": form, "may_create_team": True}, status=400)
    with transaction.atomic():
        team = form.save()
        Membership.objects.create(team=team, user=request.user, role=Role.ADMIN)
    messages.success(request, f"Team {team.name} created; you are its admin.")
    return redirect("team", team=team.slug)


class ProjectForm(forms.ModelForm):
    class Meta:
        model = Project
        fields = ["name", "description"]
        widgets = {"description": forms.Textarea(attrs={"rows": 2})}

    def __init__(self, *args, team: Team, **kwargs) -> None:
        super().__init__(*args, **kwargs)
        self.instance.team = team

    def clean_name(self) -> str:
        name = self.cleaned_data["name"]
        if Project.objects.filter(team=self.instance.team, name=name).exclude(pk=self.instance.pk).exists():
            raise forms.ValidationError(f"A project called “{name}” already exists in this team.")
        return name


def team_home(request: HttpRequest, team: str) -> HttpResponse:
    membership = get_membership(request, team)
    request.session["team"] = membership.team.slug
    projects = membership.team.projects.all()
    return render(request, "designer/team.html", {
        "membership": membership,
        "projects": projects,
        "project_form": ProjectForm(team=membership.team),
    })


@require_POST
def project_create(request: HttpRequest, team: str) -> HttpResponse:
    membership = get_membership(request, team)
    require_role(membership, Role.EDITOR, "create a project")
    form = ProjectForm(request.POST, team=membership.team)
    if form.is_valid():
        project = form.save()
        audit.record(request.user, membership.team, "created", project)
        return redirect("project", team=team, project=project.pk)
    return render(request, "designer/team.html", {
        "membership": membership,
        "projects": membership.team.projects.all(),
        "project_form": form,
    }, status=400)


class MemberForm(forms.Form):
    username = forms.CharField(label="Username", max_length=150)
    role = forms.ChoiceField(label="Role", choices=Role.choices, initial=Role.VIEWER)

    def clean_username(self) -> str:
        username = self.cleaned_data["username"].strip()
        if not get_user_model().objects.filter(username=username).exists():
            raise forms.ValidationError(f"There is no user called “{username}”.")
        return username


def _leaves_no_admin(membership: Membership, form: forms.Form) -> bool:
    """Whether the change demotes the team's last admin (who could then never manage it again)."""
    if form.cleaned_data["role"] == Role.ADMIN:
        return False
    admins = membership.team.memberships.filter(role=Role.ADMIN)
    return not admins.exclude(user__username=form.cleaned_data["username"]).exists()


@require_http_methods(["GET", "POST"])
def members(request: HttpRequest, team: str) -> HttpResponse:
    membership = get_membership(request, team)
    form = MemberForm()
    if request.method == "POST":
        require_role(membership, Role.ADMIN, "change this team's members")
        form = MemberForm(request.POST)
        if form.is_valid() and _leaves_no_admin(membership, form):
            form.add_error("role", "The team would have no admin left: make someone else admin first.")
        if form.is_valid():
            user = get_user_model().objects.get(username=form.cleaned_data["username"])
            member, created = Membership.objects.update_or_create(
                team=membership.team, user=user, defaults={"role": form.cleaned_data["role"]}
            )
            audit.record(request.user, membership.team, "added" if created else "changed", member,
                         {"role": member.role})
            messages.success(request, f"{user.username} is now {member.get_role_display().lower()}.")
            return redirect("members", team=team)
    return render(request, "designer/members.html", {
        "membership": membership,
        "members": membership.team.memberships.select_related("user").order_by("user__username"),
        "admins": membership.team.memberships.filter(role=Role.ADMIN).count(),
        "form": form,
    })


@require_POST
def member_remove(request: HttpRequest, team: str, member: int) -> HttpResponse:
    membership = get_membership(request, team)
    require_role(membership, Role.ADMIN, "change this team's members")
    target = get_object_or_404(Membership, team=membership.team, pk=member)
    other_admins = membership.team.memberships.filter(role=Role.ADMIN).exclude(pk=target.pk)
    if target.role == Role.ADMIN and not other_admins.exists():
        messages.error(request, "A team keeps at least one admin: make someone else admin first.")
    else:
        audit.record(request.user, membership.team, "removed", target)
        target.delete()
        messages.success(request, f"{target.user.username} left {membership.team.name}.")
    return redirect("members", team=team)
