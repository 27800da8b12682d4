"""Hostile mail through the whole pipeline: real Dovecot in, real aiosmtpd out.

The unit tests (tests/unit/test_mime.py) prove the parser never raises; these prove a run
survives the same messages end to end: it never crashes, and every message is either delivered
exactly once or recorded skipped/failed with a reason (the invariants of test_faults).
"""

from __future__ import annotations

import re
from collections.abc import Callable
from typing import Any

import pytest

from connectors.email.activities import MB
from connectors.email.imap import GuardedIMAPClient
from designer.models import LedgerEntry, Run, RunRecord
from tests.email import hostile_mail as hostile
from tests.helpers import message
from tests.running.test_faults import (
    MAPPING,
    assert_exactly_once,
    run_inline,
    seed,
    setup_operation,
    source_messages,
    source_of,
)

# name -> raw message; each gets a Message-ID of its own (below) so its copy can be traced.
HOSTILE: dict[str, Callable[[], bytes]] = {
    # RFC 2047 garbage and 8-bit headers
    "encoded_words": hostile.encoded_words,
    "unknown_charset_word": hostile.unknown_charset_word,
    "raw_8bit_headers": hostile.raw_8bit_headers,
    "encoded_crlf_subject": hostile.encoded_crlf_subject,
    "long_header": hostile.long_header,
    "duplicate_headers": hostile.duplicate_headers,
    "bad_date": hostile.bad_date,
    "unparseable_addresses": hostile.unparseable_addresses,
    "rfc2047_garbage": lambda: hostile.message([
        ("From", "=?utf-8?b?!!!not base64?= <a@example.com>"),
        ("Subject", "=?utf-8?q?unterminated =??q?no_charset?= =?utf-8?x?bad_encoding?= =?utf-8?b?w6k=?="),
        ("To", "=?utf-8?q?=FF=FE?= <b@example.com>"),
    ], b"x\r\n"),
    # NUL bytes (Dovecot stores them as 0x80, as real servers rewrite them one way or another)
    "nul_bytes": hostile.nul_bytes,
    # bad charsets in bodies
    "charset_unknown": lambda: hostile.body_in_charset("x-unknown", b"ok \xff"),
    "charset_misspelt": lambda: hostile.body_in_charset("utf8", "naïve".encode()),
    "charset_not_a_charset": lambda: hostile.body_in_charset("base64", b"abc"),
    "charset_lying_utf8": lambda: hostile.body_in_charset("utf-8", b"bad \xe9 byte"),
    "charset_utf7": lambda: hostile.body_in_charset("utf-7", b"Hi Mom -+Jjo--!"),
    "charset_iso2022": lambda: hostile.body_in_charset("iso-2022-jp", b"\x1b$B$3$s$K$A$O\x1b(B \x1b$B"),
    "charset_empty": lambda: hostile.body_in_charset('""', b"text \x81\x82"),
    # broken structure
    "broken_base64": hostile.broken_base64,
    "large_base64_line_split": hostile.large_attachment_with_a_line_split,  # downloaded in pieces
    "broken_quoted_printable": hostile.broken_quoted_printable,
    "missing_boundary": hostile.missing_boundary,
    "wrong_boundary": hostile.wrong_boundary,
    "boundary_unguessable": hostile.boundary_unguessable,
    "unterminated_multipart": hostile.unterminated_multipart,
    "deeply_nested": hostile.deeply_nested,
    "base64_attached_message": hostile.base64_attached_message,
    "invalid_content_type": hostile.invalid_content_type,
    "missing_content_type": hostile.missing_content_type,
    "rfc2231_filename": hostile.rfc2231_filename,
    "nested": hostile.nested,
    "html_only": hostile.html_only,
    # missing headers: no From, no Subject, no Date
    "headers_only": hostile.headers_only,
    "body_only": lambda: b"\r\njust a body, not one header\r\n",
}
# Without any header at all (not even a Message-ID): traced by UID.
ANONYMOUS = [b"\r\n", b"Subject: no id, no sender\r\n\r\nbody\r\n"]


def identity(name: str) -> str:
    return f"<{name.replace('_', '-')}@hostile.test>"


def with_id(name: str, raw: bytes) -> bytes:
    return f"Message-ID: {identity(name)}\r\n".encode() + raw


def _control(text: str) -> bool:
    return bool(re.search(r"[\x00-\x1f\x7f]", text))


def test_it_delivers_every_hostile_message_exactly_once_without_crashing(transactional_db, dovecot, mailbox, smtp,
                                                                          tmp_path, monkeypatch):
    operation = setup_operation(tmp_path, monkeypatch, dovecot, smtp)
    seed(mailbox, [with_id(name, build()) for name, build in HOSTILE.items()] + ANONYMOUS)

    run = run_inline(operation)

    assert run.status == Run.Status.SUCCEEDED, run.message
    total = len(HOSTILE) + len(ANONYMOUS)
    assert (run.read_count, run.sent_count) == (total, total)
    assert run.records.count() == total
    for copy in smtp.messages:
        # What the source said must not leak into the envelope or the headers (encoded CR LF).
        assert copy.rcpt_tos == ("helpdesk@example.com",)
        assert copy.message["Bcc"] is None and copy.message["Cc"] is None
        assert not _control(str(copy.message["Subject"] or ""))
    by_source = {source_of(copy): copy for copy in smtp.messages}
    assert by_source[identity("encoded_words")].subject == "Fwd: Price €5 and a Q word with spaces"
    assert by_source[identity("raw_8bit_headers")].subject == "Fwd: Grüße aus Köln"
    # The encoded CR LF became spaces: one subject line, no Bcc.
    assert " ".join(by_source[identity("encoded_crlf_subject")].subject.split()) == "Fwd: Hi Bcc: victim@example.com"
    assert by_source[identity("unknown_charset_word")].subject == "Fwd: caf\ufffd ok"
    attached = [a.get_filename() for a in by_source[identity("rfc2231_filename")].message.iter_attachments()]
    assert "naïve résumé.pdf" in attached and "Grüsse.csv" in attached
    assert "report.pdf" in [a.get_filename() for a in by_source[identity("nested")].message.iter_attachments()]

    expected = {identity(name) for name in HOSTILE} | {m.identity for m in source_messages(mailbox, "INBOX")
                                                       if m.identity.startswith("uid:")}
    assert len(expected) == total
    outcome = assert_exactly_once(operation, mailbox, smtp, expected=expected)
    assert set(outcome.values()) == {"delivered"}


def test_it_skips_a_30mb_message_unfetched_and_unflagged_and_delivers_the_rest(transactional_db, dovecot, mailbox,
                                                                                smtp, tmp_path, monkeypatch):
    operation = setup_operation(tmp_path, monkeypatch, dovecot, smtp, max_message_mb=25)
    big = with_id("huge", b"Subject: the quarterly archive\r\n" + hostile.large_attachment(23 * MB))
    assert len(big) > 30 * MB
    seed(mailbox, [message(1), big, message(2)])
    big_uid = next(m.uid for m in source_messages(mailbox, "INBOX") if m.identity == identity("huge"))
    # Spy on what the source asks Dovecot for: the big one's body must never be requested.
    requested: list[tuple[list[int], list[str]]] = []
    original_fetch = GuardedIMAPClient.fetch_later  # every FETCH, read at once or ahead

    def spy(self: GuardedIMAPClient, messages: Any, data: Any, *args: Any, **kwargs: Any) -> Any:
        requested.append((list(messages), [str(item) for item in data]))
        return original_fetch(self, messages, data, *args, **kwargs)

    monkeypatch.setattr(GuardedIMAPClient, "fetch_later", spy)

    run = run_inline(operation)

    assert run.status == Run.Status.SUCCEEDED, run.message
    assert (run.read_count, run.sent_count, run.skipped_count) == (3, 2, 1)
    record = run.records.get(status=RunRecord.Status.SKIPPED)
    assert re.fullmatch(r"message is 3\d\.\d MB, larger than the limit of 25 MB", record.error), record.error
    assert record.subject == "the quarterly archive"  # read from the headers alone
    bodies = [uids for uids, items in requested if any(i.startswith("BODY.PEEK[]") for i in items)]
    assert bodies and all(big_uid not in uids for uids in bodies), requested
    outcome = assert_exactly_once(operation, mailbox, smtp,
                                  expected={identity("huge"), "<q1@example.org>", "<q2@example.org>"})
    assert outcome == {identity("huge"): "skipped", "<q1@example.org>": "delivered", "<q2@example.org>": "delivered"}
    # A later run does not download it either.
    requested.clear()
    run_inline(operation)
    bodies = [uids for uids, items in requested if any(i.startswith("BODY.PEEK[]") for i in items)]
    assert not [uids for uids in bodies if big_uid in uids]


@pytest.mark.parametrize(("field", "template", "error"), [
    ("reply_to", "{{ reply_to }}", "not a valid address"),  # an unreadable address kept as text
    ("to", "{{ from }}", "at least one recipient is required"),  # "<<<>>>" reads as no sender at all
])
def test_it_records_a_message_its_mapping_cannot_send_and_delivers_the_rest(field, template, error, transactional_db,
                                                                            dovecot, mailbox, smtp, tmp_path,
                                                                            monkeypatch):
    # Answering or forwarding to the sender is what many operations do; a hostile sender breaks it.
    operation = setup_operation(tmp_path, monkeypatch, dovecot, smtp, mapping={**MAPPING, field: template})
    bad = with_id("bad_sender", hostile.message([("From", "<<<>>>"), ("Reply-To", '"unterminated <x'),
                                                 ("Subject", "from nowhere")], b"x\r\n"))
    seed(mailbox, [message(1), bad, message(2)])

    run = run_inline(operation)

    assert run.status == Run.Status.PARTIAL, run.message
    assert (run.sent_count, run.failed_count) == (2, 1)
    record = run.records.get(identity=identity("bad_sender"))
    assert record.error.startswith(f"{field}: ") and error in record.error, record.error
    row = LedgerEntry.objects.get(identity=identity("bad_sender"))
    assert row.error == record.error
    # Not sent, not flagged; the other two went out once.
    delivered = sorted(source_of(m) for m in smtp.messages)
    assert delivered == ["<q1@example.org>", "<q2@example.org>"]
    flags = {m.identity: m.flags for m in source_messages(mailbox, "INBOX")}
    assert "\\Seen" not in flags[identity("bad_sender")]
    # A further run sends nothing new (the message waits for a fixed mapping, recorded each time).
    attempts = len(smtp.attempts)
    rerun = run_inline(operation)
    assert rerun.sent_count == 0 and len(smtp.attempts) == attempts
    assert rerun.records.get().error == record.error
