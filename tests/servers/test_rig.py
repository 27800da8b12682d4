"""Tests of the real-server test rig itself (tests/servers), with stdlib clients only.

If these fail, every IMAP/SMTP integration test built on the rig is suspect, so they check
the things those tests rely on: TLS that verifies against our CA, STARTTLS, login, mailbox
helpers, restarts, and each SMTP fault mode producing the error a client really sees.
"""

from __future__ import annotations

import imaplib
import smtplib
import socket
import ssl
import threading
from pathlib import Path

import pytest

from tests.servers import fixtures as rig
from tests.servers.certs import TestCerts
from tests.servers.dovecot import Dovecot, Mailbox
from tests.servers.fixtures import DovecotFactory, SMTPFactory
from tests.servers.smtp import SMTPServer

MESSAGE = b"From: a@example.test\r\nTo: b@example.test\r\nSubject: Hello rig\r\n\r\nBody text.\r\n"


def _listening_addresses(port: int) -> set[str]:
    """Local addresses with a socket in LISTEN state on *port*, straight from /proc."""
    found = set()
    for table in ("/proc/net/tcp", "/proc/net/tcp6"):
        for line in Path(table).read_text().splitlines()[1:]:
            local, state = line.split()[1], line.split()[3]
            address, hex_port = local.rsplit(":", 1)
            if state == "0A" and int(hex_port, 16) == port:
                found.add(address)
    return found


def _send(server: SMTPServer, **kwargs: object) -> None:
    with smtplib.SMTP(server.host, server.port, timeout=5, **kwargs) as client:  # type: ignore[arg-type]
        client.sendmail("a@example.test", ["b@example.test"], MESSAGE)


# ---------------------------------------------------------------------------------- Dovecot


def test_it_logs_in_over_implicit_tls_verifying_the_ca(mailbox: Mailbox) -> None:
    context = ssl.create_default_context(cadata=mailbox.ca_pem)
    with imaplib.IMAP4_SSL(mailbox.host, mailbox.tls_port, ssl_context=context, timeout=5) as imap:
        assert imap.login(mailbox.user, mailbox.password)[0] == "OK"
        assert imap.select("INBOX")[0] == "OK"


def test_it_verifies_by_host_name_as_well(mailbox: Mailbox) -> None:
    context = ssl.create_default_context(cafile=str(mailbox.ca_path))
    with socket.create_connection((mailbox.host, mailbox.tls_port), timeout=5) as raw:
        with context.wrap_socket(raw, server_hostname="localhost") as tls:
            assert tls.recv(100).startswith(b"* OK")


def test_it_is_not_trusted_without_the_ca(mailbox: Mailbox) -> None:
    context = ssl.create_default_context()  # system trust store only
    with pytest.raises(ssl.SSLCertVerificationError):
        imaplib.IMAP4_SSL(mailbox.host, mailbox.tls_port, ssl_context=context, timeout=5)


def test_it_offers_starttls_on_the_plain_port(mailbox: Mailbox) -> None:
    with imaplib.IMAP4(mailbox.host, mailbox.plain_port, timeout=5) as imap:
        assert "STARTTLS" in imap.capabilities
        imap.starttls(ssl.create_default_context(cadata=mailbox.ca_pem))
        assert imap.login(mailbox.user, mailbox.password)[0] == "OK"


def test_it_allows_a_plaintext_login_on_the_plain_port(mailbox: Mailbox) -> None:
    with imaplib.IMAP4(mailbox.host, mailbox.plain_port, timeout=5) as imap:
        assert "LOGINDISABLED" not in imap.capabilities
        assert imap.login(mailbox.user, mailbox.password)[0] == "OK"


def test_it_rejects_a_wrong_password(mailbox: Mailbox) -> None:
    with imaplib.IMAP4(mailbox.host, mailbox.plain_port, timeout=5) as imap:
        with pytest.raises(imaplib.IMAP4.error, match="AUTHENTICATIONFAILED"):
            imap.login(mailbox.user, "not-the-password")


def test_it_listens_on_loopback_only(dovecot: Dovecot) -> None:
    for port in (dovecot.tls_port, dovecot.plain_port):
        assert _listening_addresses(port) == {"0100007F"}  # 127.0.0.1, little-endian hex


def test_it_round_trips_append_and_flags(mailbox: Mailbox) -> None:
    first = mailbox.append("INBOX", MESSAGE)
    second = mailbox.append("INBOX", MESSAGE, flags=[r"\Seen", r"\Flagged"])
    assert second > first
    assert mailbox.flags() == {first: set(), second: {r"\Seen", r"\Flagged"}}
    assert mailbox.uids(criteria="UNSEEN") == [first]

    with mailbox.client() as imap:
        imap.select_folder("INBOX")
        imap.add_flags([first], [b"\\Seen"])
        body = imap.fetch([first], ["BODY.PEEK[]"])[first][b"BODY[]"]
    assert body == MESSAGE
    assert mailbox.flags()[first] == {r"\Seen"}
    assert mailbox.uids(criteria="UNSEEN") == []


def test_it_creates_folders_on_append(mailbox: Mailbox) -> None:
    uid = mailbox.append("Archive/2024", MESSAGE)
    assert mailbox.uids("Archive/2024") == [uid]
    assert mailbox.list_folders() == ["Archive", "Archive/2024", "INBOX"]
    with pytest.raises(Exception, match="(?i)mailbox"):
        mailbox.append("Missing", MESSAGE, create=False)


def test_it_changes_uidvalidity_when_a_folder_is_recreated(mailbox: Mailbox) -> None:
    mailbox.append("Processed", MESSAGE)
    before = mailbox.uidvalidity("Processed")
    after = mailbox.recreate_folder("Processed")
    assert after != before
    assert mailbox.uidvalidity("Processed") == after
    assert mailbox.uids("Processed") == []


def test_it_resets_the_mailbox(mailbox: Mailbox) -> None:
    mailbox.append("INBOX", MESSAGE)
    mailbox.create_folder("Parent/Child")
    mailbox.reset()
    assert mailbox.list_folders() == ["INBOX"]
    assert mailbox.uids() == []


def test_it_keeps_users_apart(dovecot: Dovecot, mailbox: Mailbox) -> None:
    bob = dovecot.mailbox(rig.OTHER_IMAP_USER)
    bob.reset()
    mailbox.append("INBOX", MESSAGE)
    assert bob.uids() == []


def test_it_adds_users_while_running(dovecot: Dovecot) -> None:
    dovecot.add_user("carol", "carol-pw")
    with imaplib.IMAP4(dovecot.host, dovecot.plain_port, timeout=5) as imap:
        assert imap.login("carol", "carol-pw")[0] == "OK"


def test_it_stops_and_starts_on_the_same_ports(dovecot: Dovecot, mailbox: Mailbox) -> None:
    uid = mailbox.append("INBOX", MESSAGE)
    ports = (dovecot.tls_port, dovecot.plain_port)
    try:
        dovecot.stop(kill=True)
        with pytest.raises(ConnectionRefusedError):
            socket.create_connection((dovecot.host, dovecot.plain_port), timeout=5)
    finally:
        dovecot.start()
    assert (dovecot.tls_port, dovecot.plain_port) == ports
    assert mailbox.uids() == [uid]


def test_it_says_goodbye_to_clients_on_a_graceful_stop(dovecot_factory: DovecotFactory) -> None:
    server = dovecot_factory()
    box = server.mailbox(rig.IMAP_USER)
    with box.client() as imap:
        imap.select_folder("INBOX")
        server.stop()
        with pytest.raises((imaplib.IMAP4.abort, OSError)):
            imap.noop()
    server.start()
    assert box.uids() == []


def test_it_can_hide_the_move_capability(dovecot_factory: DovecotFactory) -> None:
    server = dovecot_factory(disable_move=True)
    with server.mailbox(rig.IMAP_USER).client() as imap:
        capabilities = imap.capabilities()
    assert b"MOVE" not in capabilities
    assert b"UIDPLUS" in capabilities


def test_it_advertises_move_by_default(mailbox: Mailbox) -> None:
    with mailbox.client() as imap:
        assert imap.has_capability("MOVE")


def test_it_fails_clearly_when_dovecot_is_missing(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(rig, "dovecot_available", lambda: False)
    with pytest.raises(pytest.fail.Exception, match="make test.*dovecot-imapd"):
        rig._require_dovecot()


# ---------------------------------------------------------------------------------- SMTP


def test_it_records_a_plain_message(smtp_server: SMTPServer) -> None:
    with smtplib.SMTP(smtp_server.host, smtp_server.port, local_hostname="client.example", timeout=5) as client:
        client.ehlo()
        assert not client.has_extn("auth")
        assert not client.has_extn("starttls")
        client.sendmail("a@example.test", ["b@example.test", "c@example.test"], MESSAGE)

    [received] = smtp_server.messages
    assert received.mail_from == "a@example.test"
    assert received.rcpt_tos == ("b@example.test", "c@example.test")
    assert received.raw == MESSAGE
    assert received.message["Subject"] == "Hello rig"
    assert received.message.get_content().strip() == "Body text."
    assert received.ehlo_name == "client.example"
    assert received.tls is False
    assert received.auth_user is None
    assert smtp_server.ehlo_names == ["client.example"]


def test_it_records_a_helo_name(smtp_server: SMTPServer) -> None:
    with smtplib.SMTP(smtp_server.host, smtp_server.port, timeout=5) as client:
        client.helo("old.client.example")
        client.sendmail("a@example.test", ["b@example.test"], MESSAGE)
    assert smtp_server.messages[0].ehlo_name == "old.client.example"


def test_it_listens_on_loopback_only_too(smtp_server: SMTPServer) -> None:
    assert _listening_addresses(smtp_server.port) == {"0100007F"}


def test_it_authenticates_after_starttls(smtp_factory: SMTPFactory, tls_certs: TestCerts) -> None:
    server = smtp_factory("starttls", auth={"mailer": "s3cret"})
    with smtplib.SMTP(server.host, server.port, timeout=5) as client:
        client.ehlo()
        assert client.has_extn("starttls")
        assert not client.has_extn("auth")  # not before TLS
        client.starttls(context=tls_certs.client_context())
        client.ehlo()
        assert client.has_extn("auth")
        client.login("mailer", "s3cret")
        client.sendmail("a@example.test", ["b@example.test"], MESSAGE)
    [received] = server.messages
    assert received.tls is True
    assert received.auth_user == "mailer"


def test_it_rejects_wrong_credentials(smtp_factory: SMTPFactory, tls_certs: TestCerts) -> None:
    server = smtp_factory("starttls", auth={"mailer": "s3cret"})
    with smtplib.SMTP(server.host, server.port, timeout=5) as client:
        client.starttls(context=tls_certs.client_context())
        with pytest.raises(smtplib.SMTPAuthenticationError) as error:
            client.login("mailer", "wrong")
    assert error.value.smtp_code == 535


def test_it_requires_auth_before_mail(smtp_factory: SMTPFactory, tls_certs: TestCerts) -> None:
    server = smtp_factory("starttls", auth={"mailer": "s3cret"})
    with smtplib.SMTP(server.host, server.port, timeout=5) as client:
        client.starttls(context=tls_certs.client_context())
        with pytest.raises(smtplib.SMTPSenderRefused) as error:
            client.sendmail("a@example.test", ["b@example.test"], MESSAGE)
    assert error.value.smtp_code == 530
    assert server.messages == []


def test_it_allows_auth_without_tls_when_asked(smtp_factory: SMTPFactory) -> None:
    server = smtp_factory("plain", auth={"mailer": "s3cret"}, auth_require_tls=False)
    with smtplib.SMTP(server.host, server.port, timeout=5) as client:
        client.login("mailer", "s3cret")
        client.sendmail("a@example.test", ["b@example.test"], MESSAGE)
    assert server.messages[0].auth_user == "mailer"
    assert server.messages[0].tls is False


def test_it_requires_starttls_when_asked(smtp_factory: SMTPFactory) -> None:
    server = smtp_factory("starttls", require_starttls=True)
    with smtplib.SMTP(server.host, server.port, timeout=5) as client:
        with pytest.raises(smtplib.SMTPSenderRefused) as error:
            client.sendmail("a@example.test", ["b@example.test"], MESSAGE)
    assert error.value.smtp_code == 530


def test_it_speaks_implicit_tls(smtp_factory: SMTPFactory, tls_certs: TestCerts) -> None:
    server = smtp_factory("ssl", auth={"mailer": "s3cret"})
    with smtplib.SMTP_SSL(server.host, server.port, context=tls_certs.client_context(), timeout=5) as client:
        client.ehlo()
        assert not client.has_extn("starttls")
        client.login("mailer", "s3cret")
        client.sendmail("a@example.test", ["b@example.test"], MESSAGE)
    assert server.messages[0].tls is True
    assert server.messages[0].auth_user == "mailer"


def test_it_can_present_a_certificate_for_the_wrong_host(smtp_factory: SMTPFactory, tls_certs: TestCerts) -> None:
    server = smtp_factory("ssl", wrong_host_cert=True)
    with pytest.raises(ssl.SSLCertVerificationError, match="(?i)hostname mismatch|doesn't match|not valid"):
        smtplib.SMTP_SSL("localhost", server.port, context=tls_certs.client_context(), timeout=5)


def test_it_fails_the_next_messages_with_a_transient_error(smtp_server: SMTPServer) -> None:
    smtp_server.fail_next(2, code=451, text="4.7.1 Greylisted, try later")
    for _ in range(2):
        with pytest.raises(smtplib.SMTPDataError) as error:
            _send(smtp_server)
        assert error.value.smtp_code == 451
        assert b"Greylisted" in error.value.smtp_error
    _send(smtp_server)
    assert len(smtp_server.messages) == 1
    assert [a.outcome for a in smtp_server.attempts] == ["rejected", "rejected", "accepted"]
    assert smtp_server.attempts[0].reply == "451 4.7.1 Greylisted, try later"


def test_it_fails_permanently_until_cleared(smtp_server: SMTPServer) -> None:
    smtp_server.fail_always(554, "5.7.1 Rejected by policy")
    for _ in range(2):
        with pytest.raises(smtplib.SMTPDataError) as error:
            _send(smtp_server)
        assert error.value.smtp_code == 554
    smtp_server.clear_faults()
    _send(smtp_server)
    assert len(smtp_server.messages) == 1


def test_it_fails_messages_matching_a_predicate(smtp_server: SMTPServer) -> None:
    smtp_server.fail_when(lambda m: (550, "5.6.0 No thanks") if "spam" in (m.subject or "") else None)
    with smtplib.SMTP(smtp_server.host, smtp_server.port, timeout=5) as client:
        with pytest.raises(smtplib.SMTPDataError) as error:
            client.sendmail("a@example.test", ["b@example.test"], b"Subject: spam\r\n\r\nx\r\n")
        assert error.value.smtp_code == 550
        client.sendmail("a@example.test", ["b@example.test"], b"Subject: ham\r\n\r\nx\r\n")
    assert [m.subject for m in smtp_server.messages] == ["ham"]


def test_it_drops_the_connection_without_replying(smtp_server: SMTPServer) -> None:
    smtp_server.drop_next(1)
    with pytest.raises(smtplib.SMTPServerDisconnected):
        _send(smtp_server)
    _send(smtp_server)
    assert [a.outcome for a in smtp_server.attempts] == ["dropped", "accepted"]
    assert len(smtp_server.messages) == 1


def test_it_refuses_a_recipient(smtp_server: SMTPServer) -> None:
    smtp_server.reject_recipient("Nobody@Example.test")
    with smtplib.SMTP(smtp_server.host, smtp_server.port, timeout=5) as client:
        with pytest.raises(smtplib.SMTPRecipientsRefused) as error:
            client.sendmail("a@example.test", ["nobody@example.test"], MESSAGE)
        assert error.value.recipients["nobody@example.test"][0] == 550
        refused = client.sendmail("a@example.test", ["nobody@example.test", "b@example.test"], MESSAGE)
    assert list(refused) == ["nobody@example.test"]
    assert smtp_server.messages[0].rcpt_tos == ("b@example.test",)


def test_it_restarts_on_the_same_port(smtp_server: SMTPServer) -> None:
    port = smtp_server.port
    smtp_server.stop()
    with pytest.raises(ConnectionRefusedError):
        socket.create_connection((smtp_server.host, port), timeout=5)
    smtp_server.start()
    _send(smtp_server)
    assert smtp_server.port == port
    assert len(smtp_server.messages) == 1


def test_it_waits_for_messages_sent_in_the_background(smtp_server: SMTPServer) -> None:
    sender = threading.Thread(target=_send, args=(smtp_server,))
    sender.start()
    [received] = smtp_server.wait_for_messages(1, timeout=5)
    sender.join()
    assert received.subject == "Hello rig"
    with pytest.raises(TimeoutError):
        smtp_server.wait_for_messages(2, timeout=0.1)
