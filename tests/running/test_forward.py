"""End to end against the real servers: import the SPEC's file, run, and check exactly-once delivery."""

import pytest
from django.core.management import call_command
from django.core.management.base import CommandError

from designer.models import RunRecord
from tests.helpers import import_project, message, project_file


def _run(capsys) -> tuple[int, str]:
    try:
        call_command("run_operation", "Forward to helpdesk", "--project", "Support desk", "--team", "Support",
                     "--inline")
    except CommandError:
        return 1, capsys.readouterr().out
    return 0, capsys.readouterr().out


def _subjects(smtp):
    return sorted(m.subject for m in smtp.messages)


def test_it_forwards_every_unread_message_once(transactional_db, dovecot, mailbox, smtp, tmp_path,
                                               monkeypatch, capsys):
    import_project(tmp_path, monkeypatch, project_file(dovecot, smtp))
    for n in range(5):
        mailbox.append("INBOX", message(n, attachment=b"x" * 100 if n == 0 else None))
    mailbox.append("INBOX", message(99), flags=["\\Seen"])
    code, out = _run(capsys)
    assert code == 0, out
    assert "succeeded: 5 read, 5 sent, 0 skipped, 0 failed" in out
    assert _subjects(smtp) == [f"Fwd: Question {n}" for n in range(5)]
    first = next(m for m in smtp.messages if m.subject == "Fwd: Question 0")
    attachments = list(first.message.iter_attachments())
    assert [a.get_filename() for a in attachments] == ["file0.bin"]
    assert attachments[0].get_content() == b"x" * 100
    assert all("\\Seen" in flags for flags in mailbox.flags().values())
    # Each run record says what was delivered: the rendered recipients and subject.
    delivered = sorted(RunRecord.objects.values_list("delivered_to", "delivered_subject"))
    assert delivered == [(first.message["To"], f"Fwd: Question {n}") for n in range(5)]

    code, out = _run(capsys)
    assert code == 0
    assert "0 read, 0 sent" in out
    assert len(smtp.messages) == 5


def test_it_delivers_exactly_once_across_a_4xx_burst_and_a_rerun(transactional_db, dovecot, mailbox, smtp,
                                                                  tmp_path, monkeypatch, capsys):
    import_project(tmp_path, monkeypatch, project_file(dovecot, smtp, retries=0))
    for n in range(10):
        mailbox.append("INBOX", message(n))
    smtp.fail_when(lambda m: (451, "4.3.0 busy") if m.subject in ("Fwd: Question 3", "Fwd: Question 4")
                          else None)
    code, out = _run(capsys)
    assert code == 1
    assert "partial" in out
    assert len(smtp.messages) == 8
    unseen = [uid for uid, flags in mailbox.flags().items() if "\\Seen" not in flags]
    assert len(unseen) == 2  # nothing flagged without delivery
    smtp.clear_faults()
    code, out = _run(capsys)
    assert code == 0, out
    assert _subjects(smtp) == sorted(f"Fwd: Question {n}" for n in range(10))
    assert all("\\Seen" in flags for flags in mailbox.flags().values())


def test_it_records_a_5xx_and_never_resends_it(transactional_db, dovecot, mailbox, smtp, tmp_path,
                                               monkeypatch, capsys):
    operation = import_project(tmp_path, monkeypatch, project_file(dovecot, smtp))
    mailbox.append("INBOX", message(1))
    smtp.fail_always(554, "5.7.1 rejected by policy")
    code, out = _run(capsys)
    assert code == 1
    record = operation.runs.get().records.get()
    assert record.status == "failed"
    assert "554 5.7.1 rejected by policy" in record.error
    assert all("\\Seen" not in flags for flags in mailbox.flags().values())
    smtp.clear_faults()
    code, out = _run(capsys)
    assert "0 read, 0 sent" in out
    assert smtp.messages == []


@pytest.mark.parametrize("after_read", ["move", "delete", "leave"])
def test_it_applies_the_after_read_action_only_after_delivery(after_read, transactional_db, dovecot, mailbox,
                                                              smtp, tmp_path, monkeypatch, capsys):
    document = project_file(dovecot, smtp)
    document["activities"][0]["after_read"] = after_read
    if after_read == "move":
        document["activities"][0]["move_to"] = "Done"
        mailbox.create_folder("Done")
    import_project(tmp_path, monkeypatch, document)
    mailbox.append("INBOX", message(1))
    code, out = _run(capsys)
    assert code == 0, out
    assert len(smtp.messages) == 1
    inbox = mailbox.uids("INBOX")
    if after_read == "leave":
        assert len(inbox) == 1
    else:
        assert inbox == []
    if after_read == "move":
        assert len(mailbox.uids("Done")) == 1
    code, out = _run(capsys)
    assert len(smtp.messages) == 1
