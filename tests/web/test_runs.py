"""Run now, a run's live page, cancel and replay, through Django's test client on the in-memory connector."""

import socket

import pytest
from django.contrib.messages import get_messages
from django.core.management import call_command

from designer import demo
from designer.models import AuditEntry, Connection, Operation, Project, Run, RunLog, RunRecord, Team
from tests.helpers import url as _url

# The engine suite's fixtures: an operation on the in-memory connector and its world.




def _run_now(client, team, operation, callbacks, **headers):
    with callbacks(execute=True):
        return client.post(_url("operation_run", team, operation=operation.pk), **headers)


@pytest.fixture
def other_run(other_team):
    project = Project.objects.create(team=other_team, name="Theirs")
    return Run.objects.create(operation=Operation.objects.create(project=project, name="Secret op"))


def test_it_runs_an_operation_now_and_lands_on_its_page(bob_client, team, operation, world,
                                                       django_capture_on_commit_callbacks):
    world.add("Printer on fire")
    world.add("Invoice question")
    response = _run_now(bob_client, team, operation, django_capture_on_commit_callbacks)
    run = Run.objects.get()
    assert response.status_code == 303
    assert response["Location"] == _url("run", team, run=run.pk)
    assert run.trigger == "manual"
    assert run.status == "succeeded", run.message
    assert AuditEntry.objects.filter(action="ran", username="bob").exists()

    page = bob_client.get(response["Location"]).content.decode()
    assert "Run now" in page  # the trigger's label
    assert "Printer on fire" in page and "Invoice question" in page
    assert 'hx-trigger="every 700ms"' not in page  # a finished run is not polled


def test_it_answers_htmx_with_a_redirect_header(bob_client, team, operation, world,
                                                django_capture_on_commit_callbacks):
    response = _run_now(bob_client, team, operation, django_capture_on_commit_callbacks, HTTP_HX_REQUEST="true")
    assert response.status_code == 200
    assert response["HX-Redirect"] == _url("run", team, run=Run.objects.get().pk)


def test_it_refuses_run_now_to_a_viewer_and_says_why(charlie_client, team, operation,
                                                     django_capture_on_commit_callbacks):
    response = _run_now(charlie_client, team, operation, django_capture_on_commit_callbacks)
    assert response.status_code == 403
    assert "you need to be an editor" in response.content.decode()
    assert not Run.objects.exists()


def test_it_hides_other_teams_runs_and_operations(bob_client, team, other_run, django_capture_on_commit_callbacks):
    record = RunRecord.objects.create(run=other_run, subject="theirs", status="failed")
    assert _run_now(bob_client, team, other_run.operation, django_capture_on_commit_callbacks).status_code == 404
    for name in ("run", "run_progress", "run_cancel"):
        assert bob_client.get(_url(name, team, run=other_run.pk)).status_code == 404
    assert bob_client.post(_url("run_cancel", team, run=other_run.pk)).status_code == 404
    for name in ("run_record", "record_replay"):
        assert bob_client.get(_url(name, team, run=other_run.pk, record=record.pk)).status_code == 404
    assert bob_client.get(_url("run", other_run.operation.project.team, run=other_run.pk)).status_code == 404
    other_run.refresh_from_db()
    assert not other_run.cancel_requested


def test_it_polls_while_the_run_goes_on_and_stops_with_286(charlie_client, team, operation):
    run = Run.objects.create(operation=operation, status="running")
    RunRecord.objects.create(run=run, subject="first of many", sender="a@example.com", status="sent")
    RunLog.objects.create(run=run, text="2 message(s) to deliver")
    page = charlie_client.get(_url("run", team, run=run.pk)).content.decode()
    assert 'hx-trigger="every 700ms"' in page

    progress = charlie_client.get(_url("run_progress", team, run=run.pk), HTTP_HX_REQUEST="true")
    assert progress.status_code == 200
    body = progress.content.decode()
    assert "first of many" in body and "2 message(s) to deliver" in body
    assert "<html" not in body  # the partial only

    Run.objects.filter(pk=run.pk).update(status="succeeded", read_count=1, sent_count=1)
    final = charlie_client.get(_url("run_progress", team, run=run.pk), HTTP_HX_REQUEST="true")
    assert final.status_code == 286
    assert "Succeeded" in final.content.decode()
    assert 'hx-trigger="every 700ms"' not in final.content.decode()


def test_it_cancels_a_queued_run_after_confirmation(bob_client, team, operation):
    run = Run.objects.create(operation=operation)
    confirm = bob_client.get(_url("run_cancel", team, run=run.pk))
    assert confirm.status_code == 200
    assert "Cancel run" in confirm.content.decode()
    run.refresh_from_db()
    assert run.status == "queued"  # asking is not doing

    response = bob_client.post(_url("run_cancel", team, run=run.pk))
    assert response.status_code == 303
    run.refresh_from_db()
    assert run.status == "cancelled" and run.cancel_requested
    assert AuditEntry.objects.filter(action="cancelled", username="bob").exists()


def test_it_asks_a_running_run_to_stop(bob_client, team, operation):
    run = Run.objects.create(operation=operation, status="running")
    bob_client.post(_url("run_cancel", team, run=run.pk), HTTP_HX_REQUEST="true")
    run.refresh_from_db()
    assert run.cancel_requested and run.status == "running"  # the worker stops it between messages
    page = bob_client.get(_url("run", team, run=run.pk)).content.decode()
    assert "Cancel requested" in page


def test_it_refuses_cancel_and_replay_to_a_viewer(charlie_client, team, operation):
    run = Run.objects.create(operation=operation)
    record = RunRecord.objects.create(run=run, subject="x", status="failed")
    assert charlie_client.post(_url("run_cancel", team, run=run.pk)).status_code == 403
    assert charlie_client.get(_url("run_cancel", team, run=run.pk)).status_code == 403
    assert charlie_client.post(_url("record_replay", team, run=run.pk, record=record.pk)).status_code == 403
    run.refresh_from_db()
    assert run.status == "queued" and not run.cancel_requested


def test_a_viewer_sees_no_controls(charlie_client, bob_client, team, operation, world, run_once):
    world.add("bounced")
    world.faults = [("permanent", "550 no such user")]
    run = run_once()
    running = Run.objects.create(operation=operation, status="running")
    for client, sees in ((charlie_client, False), (bob_client, True)):
        failed_page = client.get(_url("run", team, run=run.pk)).content.decode()
        running_page = client.get(_url("run", team, run=running.pk)).content.decode()
        assert ("Replay" in failed_page) is sees
        assert ("Cancel run" in running_page) is sees
        assert "550 no such user" in failed_page


def test_it_replays_a_failed_message_once(bob_client, team, world, run_once, django_capture_on_commit_callbacks):
    world.add("rejected at first")
    world.faults = [("permanent", "550 mailbox full")]
    run = run_once()
    record = run.records.get(status="failed")
    url = _url("record_replay", team, run=run.pk, record=record.pk)
    assert "Replay message" in bob_client.get(url).content.decode()

    with django_capture_on_commit_callbacks(execute=True):
        response = bob_client.post(url)
    replay = Run.objects.get(trigger="replay")
    assert response.status_code == 303
    assert response["Location"] == _url("run", team, run=replay.pk)
    assert replay.status == "succeeded" and replay.parent_id == run.pk
    assert [m["subject"] for m in world.sent] == ["Fwd: rejected at first"]

    again = bob_client.post(url, follow=True)
    assert "Not replayed: this message was replayed already." in again.content.decode()
    assert Run.objects.filter(trigger="replay").count() == 1

    original = bob_client.get(_url("run", team, run=run.pk)).content.decode()
    assert "replayed" in original
    assert f"Run {replay.pk} of" in original  # listed under the run it came from
    child = bob_client.get(_url("run", team, run=replay.pk)).content.decode()
    assert f"Run {run.pk} of" in child and "a replay of “rejected at first”" in child


def test_it_refuses_to_replay_a_sent_message_with_the_reason(bob_client, team, world, run_once):
    world.add("went fine")
    run = run_once()
    record = run.records.get()
    response = bob_client.post(_url("record_replay", team, run=run.pk, record=record.pk), follow=True)
    assert "Not replayed: only a failed or skipped message can be replayed." in response.content.decode()
    assert not Run.objects.filter(trigger="replay").exists()


def test_it_lists_chained_runs_under_their_parent(charlie_client, team, operation, project):
    follow = Operation.objects.create(project=project, name="Notify")
    parent = Run.objects.create(operation=operation, status="succeeded")
    child = Run.objects.create(operation=follow, trigger="chained", parent=parent, status="succeeded")
    page = charlie_client.get(_url("run", team, run=parent.pk)).content.decode()
    assert "Runs started by this run" in page
    assert _url("run", team, run=child.pk) in page
    child_page = charlie_client.get(_url("run", team, run=child.pk)).content.decode()
    assert "Started by" in child_page and _url("run", team, run=parent.pk) in child_page


def test_it_shows_a_rendered_message_as_text_never_as_html(charlie_client, team, operation):
    run = Run.objects.create(operation=operation, status="succeeded")
    record = RunRecord.objects.create(
        run=run, subject="<b>bold</b>", status="sent",
        rendered={"to": ["helpdesk@example.com"], "subject": "Fwd: hi", "html": "<script>alert(1)</script>",
                  "text": "plain body", "attachments": [{"filename": "a.pdf", "size": 2048}]},
    )
    run_page = charlie_client.get(_url("run", team, run=run.pk)).content.decode()
    assert "&lt;b&gt;bold&lt;/b&gt;" in run_page
    assert "Details<span" in run_page
    page = charlie_client.get(_url("run_record", team, run=run.pk, record=record.pk)).content.decode()
    assert "<script>alert(1)</script>" not in page
    assert "&lt;script&gt;alert(1)&lt;/script&gt;" in page
    assert "helpdesk@example.com" in page and "plain body" in page and "a.pdf" in page


def test_it_says_when_no_worker_picks_a_run_up(charlie_client, team, operation, settings):
    settings.MAILWRIGHT_CHECK_PICKUP_SECONDS = 0
    run = Run.objects.create(operation=operation)
    page = charlie_client.get(_url("run", team, run=run.pk)).content.decode()
    assert "No worker has picked this run up yet" in page


# -- the first-run demo -------------------------------------------------------------------------------


@pytest.fixture
def local(db, settings, tmp_path):
    """What `make run` has: DEBUG on and a data directory of its own."""
    settings.DEBUG = True
    settings.DATA_DIR = tmp_path
    return tmp_path


def test_setup_local_creates_the_demo_wired_to_the_sandbox(local, capsys):
    call_command("setup_local")
    assert "Demo project “Demo support desk” is ready" in capsys.readouterr().out
    sandbox = demo.stored(local)
    connection = Connection.objects.get(name=demo.CONNECTION)
    assert connection.project.team.name == "Demo"
    assert connection.config["imap"] == {"host": "127.0.0.1", "port": sandbox.imap_port, "security": "none",
                                         "verify_tls": True}
    assert connection.config["smtp"]["port"] == sandbox.smtp_port
    assert connection.get_secrets() == {"password": sandbox.password}
    operation = Operation.objects.get(name=demo.OPERATION)
    assert operation.mapping["to"] == "helpdesk@mailwright.demo"  # not the mailbox it reads: no loop
    assert operation.source.name == "Read support inbox" and operation.target.name == "Send to helpdesk"


def test_setup_local_keeps_the_newcomers_edits_and_follows_the_sandbox_to_new_ports(local):
    call_command("setup_local")
    Operation.objects.filter(name=demo.OPERATION).update(mapping={"to": "me@example.com"})
    sandbox = demo.stored(local)
    with socket.socket() as taken:  # the sandbox's IMAP port is in use now: setup_local picks others
        taken.bind((demo.HOST, sandbox.imap_port))
        call_command("setup_local")
    moved = demo.stored(local)
    assert moved.imap_port != sandbox.imap_port and moved.password == sandbox.password
    assert Connection.objects.get(name=demo.CONNECTION).config["imap"]["port"] == moved.imap_port
    assert Operation.objects.get(name=demo.OPERATION).mapping == {"to": "me@example.com"}
    assert Project.objects.filter(name=demo.PROJECT).count() == 1


def test_mailwright_demo_0_leaves_the_demo_out(local, monkeypatch):
    monkeypatch.setenv("MAILWRIGHT_DEMO", "0")
    call_command("setup_local")
    assert Team.objects.filter(name="Demo").exists()
    assert not Project.objects.filter(name=demo.PROJECT).exists()
    assert demo.stored(local) is None


def test_it_refuses_run_now_on_an_operation_without_a_target_and_says_why(
        bob_client, team, operation, django_capture_on_commit_callbacks):
    operation.target = None
    operation.save()
    response = _run_now(bob_client, team, operation, django_capture_on_commit_callbacks, HTTP_HX_REQUEST="true")
    assert response.status_code == 409
    assert "Not started" in response.content.decode() and "target missing" in response.content.decode()
    assert not Run.objects.exists()

    response = _run_now(bob_client, team, operation, django_capture_on_commit_callbacks)
    assert response["Location"] == _url("operation", team, operation=operation.pk)
    assert [str(m) for m in get_messages(response.wsgi_request)] == ["Forward was not started: target missing."]
    assert not Run.objects.exists()


def test_every_message_has_a_page_with_what_was_delivered_and_its_ledger(charlie_client, team, operation):
    from designer.models import LedgerEntry

    first = Run.objects.create(operation=operation, status="failed")
    second = Run.objects.create(operation=operation, status="succeeded")
    row = LedgerEntry.objects.create(operation=operation, connection=operation.source.connection, scope="INBOX",
                                     epoch=1, position=7, state="acknowledged", out_message_id="<m1@example.com>",
                                     reply="250 2.0.0 OK queued", attempts=2)
    RunRecord.objects.create(run=first, ledger=row, subject="Printer", status="retry", error="451 try later")
    record = RunRecord.objects.create(run=second, ledger=row, subject="Printer", sender="ada@example.org",
                                      status="sent", delivered_to="helpdesk@example.com",
                                      delivered_subject="Fwd: Printer")
    run_page = charlie_client.get(_url("run", team, run=second.pk)).content.decode()
    assert "<td>helpdesk@example.com</td>" in run_page and "<td>Fwd: Printer</td>" in run_page
    assert _url("run_record", team, run=second.pk, record=record.pk) in run_page  # not only in debug mode
    page = charlie_client.get(_url("run_record", team, run=second.pk, record=record.pk)).content.decode()
    for text in ("Sent to</dt><dd>helpdesk@example.com", "Sent as</dt><dd>Fwd: Printer", "&lt;m1@example.com&gt;",
                 "250 2.0.0 OK queued", "451 try later", "<strong>this run</strong>", "now <strong>acknowledged"):
        assert text in page
    assert _url("run", team, run=first.pk) in page
