import socket

import pytest
from django.urls import reverse
from django.utils import timezone

from designer.models import Activity, AuditEntry, Connection, ConnectionCheck
from tests.helpers import email_config, form_data, make_connection


def _create_url(team, project=None):
    if project:
        return reverse("project_connection_create", kwargs={"team": team.slug, "project": project.pk})
    return reverse("team_connection_create", kwargs={"team": team.slug})


def test_it_creates_a_project_connection_with_an_encrypted_password(bob_client, team, project):
    response = bob_client.post(_create_url(team, project), form_data())
    assert response.status_code == 302
    connection = Connection.objects.get(name="Support mailbox")
    assert connection.project == project
    assert connection.get_secrets() == {"password": "s3cret-pass"}
    assert "s3cret-pass" not in connection.secrets_token
    assert connection.config["imap"] == {"host": "imap.example.com", "port": 993, "security": "ssl",
                                         "verify_tls": True}
    assert AuditEntry.objects.filter(action="created", object_name="Support mailbox", username="bob").exists()


def test_it_shows_an_error_per_field_and_saves_nothing(bob_client, team, project):
    response = bob_client.post(
        _create_url(team, project),
        form_data(name="a/b", imap_port="70000", imap_host="not a host", auth_username="", auth_password=""),
        HTTP_HX_REQUEST="true",
    )
    assert response.status_code == 400
    body = response.content.decode()
    assert "A name may not contain" in body
    assert "Must be between 1 and 65535." in body
    assert "Must be a host name or IP address" in body
    assert body.count("This field is required.") == 2  # username and password
    assert not Connection.objects.exists()


def test_it_uses_default_ports_for_the_security_mode(bob_client, team, project):
    bob_client.post(_create_url(team, project),
                    form_data(imap_port="", imap_security="starttls", smtp_port="", smtp_security="ssl"))
    config = Connection.objects.get().config
    assert config["imap"]["port"] == 143
    assert config["smtp"]["port"] == 465


def test_it_keeps_the_stored_password_when_the_field_is_left_empty(alice_client, team, project):
    connection = make_connection(team, project)
    url = reverse("connection_edit", kwargs={"team": team.slug, "connection": connection.pk})
    page = alice_client.get(url).content.decode()
    assert "s3cret-pass" not in page
    assert 'placeholder="unchanged"' in page
    response = alice_client.post(url, form_data(auth_password="", read_timeout="45"))
    assert response.status_code == 302
    connection.refresh_from_db()
    assert connection.get_secrets() == {"password": "s3cret-pass"}
    assert connection.config["timeouts"]["read"] == 45
    entry = AuditEntry.objects.get(action="changed")
    assert entry.details["fields"] == ["timeouts.read"]
    assert entry.details["changes"]["timeouts.read"]["to"] == 45  # from what to what


@pytest.mark.parametrize("change", [{"smtp_host": "capture.example.net"}, {"smtp_port": "2525"},
                                    {"imap_host": "imap2.example.com"}, {"smtp_verify_tls": ""}])
def test_a_changed_server_needs_the_secrets_again(bob_client, team, project, change):
    connection = make_connection(team, project)
    connection.token_cache_token = "cached-token"
    connection.save()
    url = reverse("connection_edit", kwargs={"team": team.slug, "connection": connection.pk})

    refused = bob_client.post(url, form_data(auth_password="", **change))

    assert refused.status_code == 400
    assert "changed: enter the password again" in refused.content.decode()
    connection.refresh_from_db()
    assert connection.config == email_config()  # nothing saved: Test still goes to the old server
    assert connection.token_cache_token == "cached-token"

    retyped = bob_client.post(url, form_data(auth_password="their-own", **change))

    assert retyped.status_code == 302
    connection.refresh_from_db()
    assert connection.get_secrets() == {"password": "their-own"}
    assert connection.token_cache_token == ""  # tokens of the old servers never go to the new one


def test_it_records_a_changed_password_without_its_value(alice_client, team, project):
    connection = make_connection(team, project)
    url = reverse("connection_edit", kwargs={"team": team.slug, "connection": connection.pk})
    alice_client.post(url, form_data(auth_password="brand-new-pass"))
    connection.refresh_from_db()
    assert connection.get_secrets() == {"password": "brand-new-pass"}
    entry = AuditEntry.objects.get(action="changed")
    assert entry.details == {"fields": ["secret password"]}
    assert "brand-new-pass" not in str(entry.details)


def test_it_refuses_a_duplicate_name_in_the_same_project(bob_client, team, project):
    make_connection(team, project)
    response = bob_client.post(_create_url(team, project), form_data())
    assert response.status_code == 400
    assert "already exists" in response.content.decode()


def test_it_lets_only_admins_create_team_connections(alice_client, bob_client, team):
    response = bob_client.post(_create_url(team), form_data())
    assert response.status_code == 403
    assert "need to be an admin" in response.content.decode()
    assert alice_client.post(_create_url(team), form_data()).status_code == 302
    assert Connection.objects.get().is_team_connection


def test_it_lets_only_admins_change_team_connection_credentials(alice, bob_client, team):
    connection = make_connection(team)
    url = reverse("connection_edit", kwargs={"team": team.slug, "connection": connection.pk})
    response = bob_client.post(url, form_data(auth_password="stolen", imap_host="evil.example.com"))
    assert response.status_code == 403
    connection.refresh_from_db()
    assert connection.config["imap"]["host"] == "imap.example.com"


def test_it_refuses_viewers_every_change(charlie_client, team, project):
    connection = make_connection(team, project)
    kwargs = {"team": team.slug, "connection": connection.pk}
    assert charlie_client.post(_create_url(team, project), form_data(name="x")).status_code == 403
    assert charlie_client.post(reverse("connection_edit", kwargs=kwargs), form_data()).status_code == 403
    assert charlie_client.post(reverse("connection_delete", kwargs=kwargs)).status_code == 403
    assert charlie_client.post(reverse("connection_test", kwargs=kwargs)).status_code == 403
    assert charlie_client.get(reverse("connection", kwargs=kwargs)).status_code == 200


def test_it_hides_other_teams_objects_behind_404(bob_client, other_team):
    from designer.models import Project

    foreign_project = Project.objects.create(team=other_team, name="Theirs")
    connection = make_connection(other_team, foreign_project)
    kwargs = {"team": other_team.slug, "connection": connection.pk}
    assert bob_client.get(reverse("connection", kwargs=kwargs)).status_code == 404
    assert bob_client.get(reverse("team", kwargs={"team": other_team.slug})).status_code == 404
    assert bob_client.get(reverse("project_export", kwargs={"team": other_team.slug,
                                                            "project": foreign_project.pk})).status_code == 404


def test_it_hides_another_teams_connection_even_under_my_team(bob_client, team, other_team):
    connection = make_connection(other_team)
    kwargs = {"team": team.slug, "connection": connection.pk}
    assert bob_client.get(reverse("connection", kwargs=kwargs)).status_code == 404
    assert bob_client.post(reverse("connection_test", kwargs=kwargs)).status_code == 404


def test_it_deletes_after_confirmation(bob_client, team, project):
    connection = make_connection(team, project)
    url = reverse("connection_delete", kwargs={"team": team.slug, "connection": connection.pk})
    assert "cannot be undone" in bob_client.get(url).content.decode()
    assert bob_client.post(url).status_code == 302
    assert not Connection.objects.exists()
    assert AuditEntry.objects.filter(action="deleted", object_name="Support mailbox").exists()


def test_it_refuses_to_delete_a_connection_in_use_and_lists_the_users(bob_client, team, project):
    connection = make_connection(team, project)
    Activity.objects.create(project=project, connection=connection, type="read_email", name="Read support inbox")
    url = reverse("connection_delete", kwargs={"team": team.slug, "connection": connection.pk})
    response = bob_client.post(url)
    assert response.status_code == 409
    assert "Support desk / Read support inbox" in response.content.decode()
    assert Connection.objects.filter(pk=connection.pk).exists()


def test_it_shows_the_audit_history_on_the_connection_page(bob_client, team, project):
    bob_client.post(_create_url(team, project), form_data())
    connection = Connection.objects.get()
    page = bob_client.get(reverse("connection", kwargs={"team": team.slug, "connection": connection.pk}))
    assert "created" in page.content.decode()
    assert "s3cret-pass" not in page.content.decode()


def _fake_steps(*steps):
    from connectors.base import CheckStep

    def check(self, config, secrets):
        yield from (CheckStep(*s) for s in steps)
    return check


def test_it_tests_through_a_task_and_shows_connection_success(bob_client, team, project, monkeypatch,
                                                               django_capture_on_commit_callbacks):
    from connectors.email.connector import EmailConnector

    monkeypatch.setattr(EmailConnector, "check", _fake_steps(("IMAP login", True, "logged in as support")))
    connection = make_connection(team, project)
    kwargs = {"team": team.slug, "connection": connection.pk}
    with django_capture_on_commit_callbacks(execute=True):
        response = bob_client.post(reverse("connection_test", kwargs=kwargs), HTTP_HX_REQUEST="true")
    check = connection.checks.get()
    assert check.status == "passed"
    poll = bob_client.get(reverse("check_status", kwargs={"team": team.slug, "check": check.pk}))
    assert poll.status_code == 286  # htmx stops polling
    assert "Connection Success" in poll.content.decode()
    assert "logged in as support" in poll.content.decode()
    assert response.status_code == 200
    assert AuditEntry.objects.filter(action="tested", details__result="Connection Success").exists()


def test_it_keeps_polling_while_queued_then_says_no_worker(bob_client, team, project, settings):
    from designer.models import ConnectionCheck

    connection = make_connection(team, project)
    check = ConnectionCheck.objects.create(connection=connection)
    url = reverse("check_status", kwargs={"team": team.slug, "check": check.pk})
    first = bob_client.get(url)
    assert first.status_code == 200
    assert 'hx-trigger="every' in first.content.decode()
    settings.MAILWRIGHT_CHECK_PICKUP_SECONDS = -1
    late = bob_client.get(url)
    assert late.status_code == 286
    assert "No worker picked the test up" in late.content.decode()


def test_it_reports_the_failed_step(bob_client, team, project, monkeypatch, django_capture_on_commit_callbacks):
    from connectors.email.connector import EmailConnector

    monkeypatch.setattr(EmailConnector, "check", _fake_steps(
        ("IMAP connect", True, "connected"), ("IMAP login", False, "authentication rejected: [AUTHENTICATIONFAILED]")))
    connection = make_connection(team, project)
    with django_capture_on_commit_callbacks(execute=True):
        bob_client.post(reverse("connection_test", kwargs={"team": team.slug, "connection": connection.pk}))
    check = connection.checks.get()
    assert check.status == "failed"
    page = bob_client.get(reverse("connection", kwargs={"team": team.slug, "connection": connection.pk}))
    assert "Connection failed" in page.content.decode()
    assert "failed at IMAP login" in page.content.decode()


def test_with_the_production_policy_test_refuses_private_and_loopback_hosts_before_any_socket(
        bob_client, team, project, monkeypatch, settings, django_capture_on_commit_callbacks):
    # The suite opens loopback for its own servers; production opens nothing.
    settings.MAILWRIGHT_ALLOW_NETWORKS = []
    answers = {"mail.internal.example": "10.0.0.5", "127.0.0.1": "127.0.0.1"}
    sockets: list[tuple] = []

    def resolver(host, port, *args, **kwargs):
        return [(socket.AF_INET, socket.SOCK_STREAM, 6, "", (answers[host], port))]

    def no_socket(*args, **kwargs):
        sockets.append(args)
        raise AssertionError("a socket was created for a refused address")

    monkeypatch.setattr("connectors.net.socket.getaddrinfo", resolver)
    monkeypatch.setattr("connectors.net.socket.socket", no_socket)
    connection = make_connection(team, project,
                                 imap={"host": "mail.internal.example", "port": 993, "security": "ssl",
                                       "verify_tls": True},
                                 smtp={"host": "127.0.0.1", "port": 587, "security": "starttls",
                                       "verify_tls": True})
    kwargs = {"team": team.slug, "connection": connection.pk}
    with django_capture_on_commit_callbacks(execute=True):
        bob_client.post(reverse("connection_test", kwargs=kwargs), HTTP_HX_REQUEST="true")

    check = connection.checks.get()
    assert check.status == "failed"
    page = bob_client.get(reverse("check_status", kwargs={"team": team.slug, "check": check.pk})).content.decode()
    assert "mail.internal.example resolves to a private (RFC 1918) address" in page
    assert "127.0.0.1 resolves to a loopback address" in page
    assert page.count("refused by the outbound policy, no connection attempted") == 2
    assert sockets == []


def test_a_test_result_from_before_a_settings_change_is_shown_as_stale(bob_client, team, project):
    connection = make_connection(team, project)
    check = ConnectionCheck.objects.create(connection=connection, status="failed", finished_at=timezone.now())
    page = reverse("connection", kwargs={"team": team.slug, "connection": connection.pk})
    body = bob_client.get(page).content.decode()
    assert 'class="check-status check-failed"' in body and "status-failed" not in body
    assert "Tested before the settings changed" not in body
    connection.config = {**connection.config, "timeouts": {"connect": 5, "read": 9}}
    connection.save()
    assert check.created_at < connection.updated_at
    body = bob_client.get(page).content.decode()
    changed = timezone.localtime(connection.updated_at)
    assert f"Tested before the settings changed on {changed:%Y-%m-%d %H:%M:%S}" in body
