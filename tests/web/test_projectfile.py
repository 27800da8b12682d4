import json

import pytest
from django.core.management import call_command
from django.core.management.base import CommandError

from designer.authoring import projectfile
from designer.authoring.rules import operation_problems
from designer.models import AuditEntry, Connection, Operation, Project, Team

SPEC_FILE = {
    "format": "mailwright.project/1",
    "name": "Support desk",
    "connections": [
        {"name": "Support mailbox", "connector": "email",
         "imap": {"host": "imap.example.com", "port": 993, "security": "ssl", "verify_tls": True},
         "smtp": {"host": "smtp.example.com", "port": 587, "security": "starttls", "verify_tls": True},
         "auth": {"method": "password", "username": "support@example.com",
                  "password": {"env": "SUPPORT_PASSWORD"}}}
    ],
    "activities": [
        {"name": "Read support inbox", "type": "read_email", "connection": "Support mailbox",
         "folder": "INBOX", "max_messages": 100, "after_read": "mark_read"},
        {"name": "Send to helpdesk", "type": "send_email", "connection": "Support mailbox",
         "defaults": {"from": "support@example.com"}}
    ],
    "operations": [
        {"name": "Forward to helpdesk", "source": "Read support inbox", "target": "Send to helpdesk",
         "mapping": {"to": "helpdesk@example.com", "subject": "Fwd: {{ subject }}", "text": "{{ text }}",
                     "attachments": "{{ attachments }}"},
         "condition": None, "schedule": None, "on_success": None, "on_failure": None}
    ],
}


@pytest.fixture
def spec_file(tmp_path, monkeypatch):
    monkeypatch.setenv("SUPPORT_PASSWORD", "env-secret-1")
    path = tmp_path / "project.json"
    path.write_text(json.dumps(SPEC_FILE))
    return path


def test_it_imports_the_spec_example_and_creates_the_team(db, spec_file, capsys):
    call_command("import_project", str(spec_file), "--team", "Acme")
    out = capsys.readouterr().out
    assert "created team Acme" in out
    assert "created project Support desk" in out
    assert "created connection Support mailbox" in out
    assert "created activity Read support inbox" in out
    assert "created activity Send to helpdesk" in out
    assert "created operation Forward to helpdesk" in out
    assert "warning" not in out
    operation = Operation.objects.get(name="Forward to helpdesk")
    assert operation.source.name == "Read support inbox"
    assert operation.target.name == "Send to helpdesk"
    assert operation.mapping["subject"] == "Fwd: {{ subject }}"
    assert operation_problems(operation) == []
    connection = Connection.objects.get(name="Support mailbox")
    assert connection.team.name == "Acme"
    assert connection.get_secrets() == {"password": "env-secret-1"}
    assert connection.config["auth"] == {"method": "password", "username": "support@example.com"}


def test_it_is_idempotent_by_names(db, spec_file, capsys):
    call_command("import_project", str(spec_file), "--team", "Acme")
    capsys.readouterr()
    call_command("import_project", str(spec_file), "--team", "Acme")
    out = capsys.readouterr().out
    assert "unchanged project Support desk" in out
    assert "unchanged connection Support mailbox" in out
    assert "unchanged activity Read support inbox" in out
    assert "unchanged operation Forward to helpdesk" in out
    assert Connection.objects.count() == 1
    assert Project.objects.count() == 1


def test_it_reports_every_error_with_its_path_and_imports_nothing(db, tmp_path, capsys):
    bad = json.loads(json.dumps(SPEC_FILE))
    bad["connections"][0]["imap"]["port"] = 70000
    bad["connections"][0]["smtp"]["security"] = "tls"
    bad["connections"][0]["auth"]["password"] = {"env": "MISSING_VAR_FOR_TEST"}
    path = tmp_path / "bad.json"
    path.write_text(json.dumps(bad))
    with pytest.raises(CommandError, match="nothing imported"):
        call_command("import_project", str(path), "--team", "Acme")
    err = capsys.readouterr().err
    assert "connections[0].imap.port: must be between 1 and 65535" in err
    assert "connections[0].smtp.security: must be one of ssl, starttls, none" in err
    assert "connections[0].auth.password: environment variable MISSING_VAR_FOR_TEST is not set" in err
    assert not Team.objects.exists()
    assert not Connection.objects.exists()


def test_it_names_line_and_column_of_broken_json(db, tmp_path, capsys):
    path = tmp_path / "broken.json"
    path.write_text('{\n  "format": "mailwright.project/1",\n  "name": "x",,\n}')
    with pytest.raises(CommandError):
        call_command("import_project", str(path), "--team", "Acme")
    assert "line 3 column 15" in capsys.readouterr().err


def test_it_requires_a_password_for_a_new_connection(db):
    data = json.loads(json.dumps(SPEC_FILE))
    del data["connections"][0]["auth"]["password"]
    with pytest.raises(projectfile.ProjectFileError) as exc:
        projectfile.apply(projectfile.plan(data), Team(name="Acme"))
    assert exc.value.errors[0] == "connections[0].auth.password: is required for a new connection"
    assert not Team.objects.exists()


def test_it_keeps_a_stored_password_when_the_file_gives_none(db, spec_file):
    call_command("import_project", str(spec_file), "--team", "Acme")
    data = json.loads(json.dumps(SPEC_FILE))
    del data["connections"][0]["auth"]["password"]
    projectfile.apply(projectfile.plan(data), Team.objects.get(name="Acme"))
    assert Connection.objects.get().get_secrets() == {"password": "env-secret-1"}


def test_it_takes_a_literal_password_and_never_exports_it(db, tmp_path, capsys):
    data = json.loads(json.dumps(SPEC_FILE))
    data["connections"][0]["auth"]["password"] = "literal-canary-7731"
    path = tmp_path / "literal.json"
    path.write_text(json.dumps(data))
    call_command("import_project", str(path), "--team", "Acme")
    out_path = tmp_path / "out.json"
    call_command("export_project", "Support desk", "--team", "Acme", "-o", str(out_path))
    exported = out_path.read_text()
    assert "literal-canary-7731" not in exported
    document = json.loads(exported)
    assert document["format"] == "mailwright.project/1"
    assert document["connections"][0]["auth"] == {"method": "password", "username": "support@example.com"}
    assert document["connections"][0]["imap"]["port"] == 993
    assert "literal-canary-7731" not in str(list(AuditEntry.objects.values_list("details", flat=True)))


def test_it_round_trips_an_export_into_another_team(db, spec_file, tmp_path, monkeypatch):
    call_command("import_project", str(spec_file), "--team", "Acme")
    out_path = tmp_path / "out.json"
    call_command("export_project", "Support desk", "--team", "Acme", "-o", str(out_path))
    document = json.loads(out_path.read_text())
    document["connections"][0]["auth"]["password"] = {"env": "SUPPORT_PASSWORD"}
    out_path.write_text(json.dumps(document))
    call_command("import_project", str(out_path), "--team", "Beta")
    copy = Connection.objects.get(team__name="Beta")
    original = Connection.objects.get(team__name="Acme")
    assert copy.config == original.config


def test_it_rejects_a_wrong_format_and_unknown_settings(db):
    data = json.loads(json.dumps(SPEC_FILE))
    data["format"] = "something/2"
    data["connections"][0]["imap"]["hots"] = "typo"
    with pytest.raises(projectfile.ProjectFileError) as exc:
        projectfile.plan(data, environ={"SUPPORT_PASSWORD": "x"})
    assert "format: must be 'mailwright.project/1', found 'something/2'" in exc.value.errors
    assert "connections[0].imap.hots: is not a known setting" in exc.value.errors


def test_it_refuses_duplicate_connection_names_in_one_file(db):
    data = json.loads(json.dumps(SPEC_FILE))
    data["connections"].append(data["connections"][0])
    with pytest.raises(projectfile.ProjectFileError) as exc:
        projectfile.plan(data, environ={"SUPPORT_PASSWORD": "x"})
    assert "connections[1].name: 'Support mailbox' appears twice in this file" in exc.value.errors


def test_it_exports_activities_and_operations_in_the_spec_shape(db, spec_file, tmp_path):
    call_command("import_project", str(spec_file), "--team", "Acme")
    out_path = tmp_path / "out.json"
    call_command("export_project", "Support desk", "--team", "Acme", "-o", str(out_path))
    document = json.loads(out_path.read_text())
    read, send = sorted(document["activities"], key=lambda a: a["name"])
    assert (read["type"], read["connection"], read["folder"], read["max_messages"], read["after_read"]) == (
        "read_email", "Support mailbox", "INBOX", 100, "mark_read")
    assert send["defaults"]["from"] == "support@example.com"
    operation = document["operations"][0]
    assert {k: operation[k] for k in ("name", "source", "target", "mapping", "condition", "schedule",
                                      "on_success", "on_failure")} == SPEC_FILE["operations"][0]


def test_it_reports_operation_errors_with_their_paths(db):
    data = json.loads(json.dumps(SPEC_FILE))
    data["operations"][0]["source"] = "Nope"
    data["operations"][0]["schedule"] = {"cron": "61 * * * *", "timezone": "Mars/Olympus"}
    data["operations"][0]["mapping"]["subject"] = "{{ subject"
    data["activities"][0]["after_read"] = "shred"
    with pytest.raises(projectfile.ProjectFileError) as exc:
        projectfile.plan(data, environ={"SUPPORT_PASSWORD": "x"})
    text = "\n".join(exc.value.errors)
    assert "operations[0].source: no activity 'Nope' in this file" in text
    assert "operations[0].schedule.cron:" in text
    assert "operations[0].schedule.timezone: 'Mars/Olympus' is not a known time zone" in text
    assert "operations[0].mapping.subject:" in text
    assert "activities[0].after_read:" in text


def test_it_syncs_a_schedule_to_beat(db, spec_file):
    from django_celery_beat.models import PeriodicTask

    data = json.loads(json.dumps(SPEC_FILE))
    data["operations"][0]["schedule"] = {"every_minutes": 5}
    projectfile.apply(projectfile.plan(data, environ={"SUPPORT_PASSWORD": "x"}), Team(name="Acme"))
    task = PeriodicTask.objects.get()
    assert task.task == "designer.tasks.run_scheduled"
    assert task.interval.every == 5


@pytest.mark.parametrize("links", [{"A": ("A", None)}, {"A": ("B", None), "B": (None, "A")}])
def test_it_refuses_a_chain_cycle_naming_it(db, links):
    data = json.loads(json.dumps(SPEC_FILE))
    base = data["operations"][0]
    data["operations"] = [{**base, "name": name, "on_success": success, "on_failure": failure}
                          for name, (success, failure) in links.items()]
    with pytest.raises(projectfile.ProjectFileError) as exc:
        projectfile.plan(data, environ={"SUPPORT_PASSWORD": "x"})
    [error] = [e for e in exc.value.errors if "loop" in e]
    loop = " → ".join(["A", "A"] if len(links) == 1 else ["A", "B", "A"])
    assert error == f"operations[0]: on success / on failure would run in a loop: {loop}"


def test_it_refuses_a_file_that_repoints_a_connection_without_its_secrets(db, spec_file, monkeypatch):
    call_command("import_project", str(spec_file), "--team", "Acme")
    data = json.loads(json.dumps(SPEC_FILE))
    data["connections"][0]["smtp"]["host"] = "capture.example.net"
    del data["connections"][0]["auth"]["password"]

    with pytest.raises(projectfile.ProjectFileError) as exc:
        projectfile.apply(projectfile.plan(data), Team.objects.get(name="Acme"))

    assert exc.value.errors == ["connections[0]: the SMTP host changed, so the file must give the secrets again "
                                "(a stored secret is only sent to the server it was entered for)"]
    assert Connection.objects.get().config["smtp"]["host"] == "smtp.example.com"


def test_it_refuses_deeply_nested_json_with_a_clear_error(db, tmp_path, capsys):
    path = tmp_path / "nested.json"
    path.write_text("[" * 100000 + "]" * 100000)
    with pytest.raises(CommandError):
        call_command("import_project", str(path), "--team", "Acme")
    assert "nests lists or objects too deeply" in capsys.readouterr().err
