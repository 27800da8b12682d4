"""Outgoing headers written without the email package's header registry: what readers make of them."""

from __future__ import annotations

from email import message_from_bytes
from email.policy import default as default_policy

import pytest

from connectors.email.message import outgoing_headers as oh
from connectors.email.message.build import HeaderInjection, InvalidMessage, build_message
from connectors.email.message.parse import parse_message


def read(*fields: tuple[str, str]) -> object:
    """The headers as the stdlib's strict reader sees them."""
    raw = "".join(oh.field(name, value) for name, value in fields) + "\r\nbody\r\n"
    return message_from_bytes(raw.encode("ascii"), policy=default_policy)


def lines(value: str, name: str) -> list[str]:
    return oh.field(name, value).removesuffix("\r\n").split("\r\n")


def test_short_ascii_text_is_written_as_it_is() -> None:
    assert oh.unstructured("Subject", "Printer jammed (floor 3)") == "Printer jammed (floor 3)"
    assert oh.addresses("To", [("", "bob@example.org")]) == "bob@example.org"
    assert oh.addresses("To", [("Bob Smith", "bob@example.org")]) == "Bob Smith <bob@example.org>"


@pytest.mark.parametrize("subject", [
    "Grüße aus Köln",
    "Fwd: Question 5 — Grüße",
    "Привет мир, это длинная тема письма, которая должна быть сложена в несколько строк",
    "日本語の件名です。" * 8,
    "Grüße — a long subject " + "x" * 100,
    " ".join(["mixed ascii words then ünïcödé then ascii again"] * 4),
    "=?utf-8?q?not_an_encoded_word?= written by a person",
    "tab\tand  double  spaces kept",
    "a control \x01 character",
])
def test_subjects_round_trip_through_the_stdlib_and_our_reader(subject: str) -> None:
    value = oh.unstructured("Subject", subject)

    assert value.isascii()
    assert all(len(line) <= oh.LIMIT for line in lines(value, "Subject"))
    assert str(read(("Subject", value))["Subject"]) == subject
    raw = (oh.field("From", "a@example.com") + oh.field("Subject", value) + "\r\nx\r\n").encode("ascii")
    record = parse_message(raw, uid=1, uidvalidity=1, folder="INBOX")
    assert record["subject"] == subject.replace("\x01", " ")  # our reader replaces control characters


def test_a_long_subject_is_folded_at_78_characters_at_whitespace() -> None:
    subject = "Fwd: Question 5 about the printer on the third floor which is jammed again and again"

    folded = lines(oh.unstructured("Subject", subject), "Subject")

    assert len(folded) == 2 and all(len(line) <= 78 for line in folded)
    assert folded[1].startswith(" ")
    assert "".join(folded).removeprefix("Subject: ") == subject  # unfolding gives the text back


def test_non_ascii_display_names_are_encoded_words() -> None:
    value = oh.addresses("From", [("Jörg Müller", "jorg@example.de")])

    assert value.startswith("=?utf-8?") and value.endswith(" <jorg@example.de>")
    address = read(("From", value))["From"].addresses[0]
    assert (address.display_name, address.addr_spec) == ("Jörg Müller", "jorg@example.de")


def test_address_lists_quote_specials_and_fold_between_addresses() -> None:
    mailboxes = [("Doe, Jane", "jane@example.com"), ("", "bob@example.org"),
                 ("Müller, Jörg", "m@xn--bcher-kva.example"), ('Ann "the boss" O\'Neil', "ann@example.com"),
                 ("Bob Smith", "bob.smith@example.com"), ("Customer 5", "customer5@example.org")]

    value = oh.addresses("To", mailboxes)

    assert '"Doe, Jane" <jane@example.com>' in value
    assert all(len(line) <= oh.LIMIT for line in lines(value, "To"))
    parsed = read(("To", value))["To"].addresses
    assert [(a.display_name, a.addr_spec) for a in parsed] == mailboxes
    raw = (oh.field("From", "a@example.com") + oh.field("To", value) + "\r\nx\r\n").encode("ascii")
    record = parse_message(raw, uid=1, uidvalidity=1, folder="INBOX")
    assert record["to"][0] == '"Doe, Jane" <jane@example.com>'
    assert record["to"][2] == '"Müller, Jörg" <m@xn--bcher-kva.example>'


def test_message_ids_are_kept_as_given_and_folded_between_ids() -> None:
    ids = [f"<reference-{n}@mail.example.com>" for n in range(8)]

    value = oh.message_ids("References", ids)

    assert all(len(line) <= oh.LIMIT for line in lines(value, "References"))
    assert value.replace("\r\n", "").split() == ids
    assert oh.message_ids("Message-ID", ["<abc@example.com>"]) == "<abc@example.com>"


@pytest.mark.parametrize("filename", ["report.pdf", 'a "quoted" name.txt', "résumé.pdf", "ä" * 80 + ".pdf"])
def test_file_names_round_trip(filename: str) -> None:
    value = oh.disposition(filename)

    assert all(len(line) <= oh.LIMIT for line in lines(value, "Content-Disposition"))
    raw = ("Content-Type: application/pdf\r\nContent-Disposition: " + value + "\r\n\r\nx\r\n").encode("ascii")
    assert message_from_bytes(raw, policy=default_policy).get_filename() == filename


@pytest.mark.parametrize("value", ["Hello\r\nBcc: victim@example.com", "Hello\nBcc: v@example.com", "Hi\rthere"])
def test_line_breaks_are_refused_everywhere(value: str) -> None:
    # fields refuses them before outgoing_headers writes a value; the policy refuses any that get past.
    for record in ({"subject": value}, {"from": f'"{value}" <a@example.com>'}, {"to": f"{value} <b@example.com>"},
                   {"references": [f"<{value}@x>"]}, {"headers": {"X-Note": value}},
                   {"attachments": [{"filename": value, "content": b"x"}]}):
        with pytest.raises(InvalidMessage, match=r"contains a line break \(header injection\)$"):
            build_message({"from": "a@example.com", "to": "b@example.com", **record},
                          message_id_domain="mailwright.test")


def test_other_line_separators_travel_inside_encoded_words() -> None:
    # Unicode line separators are not line breaks on the wire, but a lenient reader may split on them.
    value = oh.unstructured("X-Note", "one\u2028two\x0bthree\x85four")

    assert value.isascii() and value.isprintable()
    assert str(read(("X-Note", value))["X-Note"]) == "one\u2028two\x0bthree\x85four"


def test_a_built_message_carries_the_headers_in_wire_form() -> None:
    out = build_message({"from": "Jörg Müller <jorg@example.de>", "to": '"Doe, Jane" <jane@example.com>',
                         "subject": "Grüße " + "lang " * 30, "text": "Hallo ✓\n",
                         "headers": {"Sender": "Desk <desk@example.com>", "X-Ticket": "Ünïcödé"}},
                        message_id_domain="mailwright.test")
    sent = b"".join(out.to_wire().chunks())
    head = sent.split(b"\r\n\r\n", 1)[0]

    assert head.isascii() and all(len(line) <= 78 for line in head.split(b"\r\n"))
    strict = message_from_bytes(sent, policy=default_policy)
    assert not strict.defects
    assert str(strict["Subject"]) == "Grüße " + "lang " * 29 + "lang"  # trailing whitespace is not kept
    assert strict["From"].addresses[0].display_name == "Jörg Müller"
    assert str(strict["X-Ticket"]) == "Ünïcödé"
    assert strict["Message-ID"] == out.message_id
    assert strict.get_content().replace("\r\n", "\n") == "Hallo ✓\n"  # the stdlib keeps the wire's CRLF
    # The message object still answers like one the registry built (previews read it).
    assert out.message["From"].addresses[0].display_name == "Jörg Müller"
    assert out.message["Subject"] == str(strict["Subject"])


def test_a_header_set_later_cannot_smuggle_a_line_break() -> None:
    out = build_message({"from": "a@example.com", "to": "b@example.com"}, message_id_domain="mailwright.test")

    with pytest.raises(HeaderInjection):
        out.message["X-Late"] = "x\r\nBcc: victim@example.com"
    with pytest.raises(HeaderInjection):
        out.message.replace_header("Message-ID", "<a@b>\rBcc: victim@example.com")
    out.message["X-Folded"] = "a\r\n b"  # a folded value is fine
