"""Login throttling (SPEC §9): django-axes on the login page and the admin."""

from __future__ import annotations

from datetime import timedelta

import pytest
from axes.models import AccessAttempt
from django.contrib.auth import get_user_model
from django.core.management import call_command
from django.test import Client
from django.utils import timezone

from tests.fixtures import PASSWORD

ATTACKER = "203.0.113.66"


def _login(client: Client, username: str, password: str, address: str = ATTACKER, url: str = "/login/"):
    return client.post(url, {"username": username, "password": password}, REMOTE_ADDR=address)


def _fail(times: int, username: str = "alice", address: str = ATTACKER, url: str = "/login/") -> None:
    client = Client()
    for attempt in range(1, times + 1):
        response = _login(client, username, "wrong password", address, url)
        # The form again with its error; the failure that reaches the limit already gets the lock page.
        assert response.status_code == (429 if attempt == 10 else 200)


@pytest.mark.django_db
def test_ten_failures_lock_the_account_even_for_the_right_password(alice) -> None:
    _fail(10)

    response = _login(Client(), "alice", PASSWORD)

    assert response.status_code == 429
    assert "_auth_user_id" not in response.client.session
    page = " ".join(response.content.decode().split())
    assert "Too many failed logins" in page
    assert "refused for 15 minutes" in page
    assert '<html' in page  # the login page's template, not a bare text


@pytest.mark.django_db
def test_nine_failures_do_not_lock(alice) -> None:
    _fail(9)

    response = _login(Client(), "alice", PASSWORD, address="198.51.100.9")

    assert response.status_code == 302


@pytest.mark.django_db
def test_the_locked_address_is_refused_for_another_user_but_others_are_not(alice, bob) -> None:
    _fail(10)

    assert _login(Client(), "bob", PASSWORD).status_code == 429  # same address
    assert _login(Client(), "bob", PASSWORD, address="198.51.100.7").status_code == 302  # elsewhere


@pytest.mark.django_db
def test_the_locked_user_is_refused_from_another_address(alice) -> None:
    _fail(10)

    assert _login(Client(), "alice", PASSWORD, address="198.51.100.7").status_code == 429


@pytest.mark.django_db
def test_the_lock_ends_after_the_cool_off(alice) -> None:
    _fail(10)
    # Time travel: the failures happened 16 minutes ago.
    AccessAttempt.objects.update(attempt_time=timezone.now() - timedelta(minutes=16))

    assert _login(Client(), "alice", PASSWORD).status_code == 302


@pytest.mark.django_db
def test_axes_reset_lifts_the_lock(alice) -> None:
    _fail(10)
    call_command("axes_reset", verbosity=0)

    assert _login(Client(), "alice", PASSWORD).status_code == 302


@pytest.mark.django_db
def test_the_admin_login_is_throttled_too(db) -> None:
    get_user_model().objects.create_superuser("root", "root@example.com", PASSWORD)
    _fail(10, "root", url="/admin/login/")

    response = _login(Client(), "root", PASSWORD, url="/admin/login/")

    assert response.status_code == 429
    assert "Too many failed logins" in response.content.decode()
