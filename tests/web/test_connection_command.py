"""`manage.py test_connection` against the real Dovecot and aiosmtpd servers."""

import socket
import time

import pytest
from django.core.management import call_command
from django.core.management.base import CommandError

from designer.models import AuditEntry, Connection
from tests.helpers import real_server_config
from tests.servers.fixtures import IMAP_PASSWORD


@pytest.fixture
def smtp_auth(smtp_factory):
    return smtp_factory("starttls", {"alice": "smtp-pass"})


def _connection(project, config, password=IMAP_PASSWORD):
    connection = Connection(team=project.team, project=project, name="Real", config=config)
    connection.set_secrets({"password": password})
    connection.save()
    return connection


def _run(capsys):
    try:
        call_command("test_connection", "Real", "--project", "Support desk", "--team", "Support")
    except CommandError as exc:
        return 1, capsys.readouterr().out, str(exc)
    return 0, capsys.readouterr().out, ""


def test_it_passes_every_step_against_real_servers(project, dovecot, mailbox, smtp_factory, capsys):
    smtp = smtp_factory("starttls", {"alice": IMAP_PASSWORD})
    mailbox.append("INBOX", b"Subject: hi\r\n\r\nbody\r\n")
    _connection(project, real_server_config(dovecot, smtp))
    code, out, _ = _run(capsys)
    assert code == 0, out
    lines = out.strip().splitlines()
    assert lines[-1] == "Connection Success"
    assert all(line.startswith("ok") for line in lines[:-1]), out
    assert any("IMAP login" in line for line in lines)
    assert any("1 unseen" in line or "unseen: 1" in line or "1 message" in line for line in lines), out
    assert any("SMTP login" in line for line in lines)
    assert smtp.messages == []
    assert AuditEntry.objects.filter(action="tested", details__result="Connection Success").exists()


def test_it_names_the_imap_login_step_on_a_wrong_password(project, dovecot, smtp_server, capsys):
    _connection(project, real_server_config(dovecot, smtp_server), password="wrong-password")
    code, out, error = _run(capsys)
    assert code == 1
    assert "FAIL IMAP login" in out
    assert "authentication rejected" in out.lower()
    assert "IMAP login" in error
    assert "wrong-password" not in out + error


def test_it_says_refused_for_a_closed_port(project, dovecot, smtp_server, capsys):
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        closed = s.getsockname()[1]
    config = real_server_config(dovecot, smtp_server)
    config["imap"]["port"] = closed
    _connection(project, config)
    code, out, _ = _run(capsys)
    assert code == 1
    assert "refused" in out


def test_it_says_tls_against_a_plain_port(project, dovecot, smtp_server, capsys):
    config = real_server_config(dovecot, smtp_server)
    config["imap"]["port"] = dovecot.plain_port
    _connection(project, config)
    code, out, _ = _run(capsys)
    assert code == 1
    assert "plain port" in out


def test_it_refuses_a_link_local_address(project, smtp_server, dovecot, capsys):
    config = real_server_config(dovecot, smtp_server)
    config["imap"]["host"] = "169.254.169.254"
    _connection(project, config)
    started = time.monotonic()
    code, out, _ = _run(capsys)
    assert code == 1
    assert "deny-list" in out
    assert time.monotonic() - started < 2


def test_it_never_waits_past_the_timeout(project, smtp_server, dovecot, capsys):
    # A listener that accepts but never speaks: the greeting read must time out.
    with socket.socket() as silent:
        silent.bind(("127.0.0.1", 0))
        silent.listen()
        config = real_server_config(dovecot, smtp_server, read_timeout=2)
        config["imap"] = {"host": "127.0.0.1", "port": silent.getsockname()[1], "security": "none",
                          "verify_tls": True}
        config["smtp"] = None
        _connection(project, config)
        started = time.monotonic()
        code, out, _ = _run(capsys)
    assert code == 1
    assert "timed out" in out or "no greeting" in out
    assert time.monotonic() - started < 8
