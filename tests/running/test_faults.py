"""Exactly-once delivery under faults: SMTP errors and drops, a dying IMAP server, a recreated folder.

Every scenario ends with ``assert_exactly_once``, which checks the three invariants of SPEC §6
against what the servers themselves hold (aiosmtpd's accepted mail, Dovecot's flags), not what
the engine believes:

(a) each source message was delivered exactly once, or is recorded failed/skipped with a reason;
(b) no message is flagged \\Seen without a delivery (and every delivered one is acknowledged);
(c) a further run sends nothing new.

The outgoing messages carry their source's identity in ``X-Mailwright-Source`` (its Message-ID,
or ``uid:N`` without one) through the mapping, so a copy is traced to its origin even when its
subject is garbage or its UID changed.
"""

from __future__ import annotations

import threading
from collections import Counter
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest

from connectors.email.message.parse import parse_message
from designer.models import LedgerEntry, Operation, Run, RunRecord
from designer.running import engine, ledger, pipeline
from tests.helpers import import_project, message, project_file
from tests.servers.dovecot import Dovecot, Mailbox
from tests.servers.smtp import FaultReply, ReceivedMessage, SMTPServer

Predicate = Callable[[ReceivedMessage], FaultReply | None]  # what SMTPServer.fail_when takes

SOURCE_HEADER = "X-Mailwright-Source"
# The suite's forward, plus the source's identity in a header of the copy.
MAPPING = {
    "to": "helpdesk@example.com",
    "subject": "Fwd: {{ subject }}",
    "text": "{{ text }}",
    "attachments": "{{ attachments }}",
    "headers": "{{ [['" + SOURCE_HEADER + "', message_id or ('uid:' ~ uid)]] }}",
}


# Building and running ---------------------------------------------------------------------------


def document(dovecot: Dovecot, smtp: SMTPServer, *, folder: str = "INBOX", max_messages: int = 500,
             max_message_mb: int = 25, max_connections: int = 1, **operation: Any) -> dict[str, Any]:
    """The suite's project file with the tracing mapping and room for every seeded message.

    One SMTP connection unless asked: faults armed for the n-th attempt need attempts in reading order."""
    operation.setdefault("mapping", MAPPING)
    doc = project_file(dovecot, smtp, **operation)
    doc["activities"][0].update(folder=folder, max_messages=max_messages, max_message_mb=max_message_mb)
    doc["activities"][1]["max_connections"] = max_connections
    return doc


def setup_operation(tmp_path: Path, monkeypatch: pytest.MonkeyPatch, dovecot: Dovecot, smtp: SMTPServer,
                    **options: Any) -> Operation:
    return import_project(tmp_path, monkeypatch, document(dovecot, smtp, **options))


def run_inline(operation: Operation) -> Run:
    """One run in this process, as ``run_operation --inline`` does it; an exception fails the test."""
    run = Run.objects.create(operation=operation, trigger=Run.Trigger.COMMAND)
    return engine.execute(run.pk)


def seed(mailbox: Mailbox, messages: Iterable[bytes], folder: str = "INBOX",
         flags: Sequence[str] = ()) -> None:
    """APPEND over one connection: a login per message would dominate the suite's time."""
    with mailbox.client() as imap:
        if not imap.folder_exists(folder):
            imap.create_folder(folder)
        for raw in messages:
            imap.append(folder, raw, flags=tuple(flags))


def questions(numbers: Iterable[int]) -> list[bytes]:
    return [message(n) for n in numbers]


def ids(numbers: Iterable[int]) -> set[str]:
    """The source identities of ``questions(numbers)``."""
    return {f"<q{n}@example.org>" for n in numbers}


def source_of(received: ReceivedMessage) -> str:
    return str(received.message[SOURCE_HEADER] or "")


def after_nth_message(n: int, action: Callable[[], object]) -> Predicate:
    """A fail_when predicate that calls ``action()`` when the server receives its n-th message.

    The predicate runs on the SMTP server's thread before it replies, so the side effect lands
    between the engine's DATA and its reply: the worst moment for the source to go away.
    """
    seen = 0
    lock = threading.Lock()

    def predicate(_received: ReceivedMessage) -> FaultReply | None:
        nonlocal seen
        with lock:
            seen += 1
            fire = seen == n
        if fire:
            action()
        return None

    return predicate


def nth_attempts(numbers: set[int], reply: FaultReply) -> Predicate:
    """A fail_when predicate refusing the server's n-th message attempts (counted from 1) with ``reply``."""
    count = 0
    lock = threading.Lock()

    def predicate(_received: ReceivedMessage) -> FaultReply | None:
        nonlocal count
        with lock:
            count += 1
            return reply if count in numbers else None

    return predicate


# The invariants ---------------------------------------------------------------------------------


@dataclass(frozen=True)
class SourceMessage:
    folder: str
    uidvalidity: int
    uid: int
    identity: str
    flags: frozenset[str]


def source_messages(mailbox: Mailbox, folder: str) -> list[SourceMessage]:
    """What is in the folder now, with the identity the mapping puts into ``X-Mailwright-Source``."""
    with mailbox.client() as imap:
        uidvalidity = int(imap.select_folder(folder, readonly=True)[b"UIDVALIDITY"])
        uids = imap.search("ALL")
        found = imap.fetch(uids, ["FLAGS", "BODY.PEEK[HEADER]"]) if uids else {}
    messages = []
    for uid, data in sorted(found.items()):
        header = data.get(b"BODY[HEADER]") or b""
        record = parse_message(header, uid=uid, uidvalidity=uidvalidity, folder=folder, flags=())
        flags = frozenset(f.decode() if isinstance(f, bytes) else str(f) for f in data[b"FLAGS"]) - {"\\Recent"}
        identity = record["message_id"] or f"uid:{uid}"
        messages.append(SourceMessage(folder, uidvalidity, int(uid), identity, flags))
    return messages


def assert_exactly_once(operation: Operation, mailbox: Mailbox, smtp: SMTPServer, *,
                        expected: set[str] | None = None, pre_seen: frozenset[str] = frozenset(),
                        folder: str = "INBOX", acknowledged_flag: str | None = "\\Seen") -> dict[str, str]:
    """Check invariants (c), (a) and (b) (see the module docstring); return each identity's outcome.

    ``expected``: the identities that must be in the folder (so a message that vanished fails);
    ``pre_seen``: identities seeded already \\Seen, which no run may touch;
    ``acknowledged_flag``: what the after-read action leaves on a delivered message (None: "leave").
    The outcome is "delivered", or the ledger state ("failed", "skipped") of an undelivered one.
    """
    # (c) A further run, with every fault cleared, sends nothing new.
    smtp.clear_faults()
    attempts_before = len(smtp.attempts)
    rerun = run_inline(operation)
    assert rerun.status == Run.Status.SUCCEEDED, rerun.message
    assert rerun.sent_count == 0, f"a further run sent {rerun.sent_count} message(s): {rerun.message}"
    assert len(smtp.attempts) == attempts_before, "a further run talked DATA to the target"

    received = Counter(source_of(m) for m in smtp.messages)
    messages = source_messages(mailbox, folder)
    identities = [m.identity for m in messages]
    assert len(identities) == len(set(identities)), f"the test seeded duplicate identities: {identities}"
    if expected is not None:
        assert set(identities) == expected | pre_seen, "a source message vanished or appeared"
    unknown = set(received) - set(identities)
    assert not unknown, f"delivered copies of messages that are not in the source: {sorted(unknown)}"

    outcome: dict[str, str] = {}
    connection_id = operation.source.connection_id
    for m in messages:
        row = LedgerEntry.objects.filter(operation=operation, connection_id=connection_id, scope=m.folder,
                                         epoch=m.uidvalidity, position=m.uid).first()
        copies = received[m.identity]
        if m.identity in pre_seen:
            assert copies == 0 and row is None, f"{m.identity} was seeded read and must be left alone"
            continue
        # (a) Exactly once, or a recorded reason.
        assert copies <= 1, f"{m.identity} was delivered {copies} times"
        if copies == 1:
            if row is None:
                # Read before its folder was renumbered: the ledger knows it under the old UIDVALIDITY.
                row = LedgerEntry.objects.filter(operation=operation, connection_id=connection_id, scope=m.folder,
                                                 identity=m.identity).exclude(epoch=m.uidvalidity).first()
            assert row is not None and row.state == LedgerEntry.State.ACKNOWLEDGED, (m.identity, row and row.state)
            # (b, converse) Delivered means acknowledged: nothing left for a human to find unread.
            if acknowledged_flag:
                assert acknowledged_flag in m.flags, f"{m.identity} was delivered but not marked"
            outcome[m.identity] = "delivered"
            continue
        assert row is not None, f"{m.identity} was neither delivered nor recorded"
        assert row.state in (LedgerEntry.State.FAILED, LedgerEntry.State.SKIPPED), (m.identity, row.state, row.error)
        assert row.error.strip(), f"{m.identity} is {row.state} without a reason"
        assert RunRecord.objects.filter(ledger=row, status=row.state).exclude(error="").exists()
        # (b) Nothing flagged without a delivery (on_skip is "leave" in this suite).
        assert "\\Seen" not in m.flags and "\\Deleted" not in m.flags, f"{m.identity} flagged without delivery"
        outcome[m.identity] = row.state
    return outcome


# Scenarios --------------------------------------------------------------------------------------


def test_it_forwards_200_messages_in_one_run_exactly_once(transactional_db, dovecot, mailbox, smtp, tmp_path,
                                                            monkeypatch):
    operation = setup_operation(tmp_path, monkeypatch, dovecot, smtp)
    seed(mailbox, questions(range(200)))
    seed(mailbox, [message(999)], flags=["\\Seen"])

    run = run_inline(operation)

    assert run.status == Run.Status.SUCCEEDED, run.message
    assert (run.read_count, run.sent_count, run.failed_count) == (200, 200, 0)
    assert sorted(m.subject for m in smtp.messages) == sorted(f"Fwd: Question {n}" for n in range(200))
    assert {source_of(m) for m in smtp.messages} == ids(range(200))
    outcome = assert_exactly_once(operation, mailbox, smtp, expected=ids(range(200)), pre_seen=frozenset(ids([999])))
    assert set(outcome.values()) == {"delivered"}


@pytest.mark.parametrize("code", [451, 421])
def test_it_retries_a_4xx_within_the_run_and_delivers_exactly_once(code, transactional_db, dovecot, mailbox, smtp,
                                                                    tmp_path, monkeypatch):
    # 421 also closes the session: the next attempt has to connect again.
    operation = setup_operation(tmp_path, monkeypatch, dovecot, smtp, retries=2)
    seed(mailbox, questions(range(6)))
    smtp.fail_when(nth_attempts({3, 4}, (code, "4.3.0 try again later")))

    run = run_inline(operation)

    assert run.status == Run.Status.SUCCEEDED, run.message
    assert (run.sent_count, run.failed_count) == (6, 0)
    assert [a.outcome for a in smtp.attempts].count("rejected") == 2
    assert run.logs.filter(level="warning", text__contains=f"{code} 4.3.0 try again later").count() == 2
    assert set(assert_exactly_once(operation, mailbox, smtp, expected=ids(range(6))).values()) == {"delivered"}


def test_it_leaves_a_4xx_burst_for_the_next_run_then_delivers_exactly_once(transactional_db, dovecot, mailbox, smtp,
                                                                            tmp_path, monkeypatch):
    operation = setup_operation(tmp_path, monkeypatch, dovecot, smtp, retries=1)
    seed(mailbox, questions(range(30)))
    # Messages 10, 11 and 12 fail both their attempts: three transient failures in a row end the run.
    smtp.fail_when(nth_attempts(set(range(11, 17)), (451, "4.7.1 greylisted, come back later")))

    first = run_inline(operation)

    assert first.status == Run.Status.PARTIAL, first.message
    assert (first.read_count, first.sent_count, first.failed_count) == (13, 10, 3)
    retry = first.records.filter(status=RunRecord.Status.RETRY)
    assert retry.count() == 3 and all("451 4.7.1 greylisted" in r.error for r in retry)
    seen = {m.identity for m in source_messages(mailbox, "INBOX") if "\\Seen" in m.flags}
    assert seen == ids(range(10)), "nothing flagged without delivery"
    assert first.logs.filter(text__contains="the remaining messages are left for the next run").exists()

    smtp.clear_faults()
    second = run_inline(operation)

    assert second.status == Run.Status.SUCCEEDED, second.message
    assert (second.read_count, second.sent_count) == (20, 20)
    assert set(assert_exactly_once(operation, mailbox, smtp, expected=ids(range(30))).values()) == {"delivered"}


def test_it_records_a_5xx_as_failed_with_the_reply_and_never_resends_it(transactional_db, dovecot, mailbox, smtp,
                                                                         tmp_path, monkeypatch):
    operation = setup_operation(tmp_path, monkeypatch, dovecot, smtp, retries=2)
    seed(mailbox, questions(range(8)))
    smtp.fail_when(lambda m: (554, "5.7.1 rejected by policy") if m.subject == "Fwd: Question 3" else None)

    run = run_inline(operation)

    assert run.status == Run.Status.PARTIAL, run.message
    assert (run.sent_count, run.failed_count) == (7, 1)
    assert len([a for a in smtp.attempts if a.outcome == "rejected"]) == 1  # permanent: no retry
    record = run.records.get(status=RunRecord.Status.FAILED)
    assert record.identity == "<q3@example.org>"
    assert "554 5.7.1 rejected by policy" in record.error
    outcome = assert_exactly_once(operation, mailbox, smtp, expected=ids(range(8)))
    assert outcome.pop("<q3@example.org>") == "failed"
    assert set(outcome.values()) == {"delivered"}
    # Not even a later run without the fault sends it: only a replay would.
    run_inline(operation)
    assert "<q3@example.org>" not in {source_of(m) for m in smtp.messages}


def test_a_message_in_doubt_is_never_resent_in_the_same_run_and_later_keeps_its_message_id(
        transactional_db, dovecot, mailbox, smtp, tmp_path, monkeypatch):
    # The rig drops the connection after the final dot: the outcome is unknown (a real server may have
    # stored the message), so retrying at once would risk a duplicate nobody sees.
    operation = setup_operation(tmp_path, monkeypatch, dovecot, smtp, retries=2)
    seed(mailbox, questions(range(5)))
    smtp.drop_next(1)

    first = run_inline(operation)

    assert first.status == Run.Status.PARTIAL, first.message
    assert "1 in doubt" in first.message
    [dropped] = [a for a in smtp.attempts if a.outcome == "dropped"]
    assert len(smtp.messages) == 4  # not sent again within the run, retries or not
    assert len(set(smtp.ehlo_names)) == 1 and len(smtp.ehlo_names) == 2  # went on through a new connection

    second = run_inline(operation)

    assert second.status == Run.Status.SUCCEEDED, second.message
    assert "1 in doubt resent with the same Message-ID" in second.message
    [again] = [m for m in smtp.messages if source_of(m) == source_of(dropped.message)]
    assert again.message["Message-ID"] == dropped.message.message["Message-ID"]
    assert set(assert_exactly_once(operation, mailbox, smtp, expected=ids(range(5))).values()) == {"delivered"}


def test_it_delivers_a_dropped_message_on_the_next_run_when_retries_are_off(transactional_db, dovecot, mailbox, smtp,
                                                                           tmp_path, monkeypatch):
    operation = setup_operation(tmp_path, monkeypatch, dovecot, smtp, retries=0)
    seed(mailbox, questions(range(5)))
    smtp.drop_next(1)

    first = run_inline(operation)

    assert first.status == Run.Status.PARTIAL, first.message
    assert (first.sent_count, first.failed_count) == (4, 0)  # the run went on through a new connection
    assert "1 in doubt" in first.message
    [dropped] = [a for a in smtp.attempts if a.outcome == "dropped"]
    unread = [m.identity for m in source_messages(mailbox, "INBOX") if "\\Seen" not in m.flags]
    assert unread == [source_of(dropped.message)]

    second = run_inline(operation)

    assert (second.status, second.sent_count) == (Run.Status.SUCCEEDED, 1), second.message
    assert set(assert_exactly_once(operation, mailbox, smtp, expected=ids(range(5))).values()) == {"delivered"}


def test_it_resends_an_ambiguous_drop_under_the_same_message_id_on_the_next_run(transactional_db, dovecot, mailbox,
                                                                              smtp, tmp_path, monkeypatch):
    # A connection lost at the end of DATA leaves the outcome unknown: a real server may have
    # queued the message. The next run's copy must carry the same Message-ID so it can be dropped.
    operation = setup_operation(tmp_path, monkeypatch, dovecot, smtp, retries=0)
    seed(mailbox, questions(range(1)))
    smtp.drop_next(1)
    run_inline(operation)
    [dropped] = smtp.attempts

    run_inline(operation)

    [delivered] = smtp.messages
    assert delivered.message["Message-ID"] == dropped.message.message["Message-ID"]
    assert set(assert_exactly_once(operation, mailbox, smtp, expected=ids(range(1))).values()) == {"delivered"}


def test_it_stops_cleanly_when_the_target_goes_away_and_delivers_the_rest_later(transactional_db, dovecot, mailbox,
                                                                                 smtp, tmp_path, monkeypatch):
    operation = setup_operation(tmp_path, monkeypatch, dovecot, smtp, retries=0)
    seed(mailbox, questions(range(10)))
    # The 4th message is refused while another thread shuts the server down (stopping it from
    # its own thread would wait on itself); the messages after it find nobody listening.
    stopper = threading.Thread(target=smtp.stop)
    refuse_4th = nth_attempts({4}, (421, "4.3.2 shutting down"))

    def predicate(received: ReceivedMessage) -> FaultReply | None:
        reply = refuse_4th(received)
        if reply is not None:
            stopper.start()
        return reply

    smtp.fail_when(predicate)

    first = run_inline(operation)
    stopper.join(10)

    assert first.status == Run.Status.PARTIAL, first.message
    assert first.sent_count == 3, first.message
    assert "the target is unavailable" in first.message
    smtp.clear_faults()
    smtp.start()  # same port, like a restarted relay
    second = run_inline(operation)

    assert (second.status, second.sent_count) == (Run.Status.SUCCEEDED, 7), second.message
    assert set(assert_exactly_once(operation, mailbox, smtp, expected=ids(range(10))).values()) == {"delivered"}


def test_it_survives_dovecot_dying_mid_run_and_acknowledges_without_resending(transactional_db, dovecot, mailbox,
                                                                                smtp, tmp_path, monkeypatch):
    operation = setup_operation(tmp_path, monkeypatch, dovecot, smtp)
    seed(mailbox, questions(range(12)))
    # Dovecot dies (SIGKILL, like a crash) while the server holds the 5th message: it gets its
    # 250, and acknowledging it finds no IMAP server.
    smtp.fail_when(after_nth_message(5, lambda: dovecot.stop(kill=True)))
    try:
        first = run_inline(operation)
    finally:
        dovecot.start()  # from this thread: the rig ties Dovecot's life to the thread that starts it

    # The twelve were fetched in one batch before the crash, so all went out; their acknowledgement,
    # batched, found no IMAP server.
    assert first.status == Run.Status.PARTIAL, first.message
    assert "delivered but not yet marked in the source" in first.message
    sent = {source_of(m) for m in smtp.messages}
    assert ids(range(5)) <= sent
    seen = {m.identity for m in source_messages(mailbox, "INBOX") if "\\Seen" in m.flags}
    assert seen < sent, "only what was acknowledged before the crash is marked read"
    waiting = LedgerEntry.objects.filter(state=LedgerEntry.State.SENT)
    assert {row.identity for row in waiting} == sent - seen  # the ledger knows which ones were sent

    smtp.clear_faults()
    second = run_inline(operation)

    assert second.status == Run.Status.SUCCEEDED, second.message
    assert second.sent_count == 12 - len(sent)
    assert second.records.filter(status=RunRecord.Status.ACKNOWLEDGED).count() == len(sent - seen)
    assert set(assert_exactly_once(operation, mailbox, smtp, expected=ids(range(12))).values()) == {"delivered"}


def test_it_reconnects_to_a_restarted_dovecot_within_the_run(transactional_db, dovecot, mailbox, smtp, tmp_path,
                                                            monkeypatch):
    operation = setup_operation(tmp_path, monkeypatch, dovecot, smtp)
    seed(mailbox, questions(range(8)))

    def crash_and_restart() -> None:
        dovecot.stop(kill=True)
        dovecot.start()

    smtp.fail_when(after_nth_message(3, crash_and_restart))
    try:
        run = run_inline(operation)
    finally:
        # Started from the SMTP server's thread, Dovecot would die with it: restart it from here.
        dovecot.stop()
        dovecot.start()

    assert run.status == Run.Status.SUCCEEDED, run.message
    assert run.sent_count == 8
    assert set(assert_exactly_once(operation, mailbox, smtp, expected=ids(range(8))).values()) == {"delivered"}


def test_it_does_not_resend_after_the_folder_was_recreated_but_sends_the_new_ones(transactional_db, dovecot, mailbox,
                                                                                   smtp, tmp_path, monkeypatch):
    # Dovecot (like RFC 3501) refuses to delete INBOX, so the source reads a folder of its own.
    operation = setup_operation(tmp_path, monkeypatch, dovecot, smtp, folder="Support")
    seed(mailbox, questions(range(5)), folder="Support")
    first = run_inline(operation)
    assert first.sent_count == 5, first.message
    old_epoch = mailbox.uidvalidity("Support")

    assert mailbox.recreate_folder("Support") != old_epoch
    seed(mailbox, questions(range(8)), folder="Support")  # the same five, unread again, and three new

    second = run_inline(operation)

    assert second.status == Run.Status.SUCCEEDED, second.message
    assert second.sent_count == 3, second.message
    assert {source_of(m) for m in smtp.messages[5:]} == ids(range(5, 8))
    acknowledged = second.records.filter(status=RunRecord.Status.ACKNOWLEDGED)
    assert {r.identity for r in acknowledged} == ids(range(5))
    assert second.logs.filter(text__contains=f"already delivered under UIDVALIDITY {old_epoch}").count() == 5
    outcome = assert_exactly_once(operation, mailbox, smtp, expected=ids(range(8)), folder="Support")
    assert set(outcome.values()) == {"delivered"}


def test_a_message_refused_for_good_is_not_sent_again_after_the_folder_was_recreated(
        transactional_db, dovecot, mailbox, smtp, tmp_path, monkeypatch):
    operation = setup_operation(tmp_path, monkeypatch, dovecot, smtp, folder="Support")
    seed(mailbox, questions(range(1)), folder="Support")
    smtp.fail_next(1, code=554, text="5.7.1 Message rejected")
    first = run_inline(operation)
    assert first.failed_count == 1 and not smtp.messages, first.message
    old_epoch = mailbox.uidvalidity("Support")

    assert mailbox.recreate_folder("Support") != old_epoch
    seed(mailbox, questions(range(2)), folder="Support")  # the refused one again, and a new one

    second = run_inline(operation)

    assert [source_of(m) for m in smtp.messages] == [*ids(range(1, 2))], second.message
    refused = second.records.get(status=RunRecord.Status.FAILED)
    assert refused.identity in ids(range(1)) and f"under UIDVALIDITY {old_epoch}: " in refused.error


def test_it_delivers_exactly_once_when_the_folder_is_recreated_mid_run(transactional_db, dovecot, mailbox, smtp,
                                                                      tmp_path, monkeypatch):
    operation = setup_operation(tmp_path, monkeypatch, dovecot, smtp, folder="Support")
    seed(mailbox, questions(range(10)), folder="Support")

    def recreate() -> None:
        mailbox.recreate_folder("Support")
        seed(mailbox, questions(range(12)), folder="Support")

    # While the server holds the 3rd message the folder is rebuilt: its UIDs now name other mail.
    smtp.fail_when(after_nth_message(3, recreate))

    first = run_inline(operation)

    assert first.status == Run.Status.PARTIAL, first.message
    assert "UIDVALIDITY changed" in "\n".join(first.logs.values_list("text", flat=True))
    assert all("\\Seen" not in m.flags for m in source_messages(mailbox, "Support")), "acknowledged a renumbered UID"
    smtp.clear_faults()
    second = run_inline(operation)

    assert second.status == Run.Status.SUCCEEDED, second.message
    outcome = assert_exactly_once(operation, mailbox, smtp, expected=ids(range(12)), folder="Support")
    assert set(outcome.values()) == {"delivered"}


def rebuild_index(dovecot: Dovecot, user: str = "alice") -> None:
    """What a server migration or a lost index does to a Maildir INBOX: same mail, new UIDs and UIDVALIDITY.

    Dovecot will not delete INBOX, but it renumbers it when its uid list is gone; the flags live
    in the Maildir file names and survive, as they would on a real server.
    """
    maildir = dovecot.mail_root / user / "Maildir"
    for path in [maildir / "dovecot-uidlist", *maildir.glob("dovecot.index*")]:
        path.unlink(missing_ok=True)


def test_it_acknowledges_by_message_id_after_inbox_was_renumbered_during_an_outage(transactional_db, dovecot,
                                                                                   mailbox, smtp, tmp_path,
                                                                                   monkeypatch):
    operation = setup_operation(tmp_path, monkeypatch, dovecot, smtp)
    seed(mailbox, questions(range(10)))
    old_epoch = mailbox.uidvalidity()
    smtp.fail_when(after_nth_message(4, lambda: dovecot.stop(kill=True)))
    try:
        first = run_inline(operation)
        rebuild_index(dovecot)
    finally:
        dovecot.start()
    assert mailbox.uidvalidity() != old_epoch
    sent_unacknowledged = {row.identity for row in LedgerEntry.objects.filter(state=LedgerEntry.State.SENT)}
    assert first.status == Run.Status.PARTIAL and sent_unacknowledged, first.message

    smtp.clear_faults()
    second = run_inline(operation)

    assert second.status == Run.Status.SUCCEEDED, second.message
    assert {r.identity for r in second.records.filter(status=RunRecord.Status.ACKNOWLEDGED)} == sent_unacknowledged
    assert set(assert_exactly_once(operation, mailbox, smtp, expected=ids(range(10))).values()) == {"delivered"}


def test_it_resends_under_the_same_message_id_when_killed_between_the_reply_and_the_ledger(
        transactional_db, dovecot, mailbox, smtp, tmp_path, monkeypatch):
    """The one window the engine's docstring admits: the target said 250, the "sent" commit never happened.

    The copy sent again must carry the same Message-ID so that receivers can drop it.
    """
    operation = setup_operation(tmp_path, monkeypatch, dovecot, smtp)
    seed(mailbox, questions(range(3)))
    original = ledger.Ledger.unsaved_record

    def crash_on_sent(self: Any, key: Any, row: Any, summary: Any, status: str, *args: Any, **kwargs: Any) -> Any:
        if status == RunRecord.Status.SENT and key.identity == "<q1@example.org>":
            raise SystemExit("worker killed")  # before the "sent" group commits: nothing of it is written
        return original(self, key, row, summary, status, *args, **kwargs)

    monkeypatch.setattr(ledger.Ledger, "unsaved_record", crash_on_sent)
    with pytest.raises(SystemExit):
        run_inline(operation)
    monkeypatch.setattr(ledger.Ledger, "unsaved_record", original)
    assert LedgerEntry.objects.get(identity="<q1@example.org>").state == LedgerEntry.State.SENDING

    second = run_inline(operation)

    assert second.status == Run.Status.SUCCEEDED, second.message
    copies = [m for m in smtp.messages if source_of(m) == "<q1@example.org>"]
    assert len(copies) == 2
    assert copies[0].message["Message-ID"] == copies[1].message["Message-ID"]
    # The others of q1's group (whose "sent" rows were to commit with it) are in the same window:
    # sent again, if at all, under the Message-ID of their first copy.
    copies_of = Counter(source_of(m) for m in smtp.messages)
    assert set(copies_of) == {"<q0@example.org>", "<q1@example.org>", "<q2@example.org>"}
    assert max(copies_of.values()) == 2
    assert len({(source_of(m), m.message["Message-ID"]) for m in smtp.messages}) == 3
    assert all("\\Seen" in m.flags for m in source_messages(mailbox, "INBOX"))
    attempts = len(smtp.attempts)
    assert run_inline(operation).sent_count == 0 and len(smtp.attempts) == attempts


def test_it_names_the_messages_it_only_acknowledges_in_the_run_history(transactional_db, dovecot, mailbox, smtp,
                                                                      tmp_path, monkeypatch):
    operation = setup_operation(tmp_path, monkeypatch, dovecot, smtp)
    seed(mailbox, questions(range(3)))
    # All three are sent (their bodies were read before), none can be marked read.
    smtp.fail_when(after_nth_message(1, lambda: dovecot.stop(kill=True)))
    try:
        run_inline(operation)
    finally:
        dovecot.start()
    smtp.clear_faults()

    second = run_inline(operation)

    records = second.records.filter(status=RunRecord.Status.ACKNOWLEDGED)
    assert {(r.identity, r.subject, r.sender) for r in records} == {
        (f"<q{n}@example.org>", f"Question {n}", f"Customer {n} <customer{n}@example.org>") for n in range(3)}


def test_it_fails_the_run_cleanly_when_dovecot_dies_between_fetch_batches(transactional_db, dovecot, mailbox, smtp,
                                                                          tmp_path, monkeypatch):
    # With "leave" nothing is stored back, so the death surfaces when the next batch is read
    # (the source reads sizes 50 messages at a time here) rather than in an acknowledgement.
    monkeypatch.setattr("connectors.email.source.PROBE_BATCH", 50)
    document_ = document(dovecot, smtp)
    document_["activities"][0]["after_read"] = "leave"
    operation = import_project(tmp_path, monkeypatch, document_)
    seed(mailbox, questions(range(60)))
    original_make_room = pipeline.Pipeline._make_room
    batches = []

    def make_room_then_die(self: Any, size: int) -> None:
        original_make_room(self, size)
        batches.append(size)
        if len(batches) == 2:  # the first batch is read, its sizes too: Dovecot dies before the second's bodies
            dovecot.stop(kill=True)

    monkeypatch.setattr(pipeline.Pipeline, "_make_room", make_room_then_die)
    try:
        first = run_inline(operation)
    finally:
        dovecot.start()
    monkeypatch.setattr(pipeline.Pipeline, "_make_room", original_make_room)

    # Partial, not failed: 50 messages went out before the source failed.
    assert first.status == Run.Status.PARTIAL, first.message
    assert first.sent_count == 50, first.message  # the first batch, read before the crash
    assert "connection refused" in first.message and "50 sent" in first.message

    second = run_inline(operation)

    assert (second.status, second.sent_count) == (Run.Status.SUCCEEDED, 10), second.message
    outcome = assert_exactly_once(operation, mailbox, smtp, expected=ids(range(60)), acknowledged_flag=None)
    assert set(outcome.values()) == {"delivered"}


def anonymous_alert(n: int, body: bytes = b"df says so") -> bytes:
    """A monitoring mail without a Message-ID, as cron jobs and appliances send them."""
    return (b"From: robot@example.org\r\nSubject: Disk %d full\r\nDate: Mon, 04 Mar 2024 12:00:00 +0000\r\n\r\n"
            % n) + body + b"\r\n"


def test_it_does_not_resend_messages_without_a_message_id_after_the_folder_was_recreated(
        transactional_db, dovecot, mailbox, smtp, tmp_path, monkeypatch):
    operation = setup_operation(tmp_path, monkeypatch, dovecot, smtp, folder="Support")
    anonymous = [anonymous_alert(n) for n in range(2)]
    seed(mailbox, anonymous, folder="Support")
    assert run_inline(operation).sent_count == 2
    mailbox.recreate_folder("Support")
    seed(mailbox, anonymous, folder="Support")

    again = run_inline(operation)

    assert again.sent_count == 0, "the same two messages were delivered twice"
    assert again.records.filter(status=RunRecord.Status.ACKNOWLEDGED).count() == 2
    assert all("\\Seen" in m.flags for m in source_messages(mailbox, "Support"))


def test_it_tells_apart_messages_without_a_message_id_that_differ_only_in_their_body(
        transactional_db, dovecot, mailbox, smtp, tmp_path, monkeypatch):
    operation = setup_operation(tmp_path, monkeypatch, dovecot, smtp, folder="Support")
    first, second = anonymous_alert(1, b"sda1 at 99%"), anonymous_alert(1, b"sdb1 at 98%")
    seed(mailbox, [first], folder="Support")
    assert run_inline(operation).sent_count == 1
    mailbox.recreate_folder("Support")
    seed(mailbox, [first, second], folder="Support")  # the second arrived meanwhile

    again = run_inline(operation)

    assert again.sent_count == 1, "the second alert was marked read without being delivered"


def test_it_delivers_to_each_operation_that_reads_the_same_folder(transactional_db, dovecot, mailbox, smtp,
                                                                   tmp_path, monkeypatch):
    document_ = document(dovecot, smtp)
    document_["activities"][0]["after_read"] = "leave"
    archive = {**document_["operations"][0], "name": "Copy to archive",
               "mapping": {**MAPPING, "to": "archive@example.com"}}
    document_["operations"].append(archive)
    helpdesk = import_project(tmp_path, monkeypatch, document_)
    seed(mailbox, questions(range(3)))
    assert run_inline(helpdesk).sent_count == 3

    copy = run_inline(Operation.objects.get(name="Copy to archive"))

    assert copy.sent_count == 3, f"{copy.message}; records: {copy.records.count()}"
    assert Counter(m.rcpt_tos for m in smtp.messages) == {("helpdesk@example.com",): 3, ("archive@example.com",): 3}
    # And each of them only once.
    assert run_inline(helpdesk).sent_count == 0
    assert run_inline(Operation.objects.get(name="Copy to archive")).sent_count == 0


def test_a_server_slower_than_the_read_timeout_at_the_final_dot_gets_each_message_once(
        transactional_db, dovecot, mailbox, smtp, tmp_path, monkeypatch, settings):
    """RFC 5321 gives the reply to the end of the data 10 minutes; a 1 s read timeout must not cut it."""
    settings.MAILWRIGHT_SMTP_DATA_REPLY_TIMEOUT = 10
    operation = setup_operation(tmp_path, monkeypatch, dovecot, smtp)
    connection = operation.target.connection
    connection.config = {**connection.config, "timeouts": {"connect": 3, "read": 1}}
    connection.save()
    seed(mailbox, questions(range(3)))
    smtp.delay_replies(1.5)  # each message stored at once, its 250 only later

    run = run_inline(operation)

    assert run.status == Run.Status.SUCCEEDED, run.message
    assert run.sent_count == 3
    assert set(assert_exactly_once(operation, mailbox, smtp, expected=ids(range(3))).values()) == {"delivered"}


def test_it_delivers_over_parallel_connections_each_message_exactly_once(transactional_db, dovecot, mailbox, smtp,
                                                                          tmp_path, monkeypatch):
    operation = setup_operation(tmp_path, monkeypatch, dovecot, smtp, max_connections=4)
    seed(mailbox, questions(range(24)))
    smtp.delay_replies(0.3)  # each message holds its connection a while: the pool must use the others

    run = run_inline(operation)

    assert run.status == Run.Status.SUCCEEDED, run.message
    assert run.sent_count == 24
    assert smtp.most_replying_at_once == 4  # four sessions answered at the same time, never more
    assert set(assert_exactly_once(operation, mailbox, smtp, expected=ids(range(24))).values()) == {"delivered"}


def test_a_refusal_among_parallel_connections_is_retried_and_loses_nothing(transactional_db, dovecot, mailbox,
                                                                             smtp, tmp_path, monkeypatch):
    operation = setup_operation(tmp_path, monkeypatch, dovecot, smtp, max_connections=3, retries=1)
    seed(mailbox, questions(range(12)))
    smtp.delay_replies(0.1)
    refused_once: set[str] = set()

    def first_attempts_of_two(received: ReceivedMessage) -> FaultReply | None:
        if received.subject in ("Fwd: Question 2", "Fwd: Question 5") and received.subject not in refused_once:
            refused_once.add(received.subject)
            return (451, "4.3.0 try again later")
        return None

    smtp.fail_when(first_attempts_of_two)

    run = run_inline(operation)

    assert run.status == Run.Status.SUCCEEDED, run.message
    assert (run.sent_count, run.failed_count) == (12, 0)
    assert sum(1 for a in smtp.attempts if a.outcome == "rejected") == 2
    assert set(assert_exactly_once(operation, mailbox, smtp, expected=ids(range(12))).values()) == {"delivered"}
