"""Project variables (panel, use in activity fields and defaults), project rename and delete, the Activity page."""

import re

import pytest
from cryptography.fernet import Fernet
from django.core.management import call_command
from django_celery_beat.models import PeriodicTask

from designer.models import Activity, AuditEntry, Connection, Operation, Project, Run, Variable
from designer.running import activity_settings, schedules
from tests.helpers import url
from tests.web import test_canvas
from tests.web.test_canvas import HX, save_data

# The designer's fixtures: a project connection, its Read and Send Email activities, an operation of both.
connection, reader, sender = test_canvas.connection, test_canvas.reader, test_canvas.sender
workflow, operation = test_canvas.workflow, test_canvas.operation


def _add(client, team, project, **data):
    return client.post(url("variables", team, project=project.pk),
                       {"name": "", "value": "", "description": "", **data}, **HX)


# Variables -------------------------------------------------------------------------------------


def test_the_panel_adds_plain_and_secret_variables_and_never_shows_a_secret(bob_client, team, project):
    assert _add(bob_client, team, project, name="helpdesk_address", value="desk@example.net",
                description="Where tickets go").status_code == 200
    response = _add(bob_client, team, project, name="api_token", value="t0ps3cret", secret="on")
    body = response.content.decode()
    assert "desk@example.net" in body and "vars.api_token" in body and "t0ps3cret" not in body
    token = Variable.objects.get(name="api_token")
    assert token.value == "" and "t0ps3cret" not in token.value_token and token.get_value() == "t0ps3cret"
    assert project.variables == {"api_token": "t0ps3cret", "helpdesk_address": "desk@example.net"}
    edit = bob_client.get(url("variable_edit", team, variable=token.pk), **HX).content.decode()
    assert "t0ps3cret" not in edit and "unchanged (secret, not shown)" in edit
    # Saving with the value left empty keeps the secret; the audit says "changed", never the value.
    bob_client.post(url("variable_edit", team, variable=token.pk),
                    {"name": "api_token", "value": "n3wsecret", "secret": "on", "description": "d"}, **HX)
    assert Variable.objects.get(name="api_token").get_value() == "n3wsecret"
    entry = AuditEntry.objects.get(object_type="variable", action="changed")
    assert entry.change_lines == ["description: (empty) → d", "value changed"]
    details = str(list(AuditEntry.objects.values_list("details", flat=True)))
    assert "t0ps3cret" not in details and "n3wsecret" not in details


@pytest.mark.parametrize(("data", "error"), [
    ({"name": "1st", "value": "x"}, "not starting with a digit"),
    ({"name": "has space", "value": "x"}, "letters, digits and _ only"),
    ({"name": "taken", "value": "x"}, "already has a variable called taken"),
    ({"name": "token", "secret": "on"}, "Enter the secret value."),
])
def test_the_panel_refuses_a_bad_variable_and_keeps_the_typing(bob_client, team, project, data, error):
    Variable.objects.create(project=project, name="taken", value="v")
    response = _add(bob_client, team, project, **data)
    assert response.status_code == 400
    assert error in response.content.decode()
    assert Variable.objects.count() == 1


def test_a_secret_value_typed_into_a_refused_form_is_kept_and_never_shown(bob_client, team, project):
    refused = _add(bob_client, team, project, name="1st", value="t0ps3cret", secret="on")
    assert refused.status_code == 400
    body = refused.content.decode()
    assert "t0ps3cret" not in body and 'type="password"' in body
    assert "Entered, not shown: kept for this form." in body
    token = refused.context["kept_token"]
    assert token and f'name="kept_secrets" value="{token}"' in body
    # Corrected without typing the secret again: it is saved with the value typed first.
    assert _add(bob_client, team, project, name="api_token", secret="on", kept_secrets=token).status_code == 200
    assert Variable.objects.get(name="api_token").get_value() == "t0ps3cret"


def test_every_fields_help_is_what_its_aria_describedby_names(bob_client, team, project):
    panel = bob_client.get(url("variables", team, project=project.pk)).content.decode()
    connection_form = bob_client.get(url("project_connection_create", team, project=project.pk)).content.decode()
    for body in (panel, connection_form):
        described = re.findall(r'aria-describedby="([^"]+)"', body)
        assert described and all(body.count(f'id="{name}"') == 1 for name in described)


def test_a_viewer_sees_the_panel_but_cannot_add(charlie_client, team, project):
    Variable.objects.create(project=project, name="shown", value="v")
    assert "vars.shown" in charlie_client.get(url("variables", team, project=project.pk)).content.decode()
    assert _add(charlie_client, team, project, name="x", value="y").status_code == 403


def test_a_variable_in_use_keeps_its_name_and_is_not_deleted(bob_client, team, project, operation, reader):
    variable = Variable.objects.create(project=project, name="helpdesk_address", value="desk@example.net")
    operation.mapping = {**operation.mapping, "to": "{{ vars.helpdesk_address }}"}
    operation.save()
    reader.settings = {"folder": "{{ vars['helpdesk_address'] }}"}
    reader.save()
    response = bob_client.post(url("variable_edit", team, variable=variable.pk),
                               {"name": "desk", "value": "desk@example.net"}, **HX)
    assert response.status_code == 409
    body = response.content.decode()
    assert "operation Forward to helpdesk: mapping of to" in body and "activity Read support inbox: folder" in body
    assert Variable.objects.get(pk=variable.pk).name == "helpdesk_address"
    response = bob_client.post(url("variable_delete", team, variable=variable.pk), **HX)
    assert response.status_code == 409 and Variable.objects.filter(pk=variable.pk).exists()
    # Out of use, it goes.
    operation.mapping.pop("to")
    operation.save()
    reader.settings = {"folder": "INBOX"}
    reader.save()
    assert bob_client.post(url("variable_delete", team, variable=variable.pk), **HX).status_code == 200
    assert not Variable.objects.filter(pk=variable.pk).exists()


def test_activity_fields_are_rendered_with_the_variables(project, reader, sender):
    Variable.objects.create(project=project, name="folder", value="Support/Incoming")
    reader.settings = {"folder": "{{ vars.folder }}", "filters": {"subject": "[{{ vars.folder }}]"}}
    settings = activity_settings.parsed(reader)
    assert settings.folder == "Support/Incoming" and settings.filters.subject == "[Support/Incoming]"
    # A Send Email default holding a template is taken out of the settings and rendered for each record.
    sender.settings = {"defaults": {"from": "a@example.com", "to": "{{ vars.folder }}-{{ subject }}@x.org"}}
    assert activity_settings.parsed(sender).defaults == {"from": "a@example.com"}
    rendered = activity_settings.with_defaults({}, sender, {"subject": "s", "vars": {"folder": "f"}})
    assert rendered == {"to": "f-s@x.org"}
    assert activity_settings.with_defaults({"to": "kept@x.org"}, sender, {}) == {"to": "kept@x.org"}


def test_a_templated_default_is_checked_when_saved(bob_client, team, project, sender):
    Variable.objects.create(project=project, name="helpdesk_address", value="desk@example.net")
    edit = url("activity_edit", team, activity=sender.pk)
    data = {"name": "Send to helpdesk", "connection": sender.connection_id, "step": "0", "action": "save",
            "defaults_from": "a@example.com", "defaults_to": "{{ vars.helpdesk_adress }}"}
    response = bob_client.post(edit, data, **HX)
    assert response.status_code == 400
    assert "uses vars.helpdesk_adress, which this project does not define" in response.content.decode()
    data["defaults_to"] = "{{ vars.helpdesk_address"
    assert bob_client.post(edit, data, **HX).status_code == 400
    data["defaults_to"] = "{{ vars.helpdesk_address }}"
    assert bob_client.post(edit, data, **HX).status_code == 200
    assert Activity.objects.get(pk=sender.pk).settings["defaults"]["to"] == "{{ vars.helpdesk_address }}"


def test_the_preview_shows_the_rendered_default(bob_client, team, project, operation, sender):
    Variable.objects.create(project=project, name="helpdesk_address", value="desk@example.net")
    sender.settings = {"defaults": {"from": "support@example.com", "to": "{{ vars.helpdesk_address }}"}}
    sender.save()
    response = bob_client.post(url("operation_preview", team, operation=operation.pk),
                               save_data(operation, map_to="", message="sample"), **HX)
    body = response.content.decode()
    assert "desk@example.net" in body and "vars.helpdesk_address" not in body


def test_an_unknown_variable_in_the_mapping_is_a_problem(bob_client, team, operation):
    response = bob_client.post(url("operation_save", team, operation=operation.pk),
                               save_data(operation, map_to="{{ vars.nowhere }}"), **HX)
    assert response.status_code == 400
    assert "uses vars.nowhere, which this project does not define" in response.content.decode()
    assert "vars.nowhere" not in str(Operation.objects.get(pk=operation.pk).mapping)


# Projects renamed and deleted --------------------------------------------------------------------


def test_an_editor_renames_a_project_and_the_audit_says_from_what(bob_client, team, project, operation):
    response = bob_client.post(url("project_settings", team, project=project.pk),
                               {"name": "Helpdesk", "description": ""})
    assert response.status_code == 302
    assert Project.objects.get(pk=project.pk).name == "Helpdesk"
    assert Operation.objects.get(pk=operation.pk).project.name == "Helpdesk"
    entry = AuditEntry.objects.get(object_type="project", action="changed")
    assert entry.change_lines == ["name: Support desk → Helpdesk"]
    export = bob_client.get(url("project_export", team, project=project.pk)).content.decode()
    assert '"name": "Helpdesk"' in export


def test_a_rename_to_a_taken_name_is_refused(bob_client, team, project):
    Project.objects.create(team=team, name="Other")
    response = bob_client.post(url("project_settings", team, project=project.pk), {"name": "Other"})
    assert response.status_code == 400 and "already exists" in response.content.decode()


def test_a_viewer_can_neither_rename_nor_delete(charlie_client, team, project):
    assert charlie_client.post(url("project_settings", team, project=project.pk), {"name": "X"}).status_code == 403
    assert charlie_client.post(url("project_delete", team, project=project.pk)).status_code == 403
    assert Project.objects.filter(pk=project.pk).exists()


def test_delete_lists_what_goes_and_is_refused_while_a_run_is_in_progress(bob_client, team, project, operation):
    Variable.objects.create(project=project, name="v", value="x")
    operation.schedule, operation.interval_minutes = Operation.Schedule.INTERVAL, 5
    operation.save()
    schedules.sync(operation)
    run = Run.objects.create(operation=operation, status=Run.Status.RUNNING)
    page = bob_client.get(url("project_delete", team, project=project.pk)).content.decode()
    assert "queued or running" in page and f"#{run.pk}" in page
    response = bob_client.post(url("project_delete", team, project=project.pk))
    assert response.status_code == 409 and Project.objects.filter(pk=project.pk).exists()
    run.status = Run.Status.SUCCEEDED
    run.save()
    page = bob_client.get(url("project_delete", team, project=project.pk)).content.decode()
    for name in ("Forward to helpdesk", "Read support inbox", "Send to helpdesk", "Support mailbox", "vars.v",
                 "1 run with their messages and logs"):
        assert name in page
    assert bob_client.post(url("project_delete", team, project=project.pk)).status_code == 302
    assert not Project.objects.filter(pk=project.pk).exists()
    assert not Connection.objects.filter(project_id=project.pk).exists()
    assert not PeriodicTask.objects.filter(name=schedules.task_name(operation)).exists()
    assert AuditEntry.objects.filter(object_type="project", action="deleted").exists()


# The Activity page -------------------------------------------------------------------------------


def test_the_activity_page_filters_by_object_and_person_and_pages(alice_client, bob_client, team, project):
    for n in range(55):
        _add(bob_client, team, project, name=f"v{n}", value="x")
    alice_client.post(url("project_settings", team, project=project.pk), {"name": "Renamed"})
    page = alice_client.get(url("team_activity", team)).content.decode()
    assert 'aria-current="page">Activity</a>' in page
    assert "Page 1 of 2" in page and "name: Support desk → Renamed" in page
    page = alice_client.get(url("team_activity", team), {"type": "project"}).content.decode()
    assert "Renamed" in page and "v54" not in page and "Page 1 of 1" in page
    page = alice_client.get(url("team_activity", team), {"person": "bob", "page": "2"}).content.decode()
    assert "Page 2 of 2" in page and "Renamed" not in page and 'href="?person=bob&amp;page=1"' in page
    page = alice_client.get(url("team_activity", team), {"type": "membership"}).content.decode()
    assert "Nothing recorded for these filters." in page


def test_the_preview_masks_a_secret_variable(bob_client, team, project, operation):
    token = Variable(project=project, name="api_token")
    token.set_value("t0ps3cret", secret=True)
    token.save()
    response = bob_client.post(url("operation_preview", team, operation=operation.pk),
                               save_data(operation, map_subject="key {{ vars.api_token }}", message="sample"), **HX)
    body = response.content.decode()
    assert "key ••••••" in body and "t0ps3cret" not in body


def test_key_rotation_re_encrypts_secret_variables(project, settings, capsys):
    old_key = settings.MAILWRIGHT_ENCRYPTION_KEYS[0]
    token = Variable(project=project, name="api_token")
    token.set_value("rotate-me", secret=True)
    token.save()
    new_key = Fernet.generate_key().decode()
    settings.MAILWRIGHT_ENCRYPTION_KEYS = [new_key, old_key]
    call_command("rotate_encryption_keys")
    assert "re-encrypted 1 secret record(s)" in capsys.readouterr().out
    settings.MAILWRIGHT_ENCRYPTION_KEYS = [new_key]
    assert Variable.objects.get(pk=token.pk).get_value() == "rotate-me"
