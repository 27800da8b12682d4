"""Project variables end to end against Dovecot and aiosmtpd: imported from the project file, rendered in a
Send Email default and in Read Email's folder, and exported back (a secret one only as {"env": ...})."""

import json
from datetime import timedelta
from types import SimpleNamespace

import pytest
from django.core.management import call_command
from django.utils import timezone

from designer.authoring import projectfile
from designer.models import Team, Variable
from designer.running.context import RunContext
from tests.helpers import import_project, message, project_file


def _document(dovecot, smtp) -> dict:
    document = project_file(dovecot, smtp)
    document["variables"] = {"helpdesk_address": "desk@example.net", "inbox": "INBOX",
                             "greeting": {"env": "GREETING"}}
    document["activities"][0]["folder"] = "{{ vars.inbox }}"
    document["activities"][1]["defaults"]["to"] = "{{ vars.helpdesk_address }}"
    document["activities"][1]["defaults"]["subject"] = "{{ vars.greeting }}: {{ subject }}"
    mapping = document["operations"][0]["mapping"]
    del mapping["to"], mapping["subject"]
    return document


def test_a_templated_default_is_rendered_with_vars_and_record_fields(transactional_db, dovecot, mailbox, smtp,
                                                                     tmp_path, monkeypatch, capsys):
    monkeypatch.setenv("GREETING", "Hello desk")
    import_project(tmp_path, monkeypatch, _document(dovecot, smtp))
    mailbox.append("INBOX", message(1))
    call_command("run_operation", "Forward to helpdesk", "--project", "Support desk", "--team", "Support",
                 "--inline")
    assert "1 read, 1 sent" in capsys.readouterr().out
    [sent] = smtp.messages
    assert sent.rcpt_tos == ("desk@example.net",)
    assert sent.message["To"] == "desk@example.net"
    assert sent.subject == "Hello desk: Question 1"


def test_export_then_import_round_trips_the_variables(db, tmp_path, monkeypatch):
    monkeypatch.setenv("GREETING", "Hello desk")
    document = _document(SimpleNamespace(tls_port=993, ca_pem=""), SimpleNamespace(port=25))
    import_project(tmp_path, monkeypatch, document)
    secret = Variable.objects.get(name="greeting")
    assert secret.secret and secret.value == "" and "Hello desk" not in secret.value_token
    out = tmp_path / "out.json"
    call_command("export_project", "Support desk", "--team", "Support", "-o", str(out))
    exported = json.loads(out.read_text())
    assert exported["variables"] == {"greeting": {"env": "GREETING"}, "helpdesk_address": "desk@example.net",
                                     "inbox": "INBOX"}
    assert "Hello desk" not in out.read_text()
    exported["connections"][0]["auth"]["password"] = {"env": "SUPPORT_PASSWORD"}
    out.write_text(json.dumps(exported))
    call_command("import_project", str(out), "--team", "Copy")
    copied = {v.name: v.get_value() for v in Variable.objects.filter(project__team__name="Copy")}
    assert copied == {"greeting": "Hello desk", "helpdesk_address": "desk@example.net", "inbox": "INBOX"}


def test_a_bad_variables_entry_is_refused_with_its_path(db):
    document = {"format": "mailwright.project/1", "name": "P", "variables": {
        "1st": "x", "count": 3, "token": {"env": "NOT_SET_ANYWHERE"}, "key": {"env": "K", "value": "v"},
        "fine": "ok"}}
    with pytest.raises(projectfile.ProjectFileError) as refused:
        projectfile.apply(projectfile.plan(document, environ={}), Team(name="T"))
    errors = refused.value.errors
    assert any(e.startswith("variables.1st: Use letters, digits and _ only") for e in errors)
    assert 'variables.count: must be a string (a secret one: {"env": "VAR_NAME"})' in errors
    assert 'variables.key: a secret value must be {"env": "VAR_NAME"} only' in errors
    document["variables"] = {"token": {"env": "NOT_SET_ANYWHERE"}}
    with pytest.raises(projectfile.ProjectFileError) as refused:
        projectfile.apply(projectfile.plan(document, environ={}), Team(name="T"))
    assert refused.value.errors == ["variables.token: environment variable NOT_SET_ANYWHERE is not set"]
    assert not Variable.objects.exists() and not Team.objects.exists()
    with pytest.raises(projectfile.ProjectFileError, match="variables: must be an object"):
        projectfile.plan({**document, "variables": ["x"]}, environ={})


def test_an_import_warns_of_an_activity_using_an_undefined_variable(db, capsys):
    document = _document(SimpleNamespace(tls_port=993, ca_pem=""), SimpleNamespace(port=25))
    document["activities"][0]["folder"] = "{{ vars.inbx }}"
    report = projectfile.apply(projectfile.plan(document, environ={"SUPPORT_PASSWORD": "p", "GREETING": "g"}),
                               Team(name="T"))
    assert ("  warning: activity Read support inbox: folder: uses vars.inbx, which this project does not define"
            in report)


def test_a_secret_variable_is_masked_in_the_run_log_and_debug_copy(transactional_db, dovecot, mailbox, smtp,
                                                                   tmp_path, monkeypatch, capsys):
    monkeypatch.setenv("GREETING", "Hello desk")
    operation = import_project(tmp_path, monkeypatch, _document(dovecot, smtp))
    operation.debug_until = timezone.now() + timedelta(days=1)
    operation.save()
    mailbox.append("INBOX", message(1))
    call_command("run_operation", "Forward to helpdesk", "--project", "Support desk", "--team", "Support",
                 "--inline")
    assert smtp.messages[0].subject == "Hello desk: Question 1"  # the message itself carries it
    run = operation.runs.get()
    record = run.records.get()
    assert record.rendered["subject"] == "••••••: Question 1"
    RunContext(run).log("about Hello desk")
    assert run.logs.last().text == "about ••••••"
