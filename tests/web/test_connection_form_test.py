"""The connection form's Test: the settings as typed, tested without saving; the secrets never in the task
message and wiped once tested; the web process takes over when no worker answers."""

import pytest
from django.urls import reverse

from designer.authoring import connection_tests
from designer.models import Connection, ConnectionCheck
from tests.helpers import form_data, make_connection
from tests.web.test_connections import _create_url, _fake_steps

FORM_TEST = {"HTTP_HX_REQUEST": "true", "HTTP_HX_TARGET": "form-test"}


@pytest.fixture
def steps(monkeypatch):
    from connectors.email.connector import EmailConnector

    seen = []

    def check(self, config, secrets):
        seen.append((config.imap.port, dict(secrets)))
        ok = config.imap.port == 993
        yield from _fake_steps(("IMAP connect", ok, "connected" if ok else "connection refused"))(self, config, secrets)

    monkeypatch.setattr(EmailConnector, "check", check)
    return seen


def test_it_tests_the_unsaved_settings_with_the_typed_password_and_saves_nothing(bob_client, team, project, steps,
                                                                                 monkeypatch):
    queued = []

    def worker(*args):  # a worker that takes the task at once
        queued.append(args)
        connection_tests.perform(*args)

    monkeypatch.setattr("designer.web.connections.check_connection.delay", worker)
    wrong = bob_client.post(_create_url(team, project), form_data(imap_port="1993", action="test"), **FORM_TEST)
    assert wrong.status_code == 200
    body = wrong.content.decode()
    assert body.startswith('\n<div id="form-test"') or '<div id="form-test"' in body[:200]
    assert "Connection failed" in body and "connection refused" in body
    right = bob_client.post(_create_url(team, project), form_data(action="test"), **FORM_TEST).content.decode()
    assert "Connection Success" in right and "Nothing was saved" in right
    assert not Connection.objects.exists()
    assert [port for port, _ in steps] == [1993, 993]
    assert steps[-1][1] == {"password": "s3cret-pass"}
    # Only the check's id went to the queue, and its secrets are gone once it ran.
    assert all(args == (check.pk,) for args, check in zip(queued, ConnectionCheck.objects.order_by("pk"), strict=True))
    assert all(check.draft_secrets_token == "" for check in ConnectionCheck.objects.all())
    assert "s3cret-pass" not in body + right


def test_a_form_with_errors_is_not_tested_and_comes_back_with_its_fields_marked(bob_client, team, project, steps):
    response = bob_client.post(_create_url(team, project), form_data(imap_port="abc", action="test"), **FORM_TEST)
    assert steps == [] and not ConnectionCheck.objects.exists()
    # The whole form replaces itself, so the fields the message points at are marked, as typed.
    assert response.status_code == 400
    assert response["HX-Retarget"] == "#connection-form" and response["HX-Reswap"] == "outerHTML"
    body = response.content.decode()
    assert "Correct the fields marked below first" in body
    assert "Enter a whole number." in body and 'value="abc"' in body
    assert "s3cret-pass" not in body and "Entered, not shown: kept for this form." in body


def test_editing_uses_the_stored_password_until_the_server_changes(bob_client, team, project, steps, monkeypatch):
    monkeypatch.setattr("designer.web.connections.agents.live_agents", lambda: [])
    connection = make_connection(team, project, password="stored-pass")
    edit = reverse("connection_edit", kwargs={"team": team.slug, "connection": connection.pk})
    data = form_data(auth_password="", action="test")
    kept = bob_client.post(edit, data, **FORM_TEST).content.decode()
    assert "Connection Success" in kept and "Tested here: no worker answered." in kept
    assert steps[-1][1] == {"password": "stored-pass"}
    moved = bob_client.post(edit, {**data, "imap_host": "other.example.com"}, **FORM_TEST).content.decode()
    assert "Correct the fields marked below first" in moved and len(steps) == 1


def test_the_web_process_takes_over_a_draft_no_worker_picked_up(bob_client, team, project, steps, settings,
                                                                 monkeypatch):
    monkeypatch.setattr("designer.web.connections.check_connection.delay", lambda *args: None)  # no worker
    first = bob_client.post(_create_url(team, project), form_data(action="test"), **FORM_TEST).content.decode()
    assert "Testing the settings as typed" in first and 'hx-trigger="every 700ms"' in first
    check = ConnectionCheck.objects.get()
    url = reverse("check_status", kwargs={"team": team.slug, "check": check.pk})
    assert bob_client.get(url).status_code == 200 and steps == []  # still waiting for a worker
    settings.MAILWRIGHT_CHECK_PICKUP_SECONDS = -1
    late = bob_client.get(url)
    assert late.status_code == 286
    assert "Connection Success" in late.content.decode() and "Tested here: no worker answered." in late.content.decode()
    assert ConnectionCheck.objects.get().draft_secrets_token == ""


def test_another_team_cannot_read_a_draft(bob_client, team, project, other_team, steps):
    draft = ConnectionCheck.objects.create(team=other_team, draft_connector="email", draft_config={})
    url = reverse("check_status", kwargs={"team": team.slug, "check": draft.pk})
    assert bob_client.get(url).status_code == 404


def test_a_draft_is_only_its_requesters(alice_client, charlie_client, bob, team, project, steps, settings):
    # A form's Test holds what one member typed: nobody else reads its steps or makes the web process run it.
    draft = connection_tests.draft(team, "email", {}, {"password": "p"}, bob)
    settings.MAILWRIGHT_CHECK_PICKUP_SECONDS = -1
    url = reverse("check_status", kwargs={"team": team.slug, "check": draft.pk})
    assert alice_client.get(url).status_code == 404 and charlie_client.get(url).status_code == 404
    assert steps == [] and ConnectionCheck.objects.get().status == ConnectionCheck.Status.QUEUED


def test_a_viewer_cannot_test(charlie_client, team, project, steps):
    response = charlie_client.post(_create_url(team, project), form_data(action="test"), **FORM_TEST)
    assert response.status_code == 403 and steps == []


def test_a_typed_password_is_kept_across_an_error_and_never_shown(bob_client, team, project):
    first = bob_client.post(_create_url(team, project), form_data(name="Bad/name", auth_password="typed-once"))
    assert first.status_code == 400
    page = first.content.decode()
    assert "typed-once" not in page and "Entered, not shown: kept for this form." in page
    token = first.context["kept_token"]
    assert token and "typed-once" not in str(dict(bob_client.session))
    # Corrected without typing the password again: it is saved with the one typed first.
    saved = bob_client.post(_create_url(team, project), form_data(auth_password="", kept_secrets=token))
    assert saved.status_code == 302
    assert Connection.objects.get().get_secrets() == {"password": "typed-once"}
    assert token not in bob_client.session.get("mailwright-kept-secrets", {})


def test_letters_in_a_port_are_kept_and_refused_in_words(bob_client, team, project):
    page = bob_client.get(_create_url(team, project)).content.decode()
    assert 'name="imap_port"' in page and 'inputmode="numeric"' in page and 'type="number"' not in page
    refused = bob_client.post(_create_url(team, project), form_data(imap_port="abc")).content.decode()
    assert "Enter a whole number." in refused and 'value="abc"' in refused
    # Required fields are marked.
    assert '<label for="id_name" class="required">Name</label>' in page
    assert '<label for="id_imap_host" class="required">IMAP host</label>' in page and 'aria-required="true"' in page


def test_drafts_are_purged_with_their_secrets_after_an_hour(db, team):
    from datetime import timedelta

    from django.utils import timezone

    old = connection_tests.draft(team, "email", {}, {"password": "p"}, None)
    ConnectionCheck.objects.filter(pk=old.pk).update(created_at=timezone.now() - timedelta(hours=2))
    fresh = connection_tests.draft(team, "email", {}, {"password": "p"}, None)
    assert connection_tests.purge_drafts() == 1
    assert list(ConnectionCheck.objects.values_list("pk", flat=True)) == [fresh.pk]


def test_in_the_designers_dialog_the_form_is_framed_and_says_what_it_created(bob_client, team, project):
    url = _create_url(team, project) + "?framed=1"
    page = bob_client.get(url)
    assert page["X-Frame-Options"] == "SAMEORIGIN" and "frame-ancestors 'self'" in page["Content-Security-Policy"]
    body = page.content.decode()
    assert 'class="framed"' in body and 'class="topbar"' not in body and "data-frame-cancel" in body
    created = bob_client.post(url, form_data(), HTTP_HX_REQUEST="true")
    connection = Connection.objects.get()
    assert f'data-connection-created="{connection.pk}"' in created.content.decode()
    assert 'data-serves="read_email send_email"' in created.content.decode()
    # Everywhere else a page may not be framed.
    other = bob_client.get(reverse("connection", kwargs={"team": team.slug, "connection": connection.pk}))
    assert other["X-Frame-Options"] == "DENY" and "frame-ancestors 'none'" in other["Content-Security-Policy"]
