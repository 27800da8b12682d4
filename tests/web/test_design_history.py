"""Design history: each saved change of an operation or activity is a version (who, when, what changed),
shown on the operation page, with Restore."""

from designer.models import Activity, DesignVersion, Operation
from tests.helpers import url
from tests.web import test_canvas
from tests.web.test_canvas import HX, save_data

connection, reader, sender = test_canvas.connection, test_canvas.reader, test_canvas.sender
workflow, operation = test_canvas.workflow, test_canvas.operation


def _save(client, team, operation, **changes):
    operation.refresh_from_db()
    response = client.post(url("operation_save", team, operation=operation.pk), save_data(operation, **changes), **HX)
    assert response.status_code == 200, response.content.decode()[:500]


def test_each_save_is_a_version_with_what_changed_and_restore_brings_one_back(bob_client, team, operation):
    _save(bob_client, team, operation, map_subject="Re: {{ subject }}")
    _save(bob_client, team, operation, map_subject="Ticket: {{ subject }}", retries="5")
    numbers = list(DesignVersion.objects.filter(object_type="operation").order_by("number")
                   .values_list("number", "username"))
    assert numbers == [(1, ""), (2, "bob"), (3, "bob")]  # 1: the state before history was kept
    latest = DesignVersion.objects.get(object_type="operation", number=3)
    assert latest.change_lines == ["mapping.subject: Re: {{ subject }} → Ticket: {{ subject }}", "retries: 2 → 5"]

    page = bob_client.get(url("operation_history", team, operation=operation.pk), **HX).content.decode()
    assert "Design history" in page and "retries: 2 → 5" in page and "Restore operation version 1" in page
    assert "Restore operation version 3" not in page  # the current one

    first = DesignVersion.objects.get(object_type="operation", number=1)
    response = bob_client.post(url("version_restore", team, operation=operation.pk, version=first.pk))
    assert response.status_code == 302
    operation.refresh_from_db()
    assert operation.mapping["subject"] == "Fwd: {{ subject }}" and operation.retries == 2
    assert DesignVersion.objects.filter(object_type="operation").count() == 4  # the restore is a version too


def test_an_activity_edit_is_a_version_and_can_be_restored(bob_client, team, operation, sender):
    edit = url("activity_edit", team, activity=sender.pk)
    data = {"name": "Send to helpdesk", "connection": sender.connection_id, "step": "0", "action": "save",
            "defaults_from": "desk@example.com"}
    assert bob_client.post(edit, data).status_code == 302
    [before, after] = DesignVersion.objects.filter(object_type="activity").order_by("number")
    assert after.change_lines == ["settings.defaults.from: support@example.com → desk@example.com",
                                  "settings.max_connections: (empty) → 4"]  # stored before the setting existed
    page = bob_client.get(url("operation_history", team, operation=operation.pk)).content.decode()
    assert "Target: Send to helpdesk" in page
    bob_client.post(url("version_restore", team, operation=operation.pk, version=before.pk))
    assert Activity.objects.get(pk=sender.pk).settings["defaults"]["from"] == "support@example.com"


def test_a_reference_that_is_gone_keeps_its_value_and_is_named(bob_client, team, project, operation, reader):
    first_reader = reader
    other = Activity.objects.create(project=project, connection=reader.connection, type="read_email",
                                    name="Other inbox", settings={"folder": "Other"})
    _save(bob_client, team, operation, map_subject="x")
    Operation.objects.filter(pk=operation.pk).update(source=other)
    operation.refresh_from_db()
    _save(bob_client, team, operation, map_subject="y")
    first_reader_version = DesignVersion.objects.get(object_type="operation", number=1)
    Operation.objects.filter(pk=operation.pk).update(source=None)
    first_reader.delete()
    response = bob_client.post(url("version_restore", team, operation=operation.pk, version=first_reader_version.pk),
                               follow=True)
    assert "source: Read support inbox no longer exists" in response.content.decode()
    operation.refresh_from_db()
    assert operation.mapping["subject"] == "Fwd: {{ subject }}"


def test_a_viewer_sees_the_history_but_cannot_restore(charlie_client, bob_client, team, operation):
    _save(bob_client, team, operation, map_subject="Re: {{ subject }}")
    page = charlie_client.get(url("operation_history", team, operation=operation.pk)).content.decode()
    assert "mapping.subject" in page and "Restore operation" not in page
    first = DesignVersion.objects.get(number=1)
    assert charlie_client.post(url("version_restore", team, operation=operation.pk, version=first.pk)).status_code \
        == 403
