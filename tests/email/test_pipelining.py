"""PIPELINING (RFC 2920) against a real aiosmtpd that offers it: MAIL, the RCPTs and DATA in one
write, their replies read in order; every refusal keeps the session in step for the next message."""

from __future__ import annotations

import pytest

from connectors.base import ConnectorError
from connectors.email.activities import parse_send_settings
from connectors.email.target import EmailTarget
from tests.email.test_source_target import smtp_config
from tests.servers.smtp import SMTPServer

RECORD = {"from": "desk@example.com", "to": "help@example.com", "subject": "Ticket", "text": "Hello"}


@pytest.fixture
def server(smtp_factory) -> SMTPServer:
    return smtp_factory("plain", pipelining=True)


def _target(server: SMTPServer) -> EmailTarget:
    return EmailTarget(smtp_config(server), {}, parse_send_settings({}))


def test_the_envelope_and_data_go_in_one_write_where_the_server_offers_it(server) -> None:
    with _target(server) as target:
        for n in range(3):
            assert target.write(target.prepare({**RECORD, "subject": f"Ticket {n}"})).reply.startswith("250")
    assert [m.subject for m in server.messages] == ["Ticket 0", "Ticket 1", "Ticket 2"]
    assert server.pipelined_envelopes == 3


def test_without_the_offer_one_command_at_a_time(smtp_factory) -> None:
    server = smtp_factory("plain")
    with _target(server) as target:
        target.write(target.prepare(RECORD))
    assert len(server.messages) == 1 and server.pipelined_envelopes == 0


def test_a_refused_recipient_among_others_is_reported_and_the_rest_delivered(server) -> None:
    server.reject_recipient("gone@example.com")
    with _target(server) as target:
        delivery = target.write(target.prepare({**RECORD, "to": "gone@example.com, help@example.com"}))
    assert "not accepted for gone@example.com (550 5.1.1 Mailbox unavailable)" in delivery.reply
    [received] = server.messages
    assert received.rcpt_tos == ("help@example.com",)


def test_every_recipient_refused_keeps_the_session_in_step(server) -> None:
    # DATA, sent with the refused RCPT, is refused too (no recipient); its reply is read before the
    # next message, whose replies are its own.
    server.reject_recipient("gone@example.com", code=450, text="4.2.1 Try later")
    with _target(server) as target:
        with pytest.raises(ConnectorError) as refused:
            target.write(target.prepare({**RECORD, "to": "gone@example.com"}))
        assert "refused every recipient: gone@example.com (450 4.2.1 Try later)" in str(refused.value)
        assert not refused.value.permanent
        assert target.write(target.prepare(RECORD)).reply.startswith("250")
    assert [m.rcpt_tos for m in server.messages] == [("help@example.com",)]
    assert server.pipelined_envelopes == 2


def test_a_refused_sender_keeps_the_session_in_step(smtp_factory) -> None:
    # MAIL refused (no AUTH), so are the pipelined RCPT and DATA: the second message's refusal is
    # MAIL's own reply again, not a leftover of the first.
    server = smtp_factory("plain", pipelining=True, auth_required=True)
    with _target(server) as target:
        for _ in range(2):
            with pytest.raises(ConnectorError) as refused:
                target.write(target.prepare(RECORD))
            assert "refused the sender desk@example.com: 530 5.7.0 Authentication required" in str(refused.value)
    assert not server.messages and server.pipelined_envelopes == 2


def test_a_refusal_at_the_end_of_the_data_is_the_messages_refusal(server) -> None:
    server.fail_next(1, 554, "5.7.1 Spam")
    with _target(server) as target:
        with pytest.raises(ConnectorError) as refused:
            target.write(target.prepare(RECORD))
        assert "refused the message: 554 5.7.1 Spam" in str(refused.value) and refused.value.permanent
        assert target.write(target.prepare(RECORD)).reply.startswith("250")
    assert len(server.messages) == 1


@pytest.mark.parametrize("pipelining", [True, False])
def test_a_server_closing_mid_envelope_is_its_421_and_the_next_message_connects_again(smtp_factory, pipelining):
    # 421 (closing) to the first RCPT: no reply comes to the rest, no command is sent after it, the
    # session is given up as a full server's, and the next message gets a connection of its own.
    server = smtp_factory("plain", pipelining=pipelining)
    server.reject_recipient("busy@example.com", code=421, text="4.7.0 Too many connections")
    with _target(server) as target:
        with pytest.raises(ConnectorError) as refused:
            target.write(target.prepare({**RECORD, "to": "busy@example.com, help@example.com"}))
        assert str(refused.value) == "the server is closing the connection: 421 4.7.0 Too many connections"
        assert not refused.value.permanent
        assert target.write(target.prepare(RECORD)).reply.startswith("250")
    assert [m.rcpt_tos for m in server.messages] == [("help@example.com",)]
