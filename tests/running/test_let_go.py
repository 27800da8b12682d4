"""A large message is let go of once its data is sent, while the server decides (``lookahead.let_go``):
every connection can wait for an answer at once within the memory of two large messages, and a
temporary refusal after the data reads the message again from the source to send it again."""

from __future__ import annotations

import email
import email.policy
import os

from designer.models import LedgerEntry, Run
from designer.running import lookahead
from tests.helpers import message
from tests.running.test_faults import (
    assert_exactly_once,
    ids,
    nth_attempts,
    run_inline,
    seed,
    setup_operation,
    source_of,
)

LARGE = 300 * 1024  # above lookahead.LARGE_MESSAGE_BYTES, and downloaded in pieces


def _large(numbers: range) -> list[bytes]:
    return [message(n, attachment=os.urandom(LARGE)) for n in numbers]


def test_every_connection_waits_for_its_answer_at_once_with_large_messages(transactional_db, dovecot, mailbox,
                                                                           smtp, tmp_path, monkeypatch):
    assert lookahead.LARGE_AT_ONCE < 4
    operation = setup_operation(tmp_path, monkeypatch, dovecot, smtp, max_connections=4)
    seed(mailbox, _large(range(8)))
    smtp.delay_replies(0.5)  # each message stored at once, its 250 only later: a server scanning it

    run = run_inline(operation)

    assert run.status == Run.Status.SUCCEEDED, run.message
    # Before, a large message was held until its answer: no more than LARGE_AT_ONCE waited at once.
    assert smtp.most_replying_at_once == 4
    assert set(assert_exactly_once(operation, mailbox, smtp, expected=ids(range(8))).values()) == {"delivered"}


def test_a_large_message_refused_for_now_after_its_data_is_read_again_and_sent_whole(
        transactional_db, dovecot, mailbox, smtp, tmp_path, monkeypatch):
    operation = setup_operation(tmp_path, monkeypatch, dovecot, smtp, retries=1)
    sources = _large(range(3))
    seed(mailbox, sources)
    smtp.fail_when(nth_attempts({2}, (451, "4.3.0 try again later")))  # one connection: the second message

    run = run_inline(operation)

    assert run.status == Run.Status.SUCCEEDED, run.message
    assert (run.sent_count, run.failed_count) == (3, 0)
    [refused] = [a.message for a in smtp.attempts if a.outcome == "rejected"]
    assert source_of(refused) == "<q1@example.org>"
    resent = next(m for m in smtp.messages if source_of(m) == "<q1@example.org>")
    assert resent.message["Message-ID"] == refused.message["Message-ID"]  # tried again under the same one
    [attachment] = resent.message.iter_attachments()
    original = next(email.message_from_bytes(sources[1], policy=email.policy.default).iter_attachments())
    assert attachment.get_content() == original.get_content()  # whole: read again, not what was let go of
    assert set(assert_exactly_once(operation, mailbox, smtp, expected=ids(range(3))).values()) == {"delivered"}


def test_a_message_gone_from_the_folder_before_its_retry_is_recorded_for_the_next_run(
        transactional_db, dovecot, mailbox, smtp, tmp_path, monkeypatch):
    operation = setup_operation(tmp_path, monkeypatch, dovecot, smtp, retries=1)
    seed(mailbox, _large(range(1)))

    def refuse_and_delete(received):
        with mailbox.client() as imap:  # another mail program deletes it while the server decides
            imap.select_folder("INBOX")
            imap.delete_messages(imap.search("ALL"))
            imap.expunge()
        return (451, "4.3.0 try again later")

    smtp.fail_when(refuse_and_delete)

    run = run_inline(operation)

    assert (run.sent_count, run.failed_count) == (0, 1)
    row = LedgerEntry.objects.get()
    assert row.state == LedgerEntry.State.RETRY
    record = run.records.get()
    assert "not sent again: it is no longer in the source folder" in record.error
    assert smtp.messages == []
