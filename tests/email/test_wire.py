"""The wire form of built messages: written directly, byte for byte what the email package writes."""

from __future__ import annotations

import dataclasses
from email.contentmanager import _encode_base64

import pytest

from connectors.email.message.build import OutgoingMessage, build_message
from connectors.email.target import _with_message_id

RECORD = {"from": "Jörg <a@example.com>", "to": "b@example.com", "subject": "Grüße", "text": "one\r\ntwo\n.three\n",
          "html": "<p>x</p>", "attachments": [{"filename": "a.bin", "content": b"\x00" * 100}]}


def sent(out: OutgoingMessage) -> bytes:
    return b"".join(out.to_wire().chunks())


def as_bytes(out: OutgoingMessage) -> bytes:
    """What the email package writes for ``out``, its attachments in place."""
    placeholders = [(part, part.get_payload()) for part in out.message.iter_attachments()]
    try:
        for (part, _), content in zip(placeholders, out.attachments, strict=True):
            part.set_payload(_encode_base64(content, 78))
        return out.message.as_bytes()
    finally:
        for part, payload in placeholders:
            part.set_payload(payload)


def test_a_message_id_set_after_building_is_the_one_sent() -> None:
    out = _with_message_id(build_message(RECORD, message_id_domain="example.com"), "<given@example.net>")

    assert b"\r\nMessage-ID: <given@example.net>\r\n" in b"\r\n" + sent(out)
    assert sent(out) == as_bytes(out)


@pytest.mark.parametrize("change", [
    lambda message: setattr(message, "epilogue", "after the parts"),
    lambda message: message.add_header("X-Note", "not in wire form: ü"),
    lambda message: message.replace_header("Content-Type", 'multipart/mixed; boundary="theirs"'),
    lambda message: message.get_payload()[0].set_payload(None),
    lambda message: message.get_payload()[0].set_payload("a multipart holding text\n"),
    lambda message: message.get_payload()[0].get_payload()[1].set_payload("8-bit text: ü"),
])
def test_a_message_changed_after_building_is_written_by_the_email_package(change: object) -> None:
    out = build_message(RECORD, message_id_domain="example.com")
    change(out.message)  # type: ignore[operator]

    try:
        expected = as_bytes(out)
    except UnicodeEncodeError:
        with pytest.raises(UnicodeEncodeError):
            sent(out)
    else:
        assert sent(out) == expected


def test_an_unchanged_message_gives_the_same_bytes_every_time() -> None:
    out = build_message(RECORD, message_id_domain="example.com")

    assert sent(out) == sent(dataclasses.replace(out)) == as_bytes(out)


def test_a_large_attachment_is_written_in_slices_a_sender_can_hold_beside_a_large_message() -> None:
    # Each sender holds a slice, its lines and the slice before it while it writes: at ~78 KB a
    # slice, four senders peaked half a megabyte above the messages themselves.
    record = {**RECORD, "attachments": [{"filename": "big.bin", "content": bytes(range(256)) * 4001}]}
    out = build_message(record, message_id_domain="example.com")

    chunks = list(out.to_wire().chunks())

    assert max(map(len, chunks)) <= 24 * 1024
    assert b"".join(chunks) == as_bytes(out)
