import pytest
from cryptography.fernet import Fernet
from django.contrib.auth import get_user_model
from django.core.management import call_command
from django.core.management.base import CommandError

from designer.models import Membership, Team
from tests.helpers import make_connection


def test_it_adds_a_member_creating_the_team(db, capsys):
    get_user_model().objects.create_user("dora")
    call_command("add_member", "dora", "--team", "Ops", "--role", "editor")
    assert "created team Ops" in capsys.readouterr().out
    assert Membership.objects.get(user__username="dora").role == "editor"
    call_command("add_member", "dora", "--team", "Ops", "--role", "admin")
    assert Membership.objects.get(user__username="dora").role == "admin"
    assert Team.objects.count() == 1


def test_it_refuses_an_unknown_user(db):
    with pytest.raises(CommandError, match="no user 'ghost'"):
        call_command("add_member", "ghost", "--team", "Ops", "--role", "viewer")


def test_it_rotates_every_secret_to_the_newest_key(team, settings, capsys):
    old_key = settings.MAILWRIGHT_ENCRYPTION_KEYS[0]
    connection = make_connection(team, password="rotate-me")
    new_key = Fernet.generate_key().decode()
    settings.MAILWRIGHT_ENCRYPTION_KEYS = [new_key, old_key]
    call_command("rotate_encryption_keys")
    assert "re-encrypted 1 secret record(s)" in capsys.readouterr().out
    settings.MAILWRIGHT_ENCRYPTION_KEYS = [new_key]
    connection.refresh_from_db()
    assert connection.get_secrets() == {"password": "rotate-me"}


def test_it_stops_rotation_when_a_secret_cannot_be_read(team, settings):
    make_connection(team)
    settings.MAILWRIGHT_ENCRYPTION_KEYS = [Fernet.generate_key().decode()]
    with pytest.raises(CommandError, match="cannot be decrypted"):
        call_command("rotate_encryption_keys")
