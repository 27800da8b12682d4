"""Django-side fixtures: ready users of each role in one team, and a logged-in client per role."""

from __future__ import annotations

import pytest
from django.contrib.auth import get_user_model
from django.test import Client

from designer.models import Membership, Project, Role, Team

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
