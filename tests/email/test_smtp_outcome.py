"""The end of a message's data against a real aiosmtpd: slow replies, lost replies, time limits.

From the final dot on the server may have stored the message, so a missing reply is an unknown
outcome (``OutcomeUnknown``), never a failure to retry at once; and a slow reply gets the time
RFC 5321 gives it rather than the connection's read timeout.
"""

from __future__ import annotations

import dataclasses
import os
import socket
import sys
import threading
import time
from collections.abc import Iterator

import pytest

from connectors import net
from connectors.base import ConnectorError, OutcomeUnknown, register_stop_exception
from connectors.email.activities import parse_send_settings
from connectors.email.config import EmailConfig
from connectors.email.errors import translated
from connectors.email.target import EmailTarget
from tests.email.test_source_target import smtp_config
from tests.servers.smtp import SMTPServer

RECORD = {"from": "desk@example.com", "to": "help@example.com", "subject": "Ticket", "text": "Hello"}


def _target(config: EmailConfig, deadline: net.Deadline | None = None) -> EmailTarget:
    return EmailTarget(config, {}, parse_send_settings({}), deadline)


def _short_read_timeout(server: SMTPServer) -> EmailConfig:
    return dataclasses.replace(smtp_config(server), read_timeout=1)


def test_a_reply_slower_than_the_read_timeout_is_awaited_and_the_message_sent_once(
    smtp_server: SMTPServer, settings
) -> None:
    settings.MAILWRIGHT_SMTP_DATA_REPLY_TIMEOUT = 10
    server = smtp_server
    server.delay_replies(2.5)  # longer than the 1 s read timeout
    with _target(_short_read_timeout(server)) as target:
        delivery = target.write(target.prepare(RECORD))
    assert delivery.reply.startswith("250")
    assert len(server.messages) == 1


def test_no_reply_within_the_data_reply_timeout_is_an_unknown_outcome(smtp_server: SMTPServer, settings) -> None:
    settings.MAILWRIGHT_SMTP_DATA_REPLY_TIMEOUT = 1
    server = smtp_server
    server.delay_replies(3)
    with _target(_short_read_timeout(server)) as target, pytest.raises(OutcomeUnknown) as raised:
        target.write(target.prepare(RECORD))
    assert "may have accepted" in str(raised.value)
    assert len(server.messages) == 1  # stored: resending now would duplicate it


def test_a_connection_dropped_after_the_final_dot_is_an_unknown_outcome(smtp_server: SMTPServer) -> None:
    server = smtp_server
    server.drop_next()
    with _target(smtp_config(server)) as target, pytest.raises(OutcomeUnknown):
        target.write(target.prepare(RECORD))


def test_a_refusal_before_the_data_ends_stays_an_ordinary_failure(smtp_server: SMTPServer) -> None:
    server = smtp_server
    server.fail_next(code=451)
    with _target(smtp_config(server)) as target, pytest.raises(ConnectorError) as raised:
        target.write(target.prepare(RECORD))
    assert not isinstance(raised.value, OutcomeUnknown) and not raised.value.permanent


class _Stop(Exception):  # noqa: N818 - stands for Celery's SoftTimeLimitExceeded
    pass


def test_a_stop_exception_passes_through_untranslated(smtp_server: SMTPServer) -> None:
    register_stop_exception(_Stop)
    server = smtp_server
    with pytest.raises(_Stop), translated(smtp_config(server).smtp, "DATA", 5):
        raise _Stop()


@pytest.fixture
def trickling_server() -> Iterator[tuple[str, int]]:
    """A loopback server that sends its greeting one byte a while, never ending the line."""
    listener = socket.create_server(("127.0.0.1", 0))
    stop = threading.Event()

    def serve() -> None:
        listener.settimeout(0.2)
        while not stop.is_set():
            try:
                conn, _ = listener.accept()
            except TimeoutError:
                continue
            with conn:
                while not stop.is_set():
                    try:
                        conn.sendall(b"2")
                    except OSError:
                        break
                    time.sleep(0.3)

    thread = threading.Thread(target=serve, daemon=True)
    thread.start()
    yield listener.getsockname()
    stop.set()
    thread.join()
    listener.close()


@pytest.mark.timeout(30)
def test_a_trickling_server_cannot_hold_a_run_past_its_deadline(trickling_server, smtp_server: SMTPServer) -> None:
    host, port = trickling_server
    config = smtp_config(smtp_server)
    config = dataclasses.replace(config, smtp=dataclasses.replace(config.smtp, port=port), read_timeout=1)
    started = time.monotonic()
    with net.Deadline(2) as deadline, _target(config, deadline) as target, pytest.raises(ConnectorError):
        target.write(target.prepare(RECORD))
    assert time.monotonic() - started < 10


def test_with_written_the_message_is_let_go_of_before_the_reply_and_arrives_whole(smtp_server: SMTPServer) -> None:
    server = smtp_server
    server.delay_replies(0.5)  # the server decides a while: the message must not be held meanwhile
    content = os.urandom(300 * 1024)
    held_at_written: list[int] = []
    with _target(smtp_config(server)) as target:
        prepared = target.prepare({**RECORD, "attachments": [{"filename": "a.bin", "content": content}]})
        prepared.record["attachments"] = []  # the engine's part (``lookahead.let_go``): not the target's

        def written() -> None:
            held_at_written.append(sys.getrefcount(content) - 2)  # less this test's name and the argument
            assert not server.messages  # before the reply

        delivery = target.write(prepared, written)
        with pytest.raises(ConnectorError, match="let go of"):
            target.write(prepared)  # what was let go of cannot be sent again: the engine reads it again
    assert delivery.reply.startswith("250")
    assert held_at_written == [0]  # neither the built message nor its wire held the attachment
    [received] = server.messages
    [attachment] = received.message.iter_attachments()
    assert attachment.get_content() == content
