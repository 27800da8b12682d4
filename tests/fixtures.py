"""Django-side fixtures: ready users of each role in one team, a logged-in client per role, and the
in-memory connector's world with an operation on it (the engine's tests)."""

from __future__ import annotations

import pytest
from django.contrib.auth import get_user_model
from django.test import Client

from designer.models import Activity, Connection, Membership, Operation, Project, Role, Run, Team
from tests import fakes

PASSWORD = "correct horse battery staple"


@pytest.fixture
def team(db) -> Team:
    return Team.objects.create(name="Support")


@pytest.fixture
def other_team(db) -> Team:
    return Team.objects.create(name="Rivals")


@pytest.fixture
def project(team: Team) -> Project:
    return Project.objects.create(team=team, name="Support desk")


def _member(team: Team, username: str, role: str):
    user = get_user_model().objects.create_user(username, f"{username}@example.com", PASSWORD)
    Membership.objects.create(team=team, user=user, role=role)
    return user


@pytest.fixture
def alice(team: Team):
    """An admin."""
    return _member(team, "alice", Role.ADMIN)


@pytest.fixture
def bob(team: Team):
    """An editor."""
    return _member(team, "bob", Role.EDITOR)


@pytest.fixture
def charlie(team: Team):
    """A viewer."""
    return _member(team, "charlie", Role.VIEWER)


def _client_for(user) -> Client:
    client = Client()
    client.force_login(user)
    return client


@pytest.fixture
def alice_client(alice) -> Client:
    return _client_for(alice)


@pytest.fixture
def bob_client(bob) -> Client:
    return _client_for(bob)


@pytest.fixture
def charlie_client(charlie) -> Client:
    return _client_for(charlie)


# The in-memory connector's world, an operation on it, and one run of it (the engine's tests).
@pytest.fixture
def world():
    fakes.WORLD = fakes.FakeWorld()
    return fakes.WORLD


@pytest.fixture
def operation(project, world) -> Operation:
    connection = Connection.objects.create(team=project.team, project=project, name="Fake", connector="fake")
    source = Activity.objects.create(project=project, connection=connection, type="fake_read", name="Read")
    target = Activity.objects.create(project=project, connection=connection, type="fake_write", name="Write")
    return Operation.objects.create(
        project=project, name="Forward", source=source, target=target, retry_backoff_seconds=0,
        mapping={"to": "helpdesk@example.com", "subject": "Fwd: {{ subject }}", "text": "{{ text }}"},
    )


@pytest.fixture
def run_once(operation):
    from designer.running import runs

    def run(op=None, **fields) -> Run:
        created = Run.objects.create(operation=op or operation, trigger=Run.Trigger.COMMAND, **fields)
        return runs.execute(created.pk)

    return run
