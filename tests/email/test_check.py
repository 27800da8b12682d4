"""The Email connection Test against real servers: Dovecot for IMAP, aiosmtpd for SMTP.

Each test reads the steps the way the Test button shows them: which step, ok or not, and the
words a user gets.
"""

from __future__ import annotations

import socket
import threading
import time
from collections.abc import Iterator
from typing import Any

import pytest

from connectors.base import CheckStep, ConnectorError
from connectors.email.check import check_email_connection, server_budget
from connectors.email.config import EmailConfig, parse_email_config
from connectors.email.imap import open_imap
from connectors.email.smtp import open_smtp
from tests.servers.certs import TestCerts
from tests.servers.dovecot import Mailbox, free_port
from tests.servers.fixtures import IMAP_PASSWORD, IMAP_USER, SMTPFactory
from tests.servers.smtp import SMTPServer

SECRETS = {"password": IMAP_PASSWORD}
MESSAGE = b"From: a@example.test\r\nTo: alice@example.test\r\nSubject: Check\r\n\r\nBody.\r\n"


def make_config(
    imap: dict[str, Any] | None = None,
    smtp: dict[str, Any] | None = None,
    *,
    ca_pem: str = "",
    auth: dict[str, Any] | None = None,
    connect: int = 5,
    read: int = 5,
    ehlo_name: str = "",
) -> EmailConfig:
    return parse_email_config(
        {
            "imap": imap,
            "smtp": smtp,
            "auth": auth or {"method": "password", "username": IMAP_USER},
            "ca_pem": ca_pem,
            "timeouts": {"connect": connect, "read": read},
            "ehlo_name": ehlo_name,
        }
    )


def imap_tls(mailbox: Mailbox, **extra: Any) -> dict[str, Any]:
    return {"host": mailbox.host, "port": mailbox.tls_port, "security": "ssl", **extra}


def smtp_of(server: SMTPServer, security: str, **extra: Any) -> dict[str, Any]:
    return {"host": server.host, "port": server.port, "security": security, **extra}


def run(config: EmailConfig, secrets: dict[str, str] = SECRETS) -> list[CheckStep]:
    return list(check_email_connection(config, secrets))


def by_name(steps: list[CheckStep]) -> dict[str, CheckStep]:
    return {step.name: step for step in steps}


def describe(steps: list[CheckStep]) -> str:
    return "\n".join(f"{'ok ' if s.ok else 'BAD'} {s.name}: {s.detail}" for s in steps)


@pytest.fixture
def submission(smtp_factory: SMTPFactory) -> SMTPServer:
    """A submission server like port 587: STARTTLS, then AUTH as alice."""
    return smtp_factory("starttls", auth={IMAP_USER: IMAP_PASSWORD})


@pytest.fixture
def closed_port() -> Iterator[int]:
    yield free_port()  # handed out by the kernel and released: nothing listens there


@pytest.fixture
def silent_port() -> Iterator[int]:
    """A port that accepts connections (the kernel does, from the backlog) but never says a word."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as listener:
        listener.bind(("127.0.0.1", 0))
        listener.listen(8)
        yield listener.getsockname()[1]


@pytest.fixture
def trickling_port() -> Iterator[int]:
    """A server that "greets" one byte every 0.3 s, forever: each read succeeds, the line never ends."""
    stop = threading.Event()
    listener = socket.create_server(("127.0.0.1", 0))
    listener.settimeout(0.2)

    def serve() -> None:
        peers = []
        while not stop.is_set():
            try:
                peers.append(listener.accept()[0])
            except TimeoutError:
                pass
            for peer in list(peers):
                try:
                    peer.sendall(b"*")
                except OSError:
                    peers.remove(peer)
            stop.wait(0.3)
        for peer in peers:
            peer.close()

    thread = threading.Thread(target=serve, daemon=True)
    thread.start()
    try:
        yield listener.getsockname()[1]
    finally:
        stop.set()
        thread.join(5)
        listener.close()


# ------------------------------------------------------------------------------------ all green


def test_it_passes_every_step_against_dovecot_tls_and_smtp_starttls(
    mailbox: Mailbox, submission: SMTPServer, tls_certs: TestCerts
) -> None:
    mailbox.append("INBOX", MESSAGE)
    mailbox.append("INBOX", MESSAGE, flags=[b"\\Seen"])
    config = make_config(imap_tls(mailbox), smtp_of(submission, "starttls"), ca_pem=tls_certs.ca_pem)

    steps = run(config)

    assert [s.name for s in steps] == [
        "IMAP resolve",
        "IMAP connect",
        "IMAP login",
        "IMAP select INBOX",
        "SMTP resolve",
        "SMTP connect",
        "SMTP EHLO",
        "SMTP STARTTLS",
        "SMTP login",
    ], describe(steps)
    assert all(s.ok for s in steps), describe(steps)
    step = by_name(steps)
    assert step["IMAP resolve"].detail == "127.0.0.1 resolves to 127.0.0.1"
    assert "TLSv1." in step["IMAP connect"].detail
    assert "certificate verified against the given CA" in step["IMAP connect"].detail
    assert "greeting" not in step["IMAP connect"].detail and "OK" not in step["IMAP connect"].detail
    assert step["IMAP login"].detail == "logged in as alice"
    assert step["IMAP select INBOX"].detail == "2 messages, 1 unseen"
    assert "220" not in step["SMTP connect"].detail  # no banner: it would fingerprint any address
    assert "STARTTLS" in step["SMTP EHLO"].detail and "SIZE 32 MB" in step["SMTP EHLO"].detail
    assert "upgraded to TLSv1." in step["SMTP STARTTLS"].detail
    assert "AUTH" in step["SMTP STARTTLS"].detail  # offered only once the connection is encrypted
    assert step["SMTP login"].detail == "logged in as alice; no mail sent"
    assert submission.messages == []


def test_it_upgrades_the_plain_imap_port_with_starttls(mailbox: Mailbox, tls_certs: TestCerts) -> None:
    imap = {"host": mailbox.host, "port": mailbox.plain_port, "security": "starttls"}

    steps = run(make_config(imap, ca_pem=tls_certs.ca_pem))

    assert [s.name for s in steps] == [
        "IMAP resolve",
        "IMAP connect",
        "IMAP STARTTLS",
        "IMAP login",
        "IMAP select INBOX",
    ], describe(steps)
    assert all(s.ok for s in steps), describe(steps)
    assert "plain text until STARTTLS" in by_name(steps)["IMAP connect"].detail
    assert "upgraded to TLSv1." in by_name(steps)["IMAP STARTTLS"].detail


def test_it_logs_in_over_plain_imap_when_security_is_none(mailbox: Mailbox) -> None:
    imap = {"host": mailbox.host, "port": mailbox.plain_port, "security": "none"}

    steps = run(make_config(imap))

    assert all(s.ok for s in steps), describe(steps)
    assert "plain text (not encrypted)" in by_name(steps)["IMAP connect"].detail


def test_it_connects_without_verification_when_that_is_turned_off(mailbox: Mailbox) -> None:
    steps = run(make_config(imap_tls(mailbox, verify_tls=False)))

    assert all(s.ok for s in steps), describe(steps)
    assert "certificate NOT verified" in by_name(steps)["IMAP connect"].detail


def test_it_checks_smtp_over_implicit_tls(smtp_factory: SMTPFactory, tls_certs: TestCerts) -> None:
    server = smtp_factory("ssl", auth={IMAP_USER: IMAP_PASSWORD})

    steps = run(make_config(smtp=smtp_of(server, "ssl"), ca_pem=tls_certs.ca_pem))

    assert [s.name for s in steps] == ["SMTP resolve", "SMTP connect", "SMTP EHLO", "SMTP login"], describe(steps)
    assert all(s.ok for s in steps), describe(steps)
    assert "TLSv1." in by_name(steps)["SMTP connect"].detail


def test_it_skips_login_for_a_relay_without_auth(smtp_server: SMTPServer) -> None:
    config = make_config(smtp=smtp_of(smtp_server, "none"), auth={"method": "none"})

    steps = run(config, {})

    assert all(s.ok for s in steps), describe(steps)
    assert by_name(steps)["SMTP login"].detail == "no authentication configured (relay without login)"
    assert "no AUTH" in by_name(steps)["SMTP EHLO"].detail
    assert smtp_server.messages == []


def test_it_greets_with_the_configured_ehlo_name_or_its_own_address(smtp_server: SMTPServer) -> None:
    relay = {"method": "none"}
    run(make_config(smtp=smtp_of(smtp_server, "none"), auth=relay, ehlo_name="client.mailwright.test"), {})
    run(make_config(smtp=smtp_of(smtp_server, "none"), auth=relay), {})

    assert smtp_server.ehlo_names == ["client.mailwright.test", "[127.0.0.1]"]


# ------------------------------------------------------------------------------------- failures


def test_it_says_the_certificate_is_not_trusted_without_the_ca(mailbox: Mailbox) -> None:
    steps = run(make_config(imap_tls(mailbox)))

    assert [s.name for s in steps] == ["IMAP resolve", "IMAP connect"], describe(steps)
    failed = steps[-1]
    assert not failed.ok
    assert failed.detail.startswith("certificate not trusted: ")
    assert "give the CA PEM" in failed.detail


def test_it_says_when_the_certificate_names_another_host(smtp_factory: SMTPFactory, tls_certs: TestCerts) -> None:
    server = smtp_factory("ssl", wrong_host_cert=True)

    steps = run(make_config(smtp=smtp_of(server, "ssl"), ca_pem=tls_certs.ca_pem, auth={"method": "none"}), {})

    assert not steps[-1].ok and steps[-1].name == "SMTP connect", describe(steps)
    assert "certificate not trusted:" in steps[-1].detail
    assert "connect with a host name the certificate names" in steps[-1].detail


def test_it_fails_the_imap_login_step_on_a_wrong_password(mailbox: Mailbox, tls_certs: TestCerts) -> None:
    wrong = "not-alices-password"

    steps = run(make_config(imap_tls(mailbox), ca_pem=tls_certs.ca_pem), {"password": wrong})

    assert [s.ok for s in steps] == [True, True, False], describe(steps)
    assert steps[-1].name == "IMAP login"
    assert steps[-1].detail.startswith("authentication rejected: ")
    assert wrong not in describe(steps)


def test_it_says_a_closed_port_refuses_the_connection(closed_port: int) -> None:
    steps = run(make_config({"host": "127.0.0.1", "port": closed_port, "security": "ssl"}))

    assert steps[-1].name == "IMAP connect" and not steps[-1].ok, describe(steps)
    assert steps[-1].detail == (
        f"connection refused by 127.0.0.1:{closed_port} (is the port right? is the server running?)"
    )


def test_it_says_the_port_is_plain_when_ssl_is_chosen(mailbox: Mailbox, tls_certs: TestCerts) -> None:
    imap = {"host": mailbox.host, "port": mailbox.plain_port, "security": "ssl"}

    steps = run(make_config(imap, ca_pem=tls_certs.ca_pem))

    assert steps[-1].name == "IMAP connect" and not steps[-1].ok, describe(steps)
    assert steps[-1].detail == (
        f"the server did not answer TLS on port {mailbox.plain_port}: it looks like a plain port — "
        "choose security starttls or none"
    )


def test_it_says_the_smtp_port_is_plain_when_ssl_is_chosen(smtp_server: SMTPServer) -> None:
    steps = run(make_config(smtp=smtp_of(smtp_server, "ssl"), auth={"method": "none"}), {})

    assert steps[-1].name == "SMTP connect" and not steps[-1].ok, describe(steps)
    assert "it looks like a plain port" in steps[-1].detail


@pytest.mark.parametrize("security", ["none", "starttls"])
def test_it_says_the_port_expects_tls_when_plain_is_chosen(mailbox: Mailbox, security: str) -> None:
    imap = {"host": mailbox.host, "port": mailbox.tls_port, "security": security}

    started = time.monotonic()
    steps = run(make_config(imap, read=2))
    elapsed = time.monotonic() - started

    assert steps[-1].name == "IMAP connect" and not steps[-1].ok, describe(steps)
    assert steps[-1].detail == (
        f"no greeting from 127.0.0.1:{mailbox.tls_port} within 2 s: this port probably expects TLS: choose security ssl"
    )
    assert elapsed < 5


def test_it_says_the_smtp_port_expects_tls_when_plain_is_chosen(smtp_factory: SMTPFactory) -> None:
    server = smtp_factory("ssl")

    started = time.monotonic()
    steps = run(make_config(smtp=smtp_of(server, "starttls"), read=2, auth={"method": "none"}), {})

    assert steps[-1].name == "SMTP connect" and not steps[-1].ok, describe(steps)
    assert "this port probably expects TLS: choose security ssl" in steps[-1].detail
    assert time.monotonic() - started < 5


def test_it_refuses_to_go_on_when_smtp_does_not_offer_starttls(smtp_server: SMTPServer) -> None:
    steps = run(make_config(smtp=smtp_of(smtp_server, "starttls"), auth={"method": "none"}), {})

    assert steps[-1].name == "SMTP STARTTLS" and not steps[-1].ok, describe(steps)
    assert f"127.0.0.1:{smtp_server.port} does not offer STARTTLS" in steps[-1].detail


def test_it_fails_the_smtp_login_step_on_a_wrong_password(smtp_factory: SMTPFactory, tls_certs: TestCerts) -> None:
    server = smtp_factory("starttls", auth={IMAP_USER: "the-real-smtp-password"})

    steps = run(make_config(smtp=smtp_of(server, "starttls"), ca_pem=tls_certs.ca_pem))

    assert [s.name for s in steps][-1] == "SMTP login", describe(steps)
    assert [s.ok for s in steps] == [True, True, True, True, False], describe(steps)
    assert steps[-1].detail.startswith("authentication rejected: 535")
    assert IMAP_PASSWORD not in describe(steps)


def test_it_refuses_a_deny_listed_address_before_connecting() -> None:
    metadata = {"host": "169.254.169.254", "port": 993, "security": "ssl"}
    smtp = {"host": "169.254.169.254", "port": 587, "security": "starttls"}

    started = time.monotonic()
    steps = run(make_config(metadata, smtp))

    assert [(s.name, s.ok) for s in steps] == [("IMAP resolve", False), ("SMTP resolve", False)], describe(steps)
    assert steps[0].detail.startswith(
        "refused by the outbound policy, no connection attempted: 169.254.169.254 resolves to a cloud metadata address"
    )
    assert time.monotonic() - started < 1


def test_it_still_checks_smtp_when_imap_fails(closed_port: int, smtp_server: SMTPServer) -> None:
    imap = {"host": "127.0.0.1", "port": closed_port, "security": "ssl"}
    config = make_config(imap, smtp_of(smtp_server, "none"))

    steps = run(config)

    names = [s.name for s in steps]
    assert names[:2] == ["IMAP resolve", "IMAP connect"] and not steps[1].ok, describe(steps)
    assert names[2:5] == ["SMTP resolve", "SMTP connect", "SMTP EHLO"], describe(steps)
    assert all(s.ok for s in steps[2:5]), describe(steps)


def test_it_gives_up_on_a_silent_server_within_its_budget(silent_port: int) -> None:
    config = make_config({"host": "127.0.0.1", "port": silent_port, "security": "ssl"}, connect=1, read=1)

    started = time.monotonic()
    steps = run(config)

    assert steps[-1].name == "IMAP connect" and not steps[-1].ok, describe(steps)
    assert steps[-1].detail == f"timed out after 1 s waiting for the TLS handshake at 127.0.0.1:{silent_port}"
    assert time.monotonic() - started < server_budget(config)


def test_it_cuts_off_a_server_that_trickles_within_its_budget(trickling_port: int) -> None:
    config = make_config({"host": "127.0.0.1", "port": trickling_port, "security": "none"}, connect=1, read=1)

    started = time.monotonic()
    steps = run(config)
    elapsed = time.monotonic() - started

    assert steps[-1].name == "IMAP connect" and not steps[-1].ok, describe(steps)
    assert steps[-1].detail == "gave up: this server's checks took longer than 4 s"
    assert server_budget(config) <= elapsed < server_budget(config) + 1.5


# ------------------------------------------------------------------------------ the engine's API


def test_it_opens_an_imap_session_and_logs_out_afterwards(mailbox: Mailbox, tls_certs: TestCerts) -> None:
    mailbox.append("INBOX", MESSAGE)
    config = make_config(imap_tls(mailbox), ca_pem=tls_certs.ca_pem)

    with open_imap(config, SECRETS) as client:
        with client.translating("select INBOX"):
            assert client.select_folder("INBOX", readonly=True)[b"EXISTS"] == 1
        sock = client.socket()

    assert sock.fileno() == -1  # closed


def test_it_raises_plain_language_errors_from_open_imap(mailbox: Mailbox, tls_certs: TestCerts) -> None:
    config = make_config(imap_tls(mailbox), ca_pem=tls_certs.ca_pem)

    with pytest.raises(ConnectorError) as caught:
        with open_imap(config, {"password": "wrong-password"}):
            pass  # pragma: no cover - login fails first

    assert caught.value.permanent
    assert str(caught.value).startswith("authentication rejected: ")


def test_it_opens_an_smtp_session_that_can_send(submission: SMTPServer, tls_certs: TestCerts) -> None:
    config = make_config(smtp=smtp_of(submission, "starttls"), ca_pem=tls_certs.ca_pem)

    with open_smtp(config, SECRETS) as smtp:
        with smtp.translating("send the message"):
            smtp.sendmail("a@example.test", ["alice@example.test"], MESSAGE)

    assert smtp.sock is None  # QUIT and closed
    assert [m.subject for m in submission.wait_for_messages(1)] == ["Check"]
