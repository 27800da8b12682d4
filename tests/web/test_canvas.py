"""The project designer: palette, canvas, activity wizards, mapping editor, preview, options; roles and isolation."""

from datetime import timedelta

import pytest
from django.utils import timezone
from django_celery_beat.models import PeriodicTask

from designer.models import Activity, AuditEntry, Operation, Project, Workflow
from tests.helpers import make_connection, message, real_server_config, url
from tests.servers.fixtures import IMAP_PASSWORD

HX = {"HTTP_HX_REQUEST": "true"}
MAPPING = {"to": "helpdesk@example.com", "subject": "Fwd: {{ subject }}"}




@pytest.fixture
def connection(team, project):
    return make_connection(team, project)


@pytest.fixture
def reader(project, connection):
    return Activity.objects.create(project=project, connection=connection, type="read_email",
                                   name="Read support inbox", settings={"folder": "INBOX"})


@pytest.fixture
def sender(project, connection):
    return Activity.objects.create(project=project, connection=connection, type="send_email",
                                   name="Send to helpdesk", settings={"defaults": {"from": "support@example.com"}})


@pytest.fixture
def workflow(project):
    return Workflow.objects.create(project=project, name="Main")


@pytest.fixture
def operation(project, workflow, reader, sender):
    return Operation.objects.create(project=project, workflow=workflow, name="Forward to helpdesk", source=reader,
                                    target=sender, mapping=MAPPING)


def save_data(operation, **overrides):
    """What the operation page posts: every field as the form shows it."""
    data = {
        "version": operation.version, "condition": "", "enabled": "on", "schedule": "none", "interval_minutes": "",
        "cron": "", "timezone": "UTC", "timeout_minutes": "120", "retries": "2", "retry_backoff_seconds": "2",
        "log_level": "everything", "debug_until": "", "on_success": "", "on_failure": "", "notify": "never",
        "notify_activity": "", "notify_to": "",
        **{f"map_{name}": template for name, template in operation.mapping.items()},
    }
    data.update(overrides)
    return {k: v for k, v in data.items() if v is not None}


# The designer page ----------------------------------------------------------------------------


def test_it_shows_the_palette_and_the_canvas(bob_client, team, project, operation):
    page = bob_client.get(url("project", team, project=project.pk)).content.decode()
    assert "Project endpoints and connectors" in page
    assert "New Email connection" in page
    assert "Support mailbox" in page and "Read support inbox" in page and "Send to helpdesk" in page
    assert 'draggable="true"' in page
    assert "Forward to helpdesk" in page and "✓ Ready" in page
    assert "Export project file" in page


def test_it_explains_what_to_do_when_the_project_is_empty(bob_client, team, project):
    page = bob_client.get(url("project", team, project=project.pk)).content.decode()
    assert "No connections in this project yet" in page
    assert "No operations yet" in page
    assert "+ Add operation" in page


def test_it_marks_invalid_operations_with_the_reason(bob_client, team, project, workflow, reader):
    Operation.objects.create(project=project, workflow=workflow, name="Half done", source=reader,
                             mapping={"subject": "{{ subjcet }}"})
    page = bob_client.get(url("project", team, project=project.pk)).content.decode()
    assert "⚠ Invalid" in page
    assert "target missing" in page
    assert "uses &#x27;subjcet&#x27;, which the source does not have" in page


def test_a_send_email_target_that_nothing_gives_a_from_or_to_is_invalid(bob_client, team, operation, sender):
    page = url("operation", team, operation=operation.pk)
    assert "✓ Ready to run" in bob_client.get(page).content.decode()
    sender.settings = {}
    sender.save()
    operation.mapping = {"subject": "Fwd: {{ subject }}"}
    operation.save()
    body = bob_client.get(page).content.decode()
    assert "⚠ Invalid" in body and "Ready to run" not in body
    for name in ("from", "to"):
        assert f"Send to helpdesk has no default &#x27;{name}&#x27; and the mapping does not fill it" in body


def test_it_lists_team_connections_in_their_own_tab(bob_client, team, project):
    make_connection(team, None, name="Shared relay")
    tab = bob_client.get(url("project", team, project=project.pk) + "?palette=team", HTTP_HX_TARGET="palette", **HX)
    body = tab.content.decode()
    assert "Shared relay" in body
    assert 'id="canvas"' not in body  # only the palette is swapped


def test_it_hides_every_edit_control_from_viewers(charlie_client, team, project, operation):
    page = charlie_client.get(url("project", team, project=project.pk)).content.decode()
    assert "Forward to helpdesk" in page
    for control in ("+ Add operation", "+ Add workflow", "Place", "Delete…", "New Email connection", "draggable"):
        assert control not in page
    detail = charlie_client.get(url("operation", team, operation=operation.pk)).content.decode()
    assert "Fwd: {{ subject }}" in detail
    assert "<textarea" not in detail and "Preview</button>" not in detail


def _viewer_posts(team, project, workflow, operation, reader):
    return [
        url("workflow_create", team, project=project.pk),
        url("workflow_rename", team, workflow=workflow.pk),
        url("workflow_move", team, workflow=workflow.pk),
        url("workflow_delete", team, workflow=workflow.pk),
        url("operation_create", team, project=project.pk),
        url("operation_card", team, operation=operation.pk),
        url("operation_move", team, operation=operation.pk),
        url("operation_delete", team, operation=operation.pk),
        url("operation_save", team, operation=operation.pk),
        url("operation_validate", team, operation=operation.pk),
        url("operation_preview", team, operation=operation.pk),
        url("activity_create", team, project=project.pk, kind="read_email"),
        url("activity_edit", team, activity=reader.pk),
        url("activity_delete", team, activity=reader.pk),
    ]


def test_it_refuses_every_change_from_a_viewer(charlie_client, team, project, workflow, operation, reader):
    for target in _viewer_posts(team, project, workflow, operation, reader):
        response = charlie_client.post(target, {"name": "Hijacked", "version": operation.version}, **HX)
        assert response.status_code == 403, target
        assert "you need to be an editor" in response.content.decode()
    operation.refresh_from_db()
    assert operation.name == "Forward to helpdesk" and operation.version == 1
    assert Workflow.objects.count() == 1 and Activity.objects.count() == 2


def test_another_teams_objects_are_not_found(bob_client, team, other_team):
    project = Project.objects.create(team=other_team, name="Theirs")
    workflow = Workflow.objects.create(project=project, name="Main")
    connection = make_connection(other_team, project)
    reader = Activity.objects.create(project=project, connection=connection, type="read_email", name="R",
                                     settings={"folder": "INBOX"})
    operation = Operation.objects.create(project=project, workflow=workflow, name="Op", source=reader)
    # Through bob's own team in the URL, and through theirs.
    for target in (url("operation", team, operation=operation.pk), url("activity_edit", team, activity=reader.pk),
                   url("activity_folders", team, project=project.pk) + f"?connection={connection.pk}",
                   url("project", other_team, project=project.pk)):
        assert bob_client.get(target).status_code == 404, target
    for target in _viewer_posts(team, project, workflow, operation, reader):
        assert bob_client.post(target, {"version": 1}).status_code == 404, target
    assert Operation.objects.filter(pk=operation.pk).exists()


# Workflows and operations on the canvas -------------------------------------------------------


def test_it_adds_renames_reorders_and_deletes_workflows(bob_client, team, project, operation):
    response = bob_client.post(url("workflow_create", team, project=project.pk), **HX)
    assert response.status_code == 200
    second = Workflow.objects.get(name="Workflow 2")
    response = bob_client.post(url("workflow_rename", team, workflow=second.pk), {"name": "Billing"}, **HX)
    assert 'aria-current="page">Billing</a>' in response.content.decode()
    response = bob_client.post(url("workflow_rename", team, workflow=second.pk), {"name": "Main"}, **HX)
    assert response.status_code == 400
    assert "A workflow called “Main” already exists" in response.content.decode()
    bob_client.post(url("workflow_move", team, workflow=second.pk), {"direction": "left"}, **HX)
    assert list(project.workflows.values_list("name", flat=True)) == ["Billing", "Main"]
    bob_client.post(url("workflow_delete", team, workflow=operation.workflow.pk), **HX)
    assert not Operation.objects.exists()
    assert list(project.workflows.values_list("name", flat=True)) == ["Billing"]
    assert AuditEntry.objects.filter(action="deleted", object_type="operation", username="bob").exists()


def test_it_adds_renames_reorders_and_deletes_operations(bob_client, team, project):
    create = url("operation_create", team, project=project.pk)
    bob_client.post(create, **HX)  # the first operation also creates the workflow
    bob_client.post(create, {"workflow": Workflow.objects.get().pk}, **HX)
    first, second = Operation.objects.order_by("position")
    assert (first.name, second.name, first.workflow.name) == ("New operation", "New operation 2", "Main")
    response = bob_client.post(url("operation_card", team, operation=second.pk),
                               {"name": "Forward invoices", "version": 1}, **HX)
    assert response.status_code == 200 and "Saved" in response.content.decode()
    response = bob_client.post(url("operation_card", team, operation=second.pk),
                               {"name": "New operation", "version": 2}, **HX)
    assert response.status_code == 400
    assert "An operation called “New operation” already exists" in response.content.decode()
    bob_client.post(url("operation_move", team, operation=second.pk), {"direction": "up"}, **HX)
    assert list(Operation.objects.order_by("position").values_list("name", flat=True)) == [
        "Forward invoices", "New operation"]
    bob_client.post(url("operation_delete", team, operation=first.pk), **HX)
    assert list(Operation.objects.values_list("name", flat=True)) == ["Forward invoices"]
    actions = set(AuditEntry.objects.filter(object_type="operation").values_list("action", flat=True))
    assert actions == {"created", "changed", "deleted"}


def test_it_places_activities_and_refuses_the_wrong_slot(bob_client, team, project, workflow, reader, sender):
    operation = Operation.objects.create(project=project, workflow=workflow, name="Op")
    card = url("operation_card", team, operation=operation.pk)
    response = bob_client.post(card, {"source": sender.pk, "version": 1}, **HX)
    assert response.status_code == 400
    assert "Send to helpdesk is a Send Email activity, which cannot be a source" in response.content.decode()
    assert bob_client.post(card, {"source": reader.pk, "version": 1}, **HX).status_code == 200
    assert bob_client.post(card, {"target": sender.pk, "version": 2}, **HX).status_code == 200
    operation.refresh_from_db()
    assert (operation.source, operation.target, operation.version) == (reader, sender, 3)


def test_it_refuses_a_save_from_a_stale_version(bob_client, alice_client, team, operation):
    card = url("operation_card", team, operation=operation.pk)
    assert alice_client.post(card, {"name": "Alice's name", "version": 1}, **HX).status_code == 200
    response = bob_client.post(card, {"name": "Bob's name", "version": 1}, **HX)
    assert response.status_code == 409
    assert "alice changed “Alice&#x27;s name” after you opened it" in response.content.decode()
    save = bob_client.post(url("operation_save", team, operation=operation.pk),
                           save_data(operation, version=1, map_subject="Bob was here"), **HX)
    assert save.status_code == 409
    assert 'name="version"' not in save.content.decode()  # the stale version stays stale: no overwrite later
    operation.refresh_from_db()
    assert (operation.name, operation.mapping, operation.version) == ("Alice's name", MAPPING, 2)


# Mapping, options and actions ------------------------------------------------------------------


def test_it_shows_one_template_input_per_target_field_and_the_source_fields(bob_client, team, operation):
    page = bob_client.get(url("operation", team, operation=operation.pk)).content.decode()
    for field in ("from", "to", "cc", "bcc", "reply_to", "subject", "text", "html", "attachments", "headers"):
        assert f'name="map_{field}"' in page
    assert 'data-insert="{{ subject }}"' in page and 'data-insert="{{ attachments }}"' in page


def test_it_saves_the_mapping_options_and_schedule(bob_client, team, operation, sender):
    other = Operation.objects.create(project=operation.project, name="Archive")
    response = bob_client.post(url("operation_save", team, operation=operation.pk), save_data(
        operation, map_text="{{ text }}", map_subject="", condition="'invoice' in subject|lower",
        schedule="cron", cron="*/15 8-18 * * 1-5", timezone="Europe/Paris", timeout_minutes="30", retries="4",
        log_level="errors", on_failure=other.pk, notify="failure", notify_activity=sender.pk,
        notify_to="ops@example.com",
    ), **HX)
    assert response.status_code == 200
    body = response.content.decode()
    assert "Saved" in body and 'value="2" id="id_version" hx-swap-oob="true"' in body
    operation.refresh_from_db()
    assert operation.mapping == {"to": "helpdesk@example.com", "text": "{{ text }}"}
    assert (operation.schedule, operation.cron, operation.timezone) == ("cron", "*/15 8-18 * * 1-5", "Europe/Paris")
    assert (operation.timeout, operation.retries, operation.log_level) == (timedelta(minutes=30), 4, "errors")
    assert (operation.on_failure, operation.notify_activity, operation.notify_to) == (other, sender, "ops@example.com")
    task = PeriodicTask.objects.get(name=f"mailwright-operation-{operation.pk}")
    assert task.crontab.timezone.key == "Europe/Paris"
    entry = AuditEntry.objects.get(action="changed", object_type="operation")
    assert "mapping" in entry.details["fields"] and "cron" in entry.details["fields"]


def test_it_shows_an_error_per_option_and_saves_nothing(bob_client, team, operation):
    too_late = (timezone.now() + timedelta(days=20)).strftime("%Y-%m-%dT%H:%M")
    response = bob_client.post(url("operation_save", team, operation=operation.pk), save_data(
        operation, schedule="cron", cron="every day", timezone="Mars/Olympus", debug_until=too_late,
        notify="always", retries="99",
    ), **HX)
    assert response.status_code == 400
    body = response.content.decode()
    assert "6 fields not saved" in body  # the options checked together are all reported at once
    assert "Ensure this value is less than or equal to 10." in body
    assert "Choose the Send Email activity" in body and "Give at least one address" in body
    response = bob_client.post(url("operation_save", team, operation=operation.pk), save_data(
        operation, schedule="cron", cron="every day", timezone="Mars/Olympus", debug_until=too_late), **HX)
    body = response.content.decode()
    assert 'id="err-cron"' in body and "Must have five fields" in body
    assert "Mars/Olympus" in body and "at most 14 days ahead" in body
    operation.refresh_from_db()
    assert operation.version == 1 and operation.schedule == "none"


def test_an_invalid_cron_does_not_keep_a_subject_edit_from_saving(bob_client, team, operation, sender):
    save = url("operation_save", team, operation=operation.pk)
    response = bob_client.post(save, save_data(operation, map_subject="Re: {{ subject }}", schedule="cron",
                                               cron="every day", retries="3", notify="always"), **HX)
    assert response.status_code == 400
    body = response.content.decode()
    assert "3 fields not saved" in body and "Every other change is saved" in body  # cron, notify_*
    assert 'id="err-cron"' in body and "Must have five fields" in body
    assert 'value="2" id="id_version" hx-swap-oob="true"' in body  # the next save builds on this one
    operation.refresh_from_db()
    assert (operation.mapping["subject"], operation.retries, operation.version) == ("Re: {{ subject }}", 3, 2)
    assert (operation.schedule, operation.cron, operation.notify) == ("none", "", "never")  # kept as stored

    # Correcting the cron saves it too, on top of the version the first save answered.
    response = bob_client.post(save, save_data(operation, schedule="cron", cron="0 8 * * *", retries="3"), **HX)
    assert response.status_code == 200 and "data-saved-at" in response.content.decode()
    operation.refresh_from_db()
    assert (operation.cron, operation.mapping["subject"], operation.version) == ("0 8 * * *", "Re: {{ subject }}", 3)


def test_a_save_from_a_stale_version_keeps_nothing_even_of_the_valid_fields(bob_client, team, operation):
    save = url("operation_save", team, operation=operation.pk)
    Operation.objects.filter(pk=operation.pk).update(version=5)
    response = bob_client.post(save, save_data(operation, version=1, map_subject="Mine", cron="x",
                                               schedule="cron"), **HX)
    assert response.status_code == 409
    operation.refresh_from_db()
    assert operation.mapping["subject"] == "Fwd: {{ subject }}"


def test_it_checks_templates_as_you_type(bob_client, team, operation):
    response = bob_client.post(url("operation_validate", team, operation=operation.pk), save_data(
        operation, map_subject="Fwd: {{ subject ", map_text="{{ body }}", condition="subject ==",
    ), **HX)
    body = response.content.decode()
    assert 'id="err-map_subject"' in body and "unexpected end of template" in body
    assert "uses &#x27;body&#x27;, which the source does not have" in body
    assert 'id="err-condition"' in body
    assert 'id="err-retries"' not in body  # only the template fields' slots


def test_template_errors_say_in_plain_words_where_and_what_was_meant(bob_client, team, operation):
    response = bob_client.post(url("operation_validate", team, operation=operation.pk), save_data(
        operation, map_subject="Fwd: {{ subject ", map_text="{{ subjcet }}", condition="subject ==",
    ), **HX)
    body = response.content.decode()
    assert "line 1, column 6: a {{ is never closed: end it with }}" in body
    assert "uses &#x27;subjcet&#x27;, which the source does not have: did you mean subject?" in body
    assert "it stops too early: something must follow the last operator" in body


def test_a_mapping_with_a_template_error_is_not_saved(bob_client, team, operation):
    response = bob_client.post(url("operation_save", team, operation=operation.pk),
                               save_data(operation, map_subject="{{ subject "), **HX)
    assert response.status_code == 400
    operation.refresh_from_db()
    assert operation.mapping["subject"] == "Fwd: {{ subject }}"


# Preview ---------------------------------------------------------------------------------------


def test_it_previews_the_sample_message_sanitised_and_sends_nothing(bob_client, team, operation):
    response = bob_client.post(url("operation_preview", team, operation=operation.pk), save_data(
        operation, map_html='<p onclick="x()">Hi {{ from }}</p><script>alert(1)</script><img src="https://t.example/p.gif">',
        map_attachments="{{ attachments }}", message="sample",
    ), **HX)
    body = response.content.decode()
    assert "Fwd: Printer on floor 3 is jammed again" in body
    assert "helpdesk@example.com" in body and "support@example.com" in body
    assert "printer-log.txt" in body
    assert "<iframe" in body and " sandbox " in body
    assert "Content-Security-Policy" in body and "default-src &#x27;none&#x27;" in body
    srcdoc = body.split('srcdoc="', 1)[1].split('"', 1)[0]
    assert "script" not in srcdoc and "onclick" not in srcdoc
    assert "Nothing was sent." in body


def test_the_preview_puts_the_messages_values_beside_the_fields(bob_client, team, operation):
    page = bob_client.get(url("operation", team, operation=operation.pk)).content.decode()
    assert '<span class="chip-value" id="src-subject"></span>' in page
    assert 'id="out-map_subject"' in page and 'hx-trigger="load, input from:#operation-form delay:800ms' in page
    response = bob_client.post(url("operation_preview", team, operation=operation.pk), save_data(
        operation, map_subject="Re: {{ subject|upper }}", message="sample"), **HX)
    body = response.content.decode()
    assert ('<span class="chip-value" id="src-subject" hx-swap-oob="true">Printer on floor 3 is jammed again</span>'
            in body)
    assert ('<output id="out-map_subject" hx-swap-oob="innerHTML">Re: PRINTER ON FLOOR 3 IS JAMMED AGAIN</output>'
            in body)
    assert '<output id="out-map_cc" hx-swap-oob="innerHTML"></output>' in body
    # The attachments' sub-fields get the first attachment's values.
    assert '<span class="chip-value" id="src-attachments-filename" hx-swap-oob="true">printer-log.txt</span>' in body
    assert 'id="src-attachments-content" hx-swap-oob="true">26 bytes</span>' in body


def test_the_mapping_shows_the_targets_schema_and_the_sources_tree(bob_client, team, operation):
    page = bob_client.get(url("operation", team, operation=operation.pk)).content.decode()
    assert '<label for="id_map_reply_to">Reply-To</label>' in page
    assert "reply_to · addresses · Where answers should go" in page
    # An empty field says what the target does with it: its default, or nothing.
    assert 'placeholder="Empty: the activity&#x27;s default, support@example.com"' in page
    assert 'placeholder="Empty: left out of the message"' in page
    assert 'id="src-attachments-filename"' in page and "{{ attachments[0].filename }}" in page
    assert '<span class="type">list of files</span>' in page


def test_it_says_why_a_preview_fails(bob_client, team, operation):
    response = bob_client.post(url("operation_preview", team, operation=operation.pk),
                               save_data(operation, map_subject="{{ subject.upper( }}", message="sample"), **HX)
    assert "subject:" in response.content.decode()
    response = bob_client.post(url("operation_preview", team, operation=operation.pk),
                               save_data(operation, map_to="", message="sample"), **HX)
    assert "Send to helpdesk would refuse this message: to: at least one recipient" in response.content.decode()


# Activities ------------------------------------------------------------------------------------


def wizard_data(connection, **overrides):
    data = {"name": "Read invoices", "connection": connection.pk, "folder": "INBOX", "unread_only": "True",
            "max_messages": "100", "after_read": "mark_read", "on_skip": "leave", "attachments": "include",
            "max_attachment_mb": "25", "max_message_mb": "25", "step": "0", "action": "next"}
    data.update(overrides)
    return data


def test_the_read_email_wizard_goes_through_its_four_steps(bob_client, team, project, connection):
    create = url("activity_create", team, project=project.pk, kind="read_email") + f"?connection={connection.pk}"
    first = bob_client.get(create).content.decode()
    assert "Name and folder" in first and "Reload folders" in first and 'aria-current="step"' in first
    step2 = bob_client.post(create, wizard_data(connection), **HX)
    assert step2.status_code == 200 and "Raw IMAP SEARCH (advanced)" in step2.content.decode()
    bad = bob_client.post(create, wizard_data(connection, step="1", filters_since="2024-02-30",
                                              search='FROM "a" BOGUS'), **HX)
    assert bad.status_code == 400
    body = bad.content.decode()
    assert "Must be a date written YYYY-MM-DD." in body and "BOGUS" in body
    step3 = bob_client.post(create, wizard_data(connection, step="1", filters_subject="invoice"), **HX)
    assert "After delivery" in step3.content.decode() and "After a message is delivered" in step3.content.decode()
    bad = bob_client.post(create, wizard_data(connection, step="2", filters_subject="invoice", after_read="move"),
                          **HX)
    assert bad.status_code == 400 and "This field is required." in bad.content.decode()
    step4 = bob_client.post(create, wizard_data(connection, step="2", filters_subject="invoice",
                                                after_read="move", move_to="Archive"), **HX)
    body = step4.content.decode()
    assert "Output: one record per message" in body and "attachments" in body and "Create activity" in body
    # The review says values in words.
    assert "<dt>Unread messages only</dt><dd>Yes</dd>" in body and "<dt>From contains</dt><dd>not set</dd>" in body
    saved = bob_client.post(create, wizard_data(connection, step="3", action="save", filters_subject="invoice",
                                                after_read="move", move_to="Archive"), **HX)
    assert saved.status_code == 200 and saved["HX-Redirect"].endswith(f"/projects/{project.pk}/")
    activity = Activity.objects.get(name="Read invoices")
    assert activity.settings["filters"]["subject"] == "invoice"
    assert (activity.settings["after_read"], activity.settings["move_to"]) == ("move", "Archive")
    assert AuditEntry.objects.filter(action="created", object_type="activity", username="bob").exists()


def test_a_folder_the_listed_server_lacks_is_refused(bob_client, team, project, connection):
    create = url("activity_create", team, project=project.pk, kind="read_email")
    listed = {"server_folders": ["INBOX", "Archive", "Team/Support"]}
    refused = bob_client.post(create, {**wizard_data(connection, folder="Achive"), **listed}, **HX)
    assert refused.status_code == 400
    assert "The server has no folder “Achive”." in refused.content.decode()
    for folder in ("Team/Support", "inbox", "{{ vars.box }}"):
        assert bob_client.post(create, {**wizard_data(connection, folder=folder), **listed}, **HX).status_code == 200
    # A move to a folder the server lacks is refused too, on the step that names it.
    moved = bob_client.post(create, {**wizard_data(connection, step="3", action="save", after_read="move",
                                                   move_to="Old"), **listed}, **HX)
    assert moved.status_code == 400 and "The server has no folder “Old”." in moved.content.decode()
    # Without the list (the server could not be asked) the folder is taken as typed.
    assert bob_client.post(create, wizard_data(connection, folder="Achive"), **HX).status_code == 200


def test_an_activity_is_edited_on_one_page_in_sections(bob_client, team, project, connection, reader):
    edit = url("activity_edit", team, activity=reader.pk)
    page = bob_client.get(edit).content.decode()
    for legend in ("Read Email activity", "Name and folder", "Filters and limits", "After delivery"):
        assert f"<legend>{legend}</legend>" in page
    assert "wizard-steps" not in page and ">Next<" not in page and "Save activity" in page
    data = wizard_data(connection, name="Read support inbox", step="0", action="save", max_messages="7")
    response = bob_client.post(edit, data, **HX)
    assert response.status_code == 200
    reader.refresh_from_db()
    assert reader.settings["max_messages"] == 7
    bad = bob_client.post(edit, {**data, "max_message_mb": "abc"}, **HX)
    assert bad.status_code == 400 and "<legend>After delivery</legend>" in bad.content.decode()


def test_the_wizard_sends_an_invalid_step_back_to_where_the_error_is(bob_client, team, project, connection, reader):
    create = url("activity_create", team, project=project.pk, kind="read_email")
    response = bob_client.post(create, wizard_data(connection, name="Read support inbox", step="2", action="save"),
                               **HX)
    assert response.status_code == 400
    body = response.content.decode()
    assert "An activity called “Read support inbox” already exists in this project." in body
    assert '<input type="hidden" name="step" value="0">' in body


def test_the_send_email_form_validates_its_defaults(bob_client, team, project, connection):
    create = url("activity_create", team, project=project.pk, kind="send_email")
    data = {"name": "Notify", "connection": connection.pk, "step": "0", "action": "save",
            "defaults_from": "not an address", "defaults_subject": "Hi\r\nBcc: victim@example.com"}
    response = bob_client.post(create, data, **HX)
    assert response.status_code == 400
    body = response.content.decode()
    assert "is not a valid address" in body and "line break" in body
    data.update(defaults_from="Support <support@example.com>", defaults_subject="Hello")
    assert bob_client.post(create, data, **HX).status_code == 200
    assert Activity.objects.get(name="Notify").settings["defaults"] == {
        "from": "Support <support@example.com>", "subject": "Hello"}


def test_it_edits_an_activity_and_keeps_what_the_form_does_not_show(bob_client, team, sender):
    sender.settings = {"defaults": {"from": "a@example.com", "headers": {"X-Team": "support"}}}
    sender.save()
    edit = url("activity_edit", team, activity=sender.pk)
    assert 'value="a@example.com"' in bob_client.get(edit).content.decode()
    data = {"name": "Send to helpdesk", "connection": sender.connection_id, "step": "0", "action": "save",
            "defaults_from": "b@example.com"}
    assert bob_client.post(edit, data).status_code == 302
    sender.refresh_from_db()
    assert sender.settings["defaults"] == {"from": "b@example.com", "headers": {"X-Team": "support"}}
    details = AuditEntry.objects.get(action="changed").details
    assert details["changes"]["settings.defaults.from"] == {"from": "a@example.com", "to": "b@example.com"}


def test_it_refuses_to_delete_an_activity_in_use(bob_client, team, operation, reader):
    delete = url("activity_delete", team, activity=reader.pk)
    response = bob_client.post(delete)
    assert response.status_code == 409
    assert "cannot be deleted" in response.content.decode() and "Forward to helpdesk" in response.content.decode()
    operation.delete()
    assert bob_client.post(delete).status_code == 302
    assert not Activity.objects.filter(pk=reader.pk).exists()


# Against the real servers ---------------------------------------------------------------------


@pytest.fixture
def live_connection(team, project, dovecot, mailbox, smtp_server):
    return make_connection(team, project, password=IMAP_PASSWORD, **real_server_config(dovecot, smtp_server))


def test_it_lists_the_servers_folders(bob_client, team, project, live_connection, mailbox):
    mailbox.create_folder("Archive")
    response = bob_client.get(url("activity_folders", team, project=project.pk) + f"?connection={live_connection.pk}",
                              **HX)
    body = response.content.decode()
    assert 'data-value="INBOX"' in body and 'data-value="Archive"' in body
    assert body.index("INBOX") < body.index("Archive")


def test_it_tells_why_the_folders_cannot_be_listed(bob_client, team, project, dovecot, mailbox, smtp_server):
    wrong = make_connection(team, project, name="Wrong", password="nope", **real_server_config(dovecot, smtp_server))
    response = bob_client.get(url("activity_folders", team, project=project.pk) + f"?connection={wrong.pk}", **HX)
    assert response.status_code == 200
    body = response.content.decode()
    assert "Could not list the folders" in body and "You can still type" in body
    assert "nope" not in body


def test_it_previews_a_real_message_without_marking_it(bob_client, team, project, workflow, live_connection,
                                                       mailbox):
    for n in (1, 2):
        mailbox.append("INBOX", message(n, subject=f"Question {n}"))
    before = mailbox.flags()
    reader = Activity.objects.create(project=project, connection=live_connection, type="read_email", name="Inbox",
                                     settings={"folder": "INBOX"})
    sender = Activity.objects.create(project=project, connection=live_connection, type="send_email", name="Out",
                                     settings={"defaults": {"from": "support@example.com"}})
    operation = Operation.objects.create(project=project, workflow=workflow, name="Forward", source=reader,
                                         target=sender, mapping=MAPPING)
    choices = bob_client.get(url("operation_messages", team, operation=operation.pk), **HX).content.decode()
    assert choices.index("Question 2") < choices.index("Question 1")  # newest first
    newest = choices.split('<option value="', 3)[2].split('"', 1)[0].replace("&quot;", '"')
    response = bob_client.post(url("operation_preview", team, operation=operation.pk),
                               save_data(operation, message=newest), **HX)
    assert "Fwd: Question 2" in response.content.decode()
    assert mailbox.flags() == before
    assert all("\\Seen" not in flags for flags in mailbox.flags().values())


def test_a_wizard_step_that_is_not_a_number_is_the_first_step(bob_client, team, project):
    create = url("activity_create", team, project=project.pk, kind="read_email")
    response = bob_client.post(create, {"step": "abc", "name": "Inbox"})
    assert response.status_code in (200, 400)
