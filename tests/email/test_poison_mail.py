"""Messages that used to fail every run: delivery reports, forwarded messages, pathological HTML."""

from __future__ import annotations

import sysconfig
from pathlib import Path

import pytest

from connectors.email.message.build import build_message
from connectors.email.message.html import html_to_text
from connectors.email.message.parse import MAX_HEADERS, MessageTooComplex, parse_message

CPYTHON_SAMPLES = Path(sysconfig.get_paths()["stdlib"]) / "test" / "test_email" / "data"
MEGABYTES = 2 * 1024 * 1024


def _forward(raw: bytes) -> tuple[dict, dict]:
    """The record read from ``raw``, and the record read back from the message that forwards it."""
    record = parse_message(raw, uid=1, uidvalidity=1, folder="INBOX")
    outgoing = build_message(
        {"from": "desk@example.com", "to": "help@example.com", "subject": record["subject"],
         "text": record["text"], "html": record["html"], "attachments": record["attachments"]},
        message_id_domain="example.com",
    )
    sent = b"".join(outgoing.to_wire().chunks())
    return record, parse_message(sent, uid=2, uidvalidity=1, folder="INBOX")


def _dsn() -> bytes:
    return (
        b"From: MAILER-DAEMON@example.net\r\nTo: support@example.com\r\n"
        b"Subject: Undelivered Mail Returned to Sender\r\nMIME-Version: 1.0\r\n"
        b'Content-Type: multipart/report; report-type=delivery-status; boundary="b1"\r\n\r\n'
        b"--b1\r\nContent-Type: text/plain\r\n\r\nYour message could not be delivered.\r\n"
        b"--b1\r\nContent-Type: message/delivery-status\r\n\r\n"
        b"Reporting-MTA: dns; mx.example.net\r\n\r\nFinal-Recipient: rfc822; gone@example.org\r\n"
        b"Action: failed\r\nStatus: 5.1.1\r\n\r\n"
        b"--b1\r\nContent-Type: message/rfc822\r\n\r\n"
        b"From: support@example.com\r\nTo: gone@example.org\r\nSubject: Your ticket\r\n\r\nHello\r\n"
        b"--b1--\r\n"
    )


def test_it_forwards_a_delivery_status_notification_with_its_report_and_original() -> None:
    record, forwarded = _forward(_dsn())
    types = [a["content_type"] for a in record["attachments"]]
    assert types == ["message/delivery-status", "message/rfc822"]
    assert [a["content_type"] for a in forwarded["attachments"]] == types
    assert b"Status: 5.1.1" in forwarded["attachments"][0]["content"]
    assert b"Subject: Your ticket" in forwarded["attachments"][1]["content"]


@pytest.mark.skipif(not CPYTHON_SAMPLES.is_dir(), reason="CPython's email test data is not installed")
@pytest.mark.parametrize("sample", sorted(p.name for p in CPYTHON_SAMPLES.glob("msg_*.txt")))
def test_it_forwards_every_cpython_email_test_message(sample: str) -> None:
    record, forwarded = _forward((CPYTHON_SAMPLES / sample).read_bytes())
    assert [a["content_type"] for a in forwarded["attachments"]] == [
        a["content_type"] if not a["content_type"].startswith("message/") or a["content"].isascii()
        else "application/octet-stream"
        for a in record["attachments"]
    ]


def test_it_sends_an_eight_bit_forwarded_message_as_octets_not_base64_message() -> None:
    original = "Subject: café\r\n\r\nnaïve\r\n".encode()
    outgoing = build_message(
        {"from": "a@example.com", "to": "b@example.com", "text": "see attached",
         "attachments": [{"filename": "original.eml", "content_type": "message/rfc822", "content": original}]},
        message_id_domain="example.com",
    )
    sent = b"".join(outgoing.to_wire().chunks())
    assert b"Content-Type: application/octet-stream" in sent
    back = parse_message(sent, uid=1, uidvalidity=1, folder="INBOX")
    assert back["attachments"][0]["content"] == original


@pytest.mark.timeout(20)  # the quadratic scan took hours on these; linear, well under a second each
@pytest.mark.parametrize("shape", ["<a" + "b" * MEGABYTES, "<" * MEGABYTES, "<a " * (MEGABYTES // 3),
                                   "<!--" + "x" * MEGABYTES, "<script>" + "<a" * (MEGABYTES // 2),
                                   "</" + "a" * MEGABYTES, "<a<a" * (MEGABYTES // 4)])
def test_it_reads_pathological_html_in_linear_time(shape: str) -> None:
    html_to_text(shape)


def test_a_pathological_html_only_message_is_read_with_its_text() -> None:
    raw = (b"From: a@example.com\r\nSubject: x\r\nContent-Type: text/html\r\n\r\n<p>Hello</p><a"
           + b"b" * MEGABYTES + b"\r\n")
    record = parse_message(raw, uid=1, uidvalidity=1, folder="INBOX")
    assert record["text"].startswith("Hello")


def _many_parts(count: int) -> bytes:
    parts = b"".join(b"--b\r\nContent-Type: text/plain\r\n\r\nx\r\n" for _ in range(count))
    return b'From: a@example.com\r\nContent-Type: multipart/mixed; boundary="b"\r\n\r\n' + parts + b"--b--\r\n"


def test_a_message_with_too_many_parts_is_refused_with_the_reason(settings) -> None:
    settings.MAILWRIGHT_MAX_PARTS = 50
    parse_message(_many_parts(50), uid=1, uidvalidity=1, folder="INBOX")
    with pytest.raises(MessageTooComplex, match="more than 50 MIME parts"):
        parse_message(_many_parts(51), uid=1, uidvalidity=1, folder="INBOX")


def test_a_message_with_too_many_attachments_is_refused_with_the_reason(settings) -> None:
    settings.MAILWRIGHT_MAX_ATTACHMENTS = 10
    with pytest.raises(MessageTooComplex, match="more than 10 attachments"):
        parse_message(_many_parts(12), uid=1, uidvalidity=1, folder="INBOX")


def test_a_message_with_too_many_header_fields_is_refused_with_the_reason() -> None:
    raw = b"".join(b"X-Spam: %d\r\n" % n for n in range(MAX_HEADERS + 1)) + b"\r\nbody\r\n"
    with pytest.raises(MessageTooComplex, match=f"more than {MAX_HEADERS}"):
        parse_message(raw, uid=1, uidvalidity=1, folder="INBOX")
