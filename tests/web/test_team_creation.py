"""Who may start a team (MAILWRIGHT_TEAM_CREATION), and what the team-creating commands say."""

from __future__ import annotations

import json

import pytest
from django.contrib.auth import get_user_model
from django.core.management import call_command
from django.test import Client

from designer.models import Membership, Role, Team


def _client(username: str, *, staff: bool = False) -> Client:
    user = get_user_model().objects.create_user(username, is_staff=staff)
    client = Client()
    client.force_login(user)
    return client


@pytest.mark.django_db
def test_by_default_a_user_who_is_not_staff_sees_no_form_and_cannot_create_a_team() -> None:
    client = _client("mallory")

    page = client.get("/").content.decode()
    response = client.post("/teams/new/", {"name": "Ops"})

    assert "Create team" not in page and "/teams/new/" not in page
    assert "New teams are started by an administrator" in page
    assert response.status_code == 403
    assert not Team.objects.exists()


@pytest.mark.django_db
def test_by_default_staff_can_create_a_team() -> None:
    client = _client("operator", staff=True)

    assert "/teams/new/" in client.get("/").content.decode()
    response = client.post("/teams/new/", {"name": "Ops"})

    assert response.status_code == 302
    assert Membership.objects.get(team__name="Ops").role == Role.ADMIN


@pytest.mark.django_db
def test_anyone_can_create_a_team_when_the_setting_says_so(settings) -> None:
    settings.MAILWRIGHT_TEAM_CREATION = "anyone"
    client = _client("dora")

    assert "/teams/new/" in client.get("/").content.decode()
    assert client.post("/teams/new/", {"name": "Ops"}).status_code == 302
    assert Team.objects.filter(name="Ops").exists()


@pytest.mark.django_db
def test_add_member_names_the_admins_of_an_existing_team(capsys) -> None:
    users = get_user_model().objects
    squatter, operator = users.create_user("mallory"), users.create_user("olga")
    team = Team.objects.create(name="Ops")
    Membership.objects.create(team=team, user=squatter, role=Role.ADMIN)

    call_command("add_member", operator.username, "--team", "Ops", "--role", "admin")

    out = capsys.readouterr().out
    assert "used the existing team Ops (its admins: mallory); it was not created by this command" in out
    assert "created team" not in out


@pytest.mark.django_db
def test_add_member_says_it_created_a_missing_team(capsys) -> None:
    get_user_model().objects.create_user("olga")

    call_command("add_member", "olga", "--team", "Ops", "--role", "admin")

    assert capsys.readouterr().out.startswith("created team Ops\n")


@pytest.mark.django_db
def test_import_project_says_whether_it_created_the_team(tmp_path, capsys) -> None:
    path = tmp_path / "project.json"
    path.write_text(json.dumps({"format": "mailwright.project/1", "name": "Desk"}))

    call_command("import_project", str(path), "--team", "Ops")
    first = capsys.readouterr().out
    call_command("import_project", str(path), "--team", "Ops")
    second = capsys.readouterr().out

    assert "created team Ops" in first
    assert "used the existing team Ops (it has no admin); it was not created by this command" in second


def test_the_last_admin_cannot_demote_themselves(alice_client, team) -> None:
    from django.urls import reverse

    from designer.models import Membership, Role

    response = alice_client.post(reverse("members", kwargs={"team": team.slug}),
                                 {"username": "alice", "role": Role.EDITOR})

    assert "The team would have no admin left" in response.content.decode()
    assert Membership.objects.get(team=team, user__username="alice").role == Role.ADMIN
