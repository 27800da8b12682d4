"""Read Email against a real Dovecot, Send Email against a real aiosmtpd.

The source tests look at the mailbox through the rig's own IMAP helpers afterwards, so "nothing
was marked" is what a second client sees, not what our code believes.
"""

from __future__ import annotations

import random
import socket
from collections.abc import Iterator
from datetime import date, timedelta
from email.message import EmailMessage
from typing import Any

import pytest

from connectors.base import ConnectorError, SourceKey
from connectors.email.activities import parse_read_settings, parse_send_settings
from connectors.email.config import EmailConfig, parse_email_config
from connectors.email.imap import GuardedIMAPClient
from connectors.email.message.build import InvalidMessage
from connectors.email.source import EmailSource, list_folders
from connectors.email.target import EmailTarget
from tests.servers.certs import TestCerts
from tests.servers.dovecot import Dovecot, Mailbox
from tests.servers.fixtures import IMAP_PASSWORD, IMAP_USER, DovecotFactory, SMTPFactory
from tests.servers.smtp import SMTPServer

SECRETS = {"password": IMAP_PASSWORD}


def imap_config(server: Mailbox | Dovecot) -> EmailConfig:
    return parse_email_config(
        {
            "imap": {"host": "localhost", "port": server.tls_port, "security": "ssl"},
            "auth": {"method": "password", "username": IMAP_USER},
            "ca_pem": server.ca_pem,
            "timeouts": {"connect": 3, "read": 5},
        }
    )


def smtp_config(server: SMTPServer, ca_pem: str = "", auth: bool = False) -> EmailConfig:
    return parse_email_config(
        {
            "smtp": {"host": server.host, "port": server.port, "security": server.mode.replace("plain", "none")},
            "auth": {"method": "password", "username": IMAP_USER} if auth else {"method": "none"},
            "ca_pem": ca_pem,
            "timeouts": {"connect": 3, "read": 5},
        }
    )


def message(
    subject: str = "Hello",
    sender: str = "bob@example.com",
    to: str = "alice@example.com",
    body: str = "Hi Alice.",
    attachment: bytes | None = None,
) -> bytes:
    msg = EmailMessage()
    msg["From"], msg["To"], msg["Subject"] = sender, to, subject
    msg["Message-ID"] = f"<{abs(hash((subject, sender, to)))}@example.com>"
    msg.set_content(body)
    if attachment is not None:
        msg.add_attachment(attachment, maintype="application", subtype="pdf", filename="invoice.pdf")
    return msg.as_bytes()


def source(server: Mailbox | Dovecot, **settings: Any) -> EmailSource:
    return EmailSource(imap_config(server), SECRETS, parse_read_settings(settings))


def positions(keys: list[SourceKey]) -> list[int]:
    return [key.position for key in keys]


@pytest.fixture
def fetches(monkeypatch: pytest.MonkeyPatch) -> list[tuple[list[int], list[str]]]:
    """Every FETCH our client sends: (UIDs, items)."""
    calls: list[tuple[list[int], list[str]]] = []
    original = GuardedIMAPClient.fetch_later  # every FETCH, read at once or ahead

    def spy(self: GuardedIMAPClient, messages: Any, data: Any, modifiers: Any = None) -> Any:
        calls.append((list(messages), list(data)))
        return original(self, messages, data, modifiers)

    monkeypatch.setattr(GuardedIMAPClient, "fetch_later", spy)
    return calls


@pytest.fixture
def copies(monkeypatch: pytest.MonkeyPatch) -> list[tuple[Any, ...]]:
    """Every UID COPY our client sends (the fallback of a move without MOVE)."""
    calls: list[tuple[Any, ...]] = []
    original = GuardedIMAPClient.copy

    def spy(self: GuardedIMAPClient, *args: Any) -> Any:
        calls.append(args)
        return original(self, *args)

    monkeypatch.setattr(GuardedIMAPClient, "copy", spy)
    return calls


# Reading ---------------------------------------------------------------------------------------


def test_it_offers_unread_messages_oldest_first(mailbox: Mailbox) -> None:
    first = mailbox.append("INBOX", message("one"))
    mailbox.append("INBOX", message("read already"), flags=[b"\\Seen"])
    third = mailbox.append("INBOX", message("three"))
    mailbox.append("INBOX", message("deleted, not expunged"), flags=[b"\\Deleted"])

    with source(mailbox) as inbox:
        keys = inbox.candidates()

    assert keys == [SourceKey("INBOX", mailbox.uidvalidity(), first), SourceKey("INBOX", mailbox.uidvalidity(), third)]


def test_it_honours_the_filters(mailbox: Mailbox) -> None:
    invoice = mailbox.append("INBOX", message("Invoice (urgent) #12", sender="billing@vendor.example"))
    mailbox.append("INBOX", message("Invoice #13", sender="someone@else.example"))
    mailbox.append("INBOX", message("Lunch?", sender="billing@vendor.example"))
    mailbox.append("INBOX", message("Invoice (urgent) #14", sender="billing@vendor.example"), flags=[b"\\Seen"])

    with source(mailbox, filters={"from": "vendor.example", "subject": "(urgent)"}) as inbox:
        assert positions(inbox.candidates()) == [invoice]
    with source(mailbox, filters={"since": (date.today() + timedelta(days=2)).isoformat()}) as inbox:
        assert inbox.candidates() == []


def test_it_applies_a_raw_search_with_non_ascii_text(mailbox: Mailbox) -> None:
    carol = mailbox.append("INBOX", message("Status", sender="carol@example.com"))
    cafe = mailbox.append("INBOX", message("Café menu"))
    mailbox.append("INBOX", message("Other"))

    with source(mailbox, search='OR FROM carol SUBJECT "café"') as inbox:
        assert positions(inbox.candidates()) == [carol, cafe]


def test_it_keeps_only_messages_with_attachments_when_asked(mailbox: Mailbox) -> None:
    mailbox.append("INBOX", message("no attachment"))
    with_file = mailbox.append("INBOX", message("with attachment", attachment=b"%PDF-1.4 ..."))

    with source(mailbox, filters={"has_attachment": True}) as inbox:
        assert positions(inbox.candidates()) == [with_file]


def test_it_fetches_records_without_marking_anything(mailbox: Mailbox, fetches: list) -> None:
    uid = mailbox.append("INBOX", message("Quarterly report", attachment=b"%PDF-1.4 report"), flags=[b"\\Flagged"])

    with source(mailbox) as inbox:
        [item] = list(inbox.fetch(inbox.candidates()))

    assert item.skip_reason == ""
    assert item.record is not None
    assert (item.record["uid"], item.record["folder"], item.record["subject"]) == (uid, "INBOX", "Quarterly report")
    assert item.record["flags"] == ["\\Flagged"]
    assert item.record["attachments"][0]["content"] == b"%PDF-1.4 report"
    assert item.key.identity == item.record["message_id"] != ""
    assert item.summary == {"subject": "Quarterly report", "from": "bob@example.com", "to": "alice@example.com"}
    assert mailbox.flags() == {uid: {"\\Flagged"}}
    assert all(not item.startswith("BODY[") and item != "RFC822" for _uids, items in fetches for item in items)


def test_it_skips_an_oversized_message_without_downloading_it(mailbox: Mailbox, fetches: list) -> None:
    small = mailbox.append("INBOX", message("small"))
    big = mailbox.append("INBOX", message("huge scan", attachment=b"x" * (1536 * 1024)))

    with source(mailbox, max_message_mb=1) as inbox:
        items = list(inbox.fetch(inbox.candidates()))

    assert [item.key.position for item in items] == [small, big]
    assert items[1].record is None
    assert items[1].skip_reason == "message is 2.1 MB, larger than the limit of 1 MB"
    assert items[1].summary["subject"] == "huge scan"
    assert items[1].key.identity.endswith("@example.com>")
    downloaded = [uids for uids, fetched in fetches if any(i.startswith("BODY.PEEK[]") for i in fetched)]
    assert downloaded == [[small]]
    assert mailbox.flags() == {small: set(), big: set()}


def test_it_downloads_bodies_in_batches_of_bounded_size(
    mailbox: Mailbox, fetches: list, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr("connectors.email.source.PROBE_BATCH", 2)
    monkeypatch.setattr("connectors.email.source.BODY_BATCH_BYTES", 1000)
    uids = [mailbox.append("INBOX", message(f"message {n}", body="x" * 400)) for n in range(5)]

    with source(mailbox) as inbox:
        items = list(inbox.fetch(inbox.candidates()))

    assert [item.record["subject"] for item in items if item.record] == [f"message {n}" for n in range(5)]
    probes = [batch for batch, fetched in fetches if "RFC822.SIZE" in fetched]
    bodies = [batch for batch, fetched in fetches if any(i.startswith("BODY.PEEK[]") for i in fetched)]
    assert probes == [uids[0:2], uids[2:4], uids[4:5]]
    assert bodies == [[uid] for uid in uids]  # each message is ~0.6 kB: two would pass 1000 bytes


def test_it_downloads_a_large_message_in_pieces_and_reads_it_the_same(mailbox: Mailbox, fetches: list) -> None:
    import random

    from connectors.email.message.parse import parse_message
    from connectors.email.source import PIECE_BYTES

    attachment = random.Random(5).randbytes(700_000)
    small = mailbox.append("INBOX", message("small"))
    large = mailbox.append("INBOX", message("large", attachment=attachment))
    room: list[int] = []

    with source(mailbox) as inbox:
        items = list(inbox.fetch(inbox.candidates(), make_room=room.append))
    with mailbox.client() as other:
        other.select_folder("INBOX", readonly=True)
        raw = other.fetch([large], ["BODY.PEEK[]"])[large][b"BODY[]"]

    assert [item.key.position for item in items] == [small, large]
    record = items[1].record
    assert record["attachments"][0]["content"] == attachment
    assert record == parse_message(raw, uid=large, uidvalidity=record["uidvalidity"], folder="INBOX")
    pieces = [fetched for uids, fetched in fetches if uids == [large] and fetched[0].startswith("BODY.PEEK[]<")]
    assert pieces == [[f"BODY.PEEK[]<{n * PIECE_BYTES}.{PIECE_BYTES}>"] for n in range(len(raw) // PIECE_BYTES + 1)]
    assert room == [items[0].size] + [len(raw)] * len(pieces)  # told before each download
    assert mailbox.flags() == {small: set(), large: set()}


def test_it_reads_on_when_the_server_gives_shorter_pieces_than_asked(
    mailbox: Mailbox, monkeypatch: pytest.MonkeyPatch
) -> None:
    import random

    attachment = random.Random(6).randbytes(400_000)
    uid = mailbox.append("INBOX", message("large", attachment=attachment))
    original = GuardedIMAPClient.fetch_later

    def stingy(self: GuardedIMAPClient, messages: Any, data: Any, modifiers: Any = None) -> Any:
        read = original(self, messages, data, modifiers)

        def read_less() -> Any:
            found = read()
            for facts in found.values():
                for key in [k for k in facts if k.startswith(b"BODY[]<")]:
                    facts[key] = facts[key][: len(facts[key]) // 2 + 1]  # less than asked, never nothing
            return found

        return read_less

    monkeypatch.setattr(GuardedIMAPClient, "fetch_later", stingy)
    with source(mailbox) as inbox:
        [item] = list(inbox.fetch(inbox.candidates()))

    assert item.key.position == uid
    assert item.record["attachments"][0]["content"] == attachment
    assert item.record["defects"] == []


def test_it_leaves_out_a_message_expunged_after_the_search(mailbox: Mailbox) -> None:
    kept = mailbox.append("INBOX", message("kept"))
    gone = mailbox.append("INBOX", message("gone"))

    with source(mailbox) as inbox:
        keys = inbox.candidates()
        with mailbox.client() as other:
            other.select_folder("INBOX")
            other.delete_messages([gone])
            other.expunge()
        items = list(inbox.fetch(keys))

    assert [item.key.position for item in items] == [kept]


def test_it_reconnects_once_when_the_connection_drops(mailbox: Mailbox) -> None:
    uid = mailbox.append("INBOX", message("survives a drop"))

    with source(mailbox) as inbox:
        keys = inbox.candidates()
        inbox._client.socket().shutdown(socket.SHUT_RDWR)
        assert [item.key.position for item in inbox.fetch(keys)] == [uid]

        inbox._client.socket().shutdown(socket.SHUT_RDWR)
        with pytest.raises(ConnectorError) as caught:
            list(inbox.fetch(keys))

    assert not caught.value.permanent
    assert "the connection was lost twice in this run" in caught.value.message


def test_it_refuses_a_folder_that_does_not_exist(mailbox: Mailbox) -> None:
    with pytest.raises(ConnectorError) as caught, source(mailbox, folder="Nowhere"):
        pass

    assert "open the folder Nowhere" in caught.value.message
    assert caught.value.permanent


# Acknowledging ---------------------------------------------------------------------------------


def test_it_marks_only_the_acknowledged_message_read(mailbox: Mailbox) -> None:
    first = mailbox.append("INBOX", message("one"))
    second = mailbox.append("INBOX", message("two"))

    with source(mailbox) as inbox:
        keys = inbox.candidates()
        inbox.acknowledge(keys[:1], "mark_read")
        inbox.acknowledge(keys[1:2], "leave")

    assert mailbox.flags() == {first: {"\\Seen"}, second: set()}


def test_it_acknowledges_a_batch_of_messages_together(mailbox: Mailbox) -> None:
    mailbox.create_folder("Archive")
    uids = [mailbox.append("INBOX", message(f"number {n}")) for n in range(5)]

    with source(mailbox, after_read="move", move_to="Archive") as inbox:
        keys = inbox.candidates()
        inbox.acknowledge(keys[:2], "mark_read")
        inbox.acknowledge(keys[2:4], "move")

    assert mailbox.flags() == {uids[0]: {"\\Seen"}, uids[1]: {"\\Seen"}, uids[4]: set()}
    assert len(mailbox.uids("Archive")) == 2


def test_it_moves_a_message_with_move(mailbox: Mailbox, copies: list) -> None:
    mailbox.create_folder("Archive")
    mailbox.append("INBOX", message("to archive"))
    stays = mailbox.append("INBOX", message("stays"))

    with source(mailbox, after_read="move", move_to="Archive") as inbox:
        inbox.acknowledge(inbox.candidates()[:1], "move")

    assert copies == []
    assert mailbox.uids("INBOX") == [stays]
    assert len(mailbox.uids("Archive")) == 1
    assert mailbox.uids("Archive", ["SUBJECT", "to archive"]) == mailbox.uids("Archive")


def test_it_moves_with_copy_and_expunge_when_the_server_lacks_move(
    dovecot_factory: DovecotFactory, copies: list
) -> None:
    server = dovecot_factory(disable_move=True)
    server.create_folder(IMAP_USER, "Archive")
    server.append(IMAP_USER, "INBOX", message("to archive"))
    stays = server.append(IMAP_USER, "INBOX", message("stays"))

    with source(server, after_read="move", move_to="Archive") as inbox:
        assert not inbox._client.has_capability("MOVE")
        inbox.acknowledge(inbox.candidates()[:1], "move")

    assert len(copies) == 1
    assert server.uids(IMAP_USER, "INBOX") == [stays]
    assert len(server.uids(IMAP_USER, "Archive", ["SUBJECT", "to archive"])) == 1


def test_it_deletes_only_the_acknowledged_message(mailbox: Mailbox) -> None:
    doomed = mailbox.append("INBOX", message("delete me"))
    someone_elses = mailbox.append("INBOX", message("flagged by a person"), flags=[b"\\Deleted"])
    other = mailbox.append("INBOX", message("keep me"))

    with source(mailbox) as inbox:
        inbox.acknowledge([SourceKey("INBOX", inbox.uidvalidity, doomed)], "delete")

    assert mailbox.flags() == {someone_elses: {"\\Deleted"}, other: set()}


def test_it_refuses_to_acknowledge_after_the_folder_was_recreated(mailbox: Mailbox) -> None:
    mailbox.append("Support", message("old generation"))

    with source(mailbox, folder="Support") as support:
        [key] = support.candidates()
        mailbox.recreate_folder("Support")
        newcomer = mailbox.append("Support", message("new generation, maybe the same UID"))
        with pytest.raises(ConnectorError) as caught:
            support.acknowledge([key], "mark_read")

    assert caught.value.message == "the folder Support was recreated (UIDVALIDITY changed); not acknowledging"
    assert not caught.value.permanent
    assert mailbox.flags("Support") == {newcomer: set()}


# Health and folders ----------------------------------------------------------------------------


def test_it_reports_the_backlog(mailbox: Mailbox) -> None:
    mailbox.append("INBOX", message("read"), flags=[b"\\Seen"])
    mailbox.append("INBOX", message("unread one"))
    mailbox.append("INBOX", message("unread two"))

    with source(mailbox) as inbox:
        health = inbox.health()

    assert (health["folder"], health["total"], health["unread"]) == ("INBOX", 3, 2)
    assert 0 <= health["oldest_unread_age_seconds"] < 120
    assert health["oldest_unread_at"].endswith("+00:00")


def test_it_reports_an_empty_backlog(mailbox: Mailbox) -> None:
    with source(mailbox) as inbox:
        assert inbox.health() == {
            "folder": "INBOX", "total": 0, "unread": 0, "oldest_unread_at": None, "oldest_unread_age_seconds": None,
        }  # fmt: skip


def test_it_lists_folders_inbox_first(mailbox: Mailbox) -> None:
    for folder in ("Archive", "Support/Tier 2", "zebra"):
        mailbox.create_folder(folder)

    assert list_folders(imap_config(mailbox), SECRETS) == ["INBOX", "Archive", "Support/Tier 2", "zebra"]


# Sending ---------------------------------------------------------------------------------------


RECORD = {
    "from": "Support <support@example.com>",
    "to": "customer@example.org",
    "subject": "Your ticket",
    "text": "We are on it.",
}


@pytest.fixture
def relay(smtp_server: SMTPServer) -> Iterator[EmailTarget]:
    with EmailTarget(smtp_config(smtp_server), {}, parse_send_settings({})) as target:
        yield target


def test_it_sends_with_the_prepared_message_id_and_keeps_the_final_reply(
    smtp_server: SMTPServer, relay: EmailTarget
) -> None:
    prepared = relay.prepare(RECORD)

    delivery = relay.write(prepared)

    [received] = smtp_server.messages
    assert delivery.reply == "250 2.0.0 OK queued"
    assert delivery.message_id == prepared.message_id == received.message["Message-ID"]
    assert prepared.message_id.endswith("@example.com>")
    assert (received.mail_from, received.rcpt_tos) == ("support@example.com", ("customer@example.org",))
    assert received.subject == "Your ticket"


def test_it_fills_in_the_activity_defaults(smtp_server: SMTPServer) -> None:
    settings = parse_send_settings(
        {"defaults": {"from": "desk@example.net", "bcc": "audit@example.net"}, "message_id_domain": "ids.example.net"}
    )

    with EmailTarget(smtp_config(smtp_server), {}, settings) as target:
        delivery = target.write({"to": "customer@example.org", "subject": "Hi", "text": "Hello"})

    [received] = smtp_server.messages
    assert received.mail_from == "desk@example.net"
    assert received.rcpt_tos == ("customer@example.org", "audit@example.net")
    assert "Bcc" not in received.message
    assert delivery.message_id.endswith("@ids.example.net>")


def test_it_refuses_to_prepare_a_message_without_recipients(relay: EmailTarget) -> None:
    with pytest.raises(InvalidMessage) as caught:
        relay.prepare({"from": "support@example.com", "subject": "Nobody"})

    assert caught.value.field == "to"


def test_it_sends_over_starttls_with_auth(smtp_factory: SMTPFactory, tls_certs: TestCerts) -> None:
    server = smtp_factory("starttls", auth={IMAP_USER: IMAP_PASSWORD})

    with EmailTarget(smtp_config(server, tls_certs.ca_pem, auth=True), SECRETS, parse_send_settings({})) as target:
        target.write(RECORD)

    [received] = server.messages
    assert received.tls
    assert received.auth_user == IMAP_USER


def test_it_delivers_a_multipart_message_with_its_attachment_intact(
    smtp_server: SMTPServer, relay: EmailTarget
) -> None:
    pdf = bytes(range(256)) * 40
    relay.write(
        {**RECORD, "html": "<p>We are <b>on it</b>.</p>", "attachments": [{"filename": "report.pdf", "content": pdf}]}
    )

    [received] = smtp_server.messages
    body = received.message.get_body(("plain",))
    html = received.message.get_body(("html",))
    [attachment] = received.message.iter_attachments()
    assert received.message.get_content_type() == "multipart/mixed"
    assert body.get_content().strip() == "We are on it."
    assert "<b>on it</b>" in html.get_content()
    assert (attachment.get_filename(), attachment.get_content_type()) == ("report.pdf", "application/pdf")
    assert attachment.get_content() == pdf


def test_it_keeps_lines_that_start_with_a_dot(smtp_server: SMTPServer, relay: EmailTarget) -> None:
    # SMTP ends the data with a line holding one dot; lines of the message that start with a dot
    # are sent with a second one, which the server takes off again.
    text = ".\n.. two dots\n.hidden\nend.\n.\n"
    relay.write({**RECORD, "text": text, "attachments": [{"filename": "a.txt", "content": b".x\r\n"}]})

    [received] = smtp_server.messages
    assert received.message.get_body(("plain",)).get_content().replace("\r\n", "\n") == text
    [attachment] = received.message.iter_attachments()
    assert attachment.get_content() == ".x\r\n"


def test_it_treats_a_4xx_reply_as_transient_and_goes_on(smtp_server: SMTPServer, relay: EmailTarget) -> None:
    smtp_server.fail_next(1, 451, "4.3.0 Try again later")

    with pytest.raises(ConnectorError) as caught:
        relay.write(RECORD)
    relay.write(RECORD)

    assert caught.value.message == "the server refused the message: 451 4.3.0 Try again later"
    assert not caught.value.permanent
    assert len(smtp_server.messages) == 1
    assert len(smtp_server.ehlo_names) == 1  # the same connection took the next message


def test_it_treats_a_5xx_reply_as_permanent_with_the_reply(smtp_server: SMTPServer, relay: EmailTarget) -> None:
    smtp_server.fail_always(554, "5.7.1 Message rejected")

    with pytest.raises(ConnectorError) as caught:
        relay.write(RECORD)

    assert caught.value.message == "the server refused the message: 554 5.7.1 Message rejected"
    assert caught.value.permanent


def test_it_reconnects_after_a_dropped_connection(smtp_server: SMTPServer, relay: EmailTarget) -> None:
    smtp_server.drop_next(1)

    with pytest.raises(ConnectorError) as caught:
        relay.write(RECORD)
    delivery = relay.write(RECORD)

    assert not caught.value.permanent
    assert delivery.reply == "250 2.0.0 OK queued"
    assert len(smtp_server.ehlo_names) == 2
    assert [attempt.outcome for attempt in smtp_server.attempts] == ["dropped", "accepted"]


def test_it_reuses_one_connection_for_the_whole_run(smtp_server: SMTPServer, relay: EmailTarget) -> None:
    for n in range(10):
        relay.write({**RECORD, "subject": f"Message {n}"})

    assert [m.subject for m in smtp_server.messages] == [f"Message {n}" for n in range(10)]
    assert len(smtp_server.ehlo_names) == 1


def test_it_delivers_when_some_recipients_are_refused(smtp_server: SMTPServer, relay: EmailTarget) -> None:
    smtp_server.reject_recipient("gone@example.org")

    delivery = relay.write({**RECORD, "to": ["customer@example.org", "gone@example.org"]})

    assert delivery.reply == ("250 2.0.0 OK queued; not accepted for gone@example.org (550 5.1.1 Mailbox unavailable)")
    assert smtp_server.messages[0].rcpt_tos == ("customer@example.org",)


@pytest.mark.parametrize(("code", "permanent"), [(450, False), (550, True)])
def test_it_fails_when_every_recipient_is_refused(
    smtp_server: SMTPServer, relay: EmailTarget, code: int, permanent: bool
) -> None:
    smtp_server.reject_recipient("customer@example.org", code, f"{code // 100}.1.1 No such user")

    with pytest.raises(ConnectorError) as caught:
        relay.write(RECORD)

    assert caught.value.message == (
        f"the server refused every recipient: customer@example.org ({code} {code // 100}.1.1 No such user)"
    )
    assert caught.value.permanent is permanent
    assert smtp_server.messages == []


def test_it_does_not_trust_the_size_the_server_announces(mailbox: Mailbox, monkeypatch: pytest.MonkeyPatch) -> None:
    """A server that announces 1 KB for a 2 MB message cannot make a 1 MB limit read 2 MB whole."""
    original = GuardedIMAPClient.fetch

    def understated(self: GuardedIMAPClient, messages: Any, data: Any, modifiers: Any = None) -> Any:
        found = original(self, messages, data, modifiers)
        for facts in found.values():
            if b"RFC822.SIZE" in facts:
                facts[b"RFC822.SIZE"] = 1000
        return found

    monkeypatch.setattr(GuardedIMAPClient, "fetch", understated)
    small = mailbox.append("INBOX", message("small"))
    huge = mailbox.append("INBOX", message("huge", attachment=random.Random(7).randbytes(2_000_000)))

    with source(mailbox, max_message_mb=1) as inbox:
        items = list(inbox.fetch(inbox.candidates()))

    assert [item.key.position for item in items] == [small, huge]
    assert items[0].record is not None
    assert items[1].record is None
    assert "announced 1000 bytes, then sent more" in items[1].skip_reason
    assert mailbox.flags() == {small: set(), huge: set()}


def test_a_message_beyond_the_structure_limits_is_skipped_with_the_reason(
    mailbox: Mailbox, settings: Any
) -> None:
    settings.MAILWRIGHT_MAX_PARTS = 20
    parts = b"".join(b"--b\r\nContent-Type: text/plain\r\n\r\nx\r\n" for _ in range(30))
    crowded = mailbox.append("INBOX", b'From: a@example.com\r\nSubject: parts\r\nContent-Type: multipart/mixed; '
                             b'boundary="b"\r\n\r\n' + parts + b"--b--\r\n")
    after = mailbox.append("INBOX", message("after"))

    with source(mailbox) as inbox:
        items = list(inbox.fetch(inbox.candidates()))

    assert [(item.key.position, item.record is None) for item in items] == [(crowded, True), (after, False)]
    assert items[0].skip_reason == "the message has more than 20 MIME parts"
