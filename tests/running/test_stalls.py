"""Stalled-source warnings: sent through a real Send Email activity to aiosmtpd, once per stall, once on
recovery; a failed send is tried again; the edit page's "Warn when stalled" section."""

from datetime import timedelta

import pytest
from django.utils import timezone

from designer.models import Activity, Operation
from designer.running import stalls
from tests.helpers import import_project, project_file, url

HX = {"HTTP_HX_REQUEST": "true"}


@pytest.fixture
def watched(transactional_db, dovecot, smtp, tmp_path, monkeypatch):
    operation = import_project(tmp_path, monkeypatch, project_file(dovecot, smtp))
    Operation.objects.filter(pk=operation.pk).update(schedule=Operation.Schedule.INTERVAL, interval_minutes=5)
    source = operation.source
    source.stall_notify_activity = operation.target
    source.stall_notify_to = "oncall@example.com"
    source.last_poll_at = source.last_success_at = timezone.now() - timedelta(minutes=10)
    source.save()
    return source


def test_a_stalled_source_warns_once_and_again_when_it_recovers(watched, smtp):
    now = timezone.now()
    assert stalls.watch(now) == 0  # 10 minutes: within three 5-minute intervals
    late = now + timedelta(minutes=6)
    assert stalls.watch(late) == 1
    [warning] = smtp.messages
    assert warning.rcpt_tos == ("oncall@example.com",)
    assert warning.subject == "[Mailwright] source Read support inbox has stalled"
    assert "has not been polled successfully since" in warning.message.get_content()
    assert stalls.watch(late + timedelta(minutes=1)) == 0  # once per stall
    assert len(smtp.messages) == 1
    Activity.objects.filter(pk=watched.pk).update(last_success_at=late + timedelta(minutes=2))
    assert stalls.watch(late + timedelta(minutes=3)) == 1
    assert smtp.messages[-1].subject == "[Mailwright] source Read support inbox has recovered"
    assert Activity.objects.get(pk=watched.pk).stall_notified_at is None


def test_its_own_limit_replaces_three_intervals(watched, smtp):
    Activity.objects.filter(pk=watched.pk).update(stall_minutes=8)
    assert stalls.watch() == 1 and len(smtp.messages) == 1


def test_a_warning_the_server_refused_is_tried_again(watched, smtp):
    smtp.fail_next(1, 451)  # the fault at the point it names: the warning's DATA
    late = timezone.now() + timedelta(minutes=6)
    assert stalls.watch(late) == 0 and not smtp.messages
    assert Activity.objects.get(pk=watched.pk).stall_notified_at is None
    assert stalls.watch(late) == 1 and len(smtp.messages) == 1


def test_the_edit_page_sets_the_warning(db, bob_client, team, project):
    from tests.helpers import make_connection

    connection = make_connection(team, project)
    reader = Activity.objects.create(project=project, connection=connection, type="read_email", name="Inbox",
                                     settings={"folder": "INBOX"})
    sender = Activity.objects.create(project=project, connection=connection, type="send_email", name="Alert",
                                     settings={"defaults": {"from": "support@example.com"}})
    edit = url("activity_edit", team, activity=reader.pk)
    assert "<legend>Warn when stalled</legend>" in bob_client.get(edit).content.decode()
    data = {"name": "Inbox", "connection": connection.pk, "folder": "INBOX", "unread_only": "True",
            "max_messages": "100", "after_read": "mark_read", "on_skip": "leave", "attachments": "include",
            "max_attachment_mb": "25", "max_message_mb": "25", "step": "0", "action": "save",
            "stall_notify_activity": sender.pk, "stall_notify_to": "", "stall_minutes": "30"}
    refused = bob_client.post(edit, data, **HX)
    assert refused.status_code == 400 and "Give the addresses to warn, or choose nobody." in refused.content.decode()
    assert bob_client.post(edit, {**data, "stall_notify_to": "oncall@example.com"}, **HX).status_code == 200
    reader.refresh_from_db()
    assert (reader.stall_notify_activity, reader.stall_notify_to, reader.stall_minutes) == (
        sender, "oncall@example.com", 30)
