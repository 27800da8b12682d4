"""Reading hostile mail into records and building outgoing messages from records. No network."""

from __future__ import annotations

import base64
import random
import time
import tracemalloc
from email import message_from_bytes
from email.message import Message
from email.policy import default as default_policy

import pytest

from connectors.email.message.build import InvalidMessage, OutgoingMessage, build_message
from connectors.email.message.html import html_to_text
from connectors.email.message.parse import RECORD_KEYS, parse_message
from connectors.email.message.setaside import StreamedMessage
from tests.email import hostile_mail as hostile


def parse(raw: bytes, **options: object) -> dict:
    return parse_message(raw, uid=7, uidvalidity=99, folder="INBOX", **options)


def build(record: dict, **options: object) -> OutgoingMessage:
    return build_message(record, message_id_domain="mailwright.test", **options)


def sent_bytes(out: OutgoingMessage) -> bytes:
    """What DATA carries for a built message."""
    return b"".join(out.to_wire().chunks())


def defects_about(record: dict, text: str) -> list[str]:
    return [d for d in record["defects"] if text in d]


# --- reading: the record


def test_it_returns_the_source_record_of_a_plain_message() -> None:
    record = parse(hostile.plain(), flags=("\\Seen", b"\\Flagged"))

    assert tuple(record) == RECORD_KEYS
    assert record["uid"] == 7
    assert record["uidvalidity"] == 99
    assert record["folder"] == "INBOX"
    assert record["message_id"] == "<plain-1@example.com>"
    assert record["from"] == "Jane Doe <jane@example.com>"
    assert record["to"] == ["bob@example.org"]
    assert record["cc"] == []
    assert record["subject"] == "Quarterly figures"
    assert record["date"] == "2024-03-01T09:30:00+00:00"
    assert record["text"] == "Hello Bob,\nthe figures are attached — or not.\n"
    assert record["html"] == ""
    assert record["headers"][0] == ["From", "Jane Doe <jane@example.com>"]
    assert record["attachments"] == []
    assert record["size"] == len(hostile.plain())
    assert record["flags"] == ["\\Seen", "\\Flagged"]
    assert record["defects"] == []


def test_it_reads_nested_multiparts_with_inline_images_and_attached_messages() -> None:
    record = parse(hostile.nested())

    assert record["to"] == ["Bob <bob@example.org>", "carol@example.net"]
    assert record["cc"] == ['"Doe, John" <john@example.com>']
    assert record["reply_to"] == ["replies@example.com"]
    assert record["in_reply_to"] == "<parent@example.com>"
    assert record["references"] == ["<root@example.com>", "<parent@example.com>"]
    assert record["date"] == "2024-03-02T13:00:00+00:00"
    assert record["text"] == "Grüße, see the logo"
    assert record["html"] == '<html><body><p>Grüße, see <img src="cid:logo@x"></p></body></html>'
    image, pdf, attached = record["attachments"]
    assert image == {
        "filename": "part-3.png",
        "content_type": "image/png",
        "size": len(hostile.PNG),
        "content": hostile.PNG,
    }
    assert pdf == {
        "filename": "report.pdf",
        "content_type": "application/pdf",
        "size": len(hostile.PDF),
        "content": hostile.PDF,
    }
    assert attached["filename"] == "part-5.eml"
    assert attached["content_type"] == "message/rfc822"
    # Byte for byte what was attached: not re-serialised.
    assert (
        attached["content"]
        == b"From: carol@example.net\r\nSubject: Original\r\nContent-Type: text/plain\r\n\r\nInner body\r\n"
    )
    assert record["defects"] == []


def test_it_renders_text_from_html_when_there_is_no_plain_body() -> None:
    record = parse(hostile.html_only())

    assert record["html"].startswith("<html>")
    assert record["text"] == "Invoice\n\nTotal: 12€\n\n- one\n\n- two\n\nBye"


def test_it_renders_hostile_html_without_losing_the_text() -> None:
    assert html_to_text("a < b and <b>c</b> &lt;d&gt;") == "a < b and c <d>"
    assert html_to_text("<head><title>x</title>Body without closing head") == "Body without closing head"
    assert html_to_text("<p>one<script>never closed") == "one"
    assert html_to_text("<![if !supportLists]>item<![endif]>") == "item"


# --- reading: headers


def test_it_decodes_encoded_words_across_charsets_and_folds() -> None:
    record = parse(hostile.encoded_words())

    assert record["from"] == "Jörg Müller <jorg@example.de>"
    # The display name decodes to "Doe, Jane": split first, then decode, then quote.
    assert record["to"] == ['"Doe, Jane" <jane@example.com>', "Спасибо <ivan@example.ru>"]
    # A euro sign split over two encoded words, then a Q word with raw spaces.
    assert record["subject"] == "Price €5 and a Q word with spaces"
    assert ["X-Folded", "folded across lines"] in record["headers"]
    assert record["defects"] == []


def test_it_uses_replacement_characters_for_an_unknown_charset_in_a_header() -> None:
    record = parse(hostile.unknown_charset_word())

    assert record["subject"] == "caf\ufffd ok"
    assert defects_about(record, "unknown charset 'x-unknown'")


def test_it_reads_raw_8bit_headers_as_utf8_or_windows_1252() -> None:
    record = parse(hostile.raw_8bit_headers())

    assert record["from"] == "Jörg Müller <jorg@example.de>"
    assert record["subject"] == "Grüße aus Köln"
    assert record["to"] == ["André <andre@example.fr>"]
    assert ["X-Latin", "déjà vu"] in record["headers"]
    assert defects_about(record, "To: 8-bit text that is not utf-8")


def test_it_replaces_control_characters_an_encoded_header_smuggles() -> None:
    record = parse(hostile.encoded_crlf_subject())

    assert record["subject"] == "Hi  Bcc: victim@example.com"
    assert "\r" not in str(record["headers"]) and "\n" not in str(record["headers"])
    assert defects_about(record, "Subject: control characters replaced")


def test_it_handles_an_extremely_long_header_line() -> None:
    started = time.perf_counter()
    record = parse(hostile.long_header(200_000))

    assert record["subject"] == "x" * 200_000
    assert dict(record["headers"])["X-Long"] == "y" * 1000
    assert time.perf_counter() - started < 2


def test_it_keeps_duplicate_headers_and_uses_the_first_of_a_single_one() -> None:
    record = parse(hostile.duplicate_headers())

    assert record["from"] == "first@example.com"
    assert record["subject"] == "first subject"
    assert record["date"] == "2024-03-04T12:00:00+00:00"
    assert record["to"] == ["one@example.com", "two@example.com"]
    assert [name for name, _ in record["headers"]].count("Subject") == 2
    assert defects_about(record, "Subject: 2 headers (the first is used)")
    assert defects_about(record, "To: 2 headers (all of them are used)")


@pytest.mark.parametrize(
    ("header", "expected"),
    [
        ("Mon, 04 Mar 2024 12:00:00 +0200", "2024-03-04T10:00:00+00:00"),
        ("4 Mar 2024 12:00:00 -0000", "2024-03-04T12:00:00+00:00"),
        ("Mon, 04 Mar 24 12:00 GMT", "2024-03-04T12:00:00+00:00"),
    ],
)
def test_it_normalises_dates_to_utc(header: str, expected: str) -> None:
    record = parse(hostile.message([("From", "a@example.com"), ("Date", header)], b"x"))

    assert record["date"] == expected


def test_it_keeps_an_unparseable_date_as_text_and_a_missing_one_empty() -> None:
    record = parse(hostile.bad_date())

    assert record["date"] == "the day after tomorrow"
    assert defects_about(record, "Date: not a valid date")
    assert parse(hostile.plain().replace(b"Date:", b"X-Date:"))["date"] == ""


def test_it_keeps_unreadable_addresses_as_text_and_empty_groups_as_nothing() -> None:
    record = parse(hostile.unparseable_addresses())

    assert record["from"] == ""
    assert record["to"] == []
    assert record["cc"] == ["unterminated <x"]


# --- reading: bodies and structure


def test_it_decodes_rfc2231_and_rfc2047_file_names() -> None:
    record = parse(hostile.rfc2231_filename())

    names = [a["filename"] for a in record["attachments"]]
    assert names == ["naïve résumé.pdf", "Grüsse.csv", "éclair.png", "part-5.bin"]
    # The last one mixes RFC 2231 continuations in a way the stdlib cannot sort out.
    assert defects_about(record, "part 5: unreadable Content-Disposition parameters")


@pytest.mark.parametrize(
    ("charset", "data", "text"),
    [
        ("utf8", "é€".encode(), "é€"),
        ("latin1", b"caf\xe9", "café"),
        ("iso-8859-1", b"\x93quoted\x94", "“quoted”"),  # windows-1252 bytes under a latin-1 label
        ("x-user-defined", b"\x93q\x94", "“q”"),
        ("unknown-8bit", "déjà".encode(), "déjà"),
        ("unknown-8bit", b"d\xe9j\xe0", "déjà"),
        ("gb2312", "朱镕基".encode("gbk"), "朱镕基"),  # 镕 is GBK, not GB2312
        ('"UTF-8"', "é".encode(), "é"),
        ("us-ascii", "naïve".encode(), "naïve"),
        ("x-unknown", b"ok \xff", "ok \ufffd"),
        ("base64", b"abc", "abc"),  # a Python codec, but not a charset
        ("utf-8", b"bad \xe9 byte", "bad \ufffd byte"),
    ],
)
def test_it_decodes_bodies_in_misspelt_or_unknown_charsets(charset: str, data: bytes, text: str) -> None:
    record = parse(hostile.body_in_charset(charset, data))

    assert record["text"] == text


def test_it_decodes_broken_base64_as_far_as_it_goes() -> None:
    record = parse(hostile.broken_base64())

    assert record["text"] == "Hello world"
    assert record["attachments"][0]["content"] == b"helloworld"
    assert defects_about(record, "part 1: invalid characters in base64")
    assert defects_about(record, "part 2: base64 padding in the middle")
    assert defects_about(record, "base64 cut short")


def test_it_keeps_invalid_quoted_printable_escapes() -> None:
    record = parse(hostile.broken_quoted_printable())

    assert record["text"] == "café =ZZ softbreak "
    assert defects_about(record, "invalid quoted-printable escapes")


def test_it_guesses_a_missing_boundary_from_the_body() -> None:
    record = parse(hostile.missing_boundary())

    assert record["text"] == "found me"
    assert [a["content"] for a in record["attachments"]] == [hostile.PNG]
    assert defects_about(record, "boundary missing or wrong (guessed from the body)")


def test_it_guesses_the_boundary_when_the_declared_one_never_appears() -> None:
    record = parse(hostile.wrong_boundary())

    assert record["html"] == "<p>html</p>"
    assert record["text"] == "html"


def test_it_reads_a_multipart_without_any_boundary_as_text() -> None:
    record = parse(hostile.boundary_unguessable())

    assert record["text"] == "just text\n"
    assert defects_about(record, "without a usable boundary (read as text/plain)")


def test_it_keeps_the_parts_of_an_unterminated_multipart() -> None:
    record = parse(hostile.unterminated_multipart())

    assert record["text"] == "first part"
    (pdf,) = record["attachments"]
    assert hostile.PDF.startswith(pdf["content"])
    assert defects_about(record, "not the corresponding close boundary")


def test_it_reads_a_message_without_content_type_as_text() -> None:
    assert parse(hostile.missing_content_type())["text"] == "naïve UTF-8 body"
    record = parse(hostile.invalid_content_type())
    assert record["text"] == "text anyway"
    assert defects_about(record, "invalid Content-Type")


def test_it_returns_a_record_for_an_empty_message_and_a_headers_only_one() -> None:
    empty = parse(hostile.empty())
    assert tuple(empty) == RECORD_KEYS
    assert (empty["from"], empty["subject"], empty["text"], empty["size"]) == ("", "", "", 0)
    assert empty["defects"] == ["message: empty"]

    headers_only = parse(hostile.headers_only())
    assert headers_only["subject"] == "no body"
    assert headers_only["text"] == ""


def test_it_replaces_nul_bytes() -> None:
    record = parse(hostile.nul_bytes())

    assert record["subject"] == "nul here"
    assert record["text"] == "before\ufffdafter\n"
    assert defects_about(record, "NUL characters replaced")


def test_it_survives_nesting_deeper_than_the_parser_can_follow() -> None:
    record = parse(hostile.deeply_nested(3000))

    assert record["from"] == "a@example.com"
    assert "deep" in record["text"]
    assert defects_about(record, "MIME nesting too deep")


def test_it_decodes_an_attached_message_sent_in_base64() -> None:
    record = parse(hostile.base64_attached_message())

    (attached,) = record["attachments"]
    assert attached["content_type"] == "message/rfc822"
    assert attached["content"] == b"From: inner@example.com\r\nSubject: inside\r\n\r\ninner body\r\n"


def test_it_lists_attachments_without_content_when_asked() -> None:
    record = parse(hostile.nested(), include_attachments=False)

    assert [a["content"] for a in record["attachments"]] == [None, None, None]
    assert record["attachments"][1]["size"] == len(hostile.PDF)
    assert "skipped" not in record["attachments"][1]


def test_it_skips_attachments_larger_than_the_limit() -> None:
    limit = len(hostile.PDF)
    assert len(hostile.PNG) > limit

    record = parse(hostile.nested(), max_attachment_bytes=limit)

    image, pdf, _attached = record["attachments"]
    assert pdf["content"] == hostile.PDF
    assert "skipped" not in pdf
    assert image["content"] is None
    assert image["size"] == len(hostile.PNG)
    assert image["skipped"] == f"larger than {limit} bytes"


def test_it_caps_the_list_of_defects() -> None:
    parts_with_bad_charset = [
        hostile.part([("Content-Type", f"text/plain; charset=nope{i}"), ("Content-Transfer-Encoding", "x-what")], b"x")
        for i in range(300)
    ]
    raw = hostile.message(
        [("Content-Type", "multipart/mixed; boundary=m")], hostile.multipart("mixed", "m", parts_with_bad_charset)
    )

    record = parse(raw)

    assert len(record["defects"]) == 101
    assert record["defects"][-1].endswith("more defects not listed")


def test_it_parses_a_1mb_attachment_in_linear_time_and_memory() -> None:
    raw = hostile.large_attachment(1_000_000)
    parse(raw)  # warm up imports and caches

    started = time.perf_counter()
    tracemalloc.start()
    try:
        record = parse(raw)
        _, peak = tracemalloc.get_traced_memory()
    finally:
        tracemalloc.stop()

    assert record["attachments"][0]["size"] == 1_000_000
    assert record["attachments"][0]["content"][:4] == bytes(range(4))
    # The stdlib parser alone peaks near 8x the message; decoding must stay below that.
    assert peak < 12 * len(raw)
    assert time.perf_counter() - started < 5


def _mutate(rng: random.Random, data: bytes) -> bytes:
    tokens = [
        b"=?",
        b"?=",
        b"=?utf-8?b?",
        b"\r\n",
        b"\r\n\r\n",
        b"\x00",
        b"\xff",
        b"--",
        b"--mix",
        b"\r\n ",
        b"=\r\n",
        b"Content-Type: multipart/mixed; boundary=",
        b"Content-Type: message/rfc822\r\n\r\n",
        b"filename*0*=",
        b"Content-Transfer-Encoding: base64\r\n",
        b"charset=\xe9",
        b"<script",
        b"<!--",
        b";",
        b'"',
        b"'",
    ]
    out = bytearray(data)
    for _ in range(rng.randint(1, 6)):
        at = rng.randrange(len(out) + 1)
        operation = rng.randrange(5)
        if operation == 0 and out:
            out[min(at, len(out) - 1)] = rng.randrange(256)
        elif operation == 1:
            out[at:at] = rng.choice(tokens)
        elif operation == 2:
            del out[at : at + rng.randint(1, 64)]
        elif operation == 3:
            del out[at:]
        else:
            start = rng.randrange(len(out) + 1)
            out[at:at] = out[start : start + rng.randint(1, 200)]
    return bytes(out)


def test_it_never_raises_on_mutated_or_truncated_messages() -> None:
    rng = random.Random(20240301)
    seeds = hostile.seeds()
    for _ in range(300):
        raw = _mutate(rng, rng.choice(seeds))

        record = parse(raw, max_attachment_bytes=100)

        assert tuple(record) == RECORD_KEYS, raw
        assert isinstance(record["text"], str) and isinstance(record["subject"], str)
        assert all(isinstance(a["size"], int) for a in record["attachments"])


# --- building


def test_it_builds_a_text_message_with_id_date_and_envelope() -> None:
    out = build({"from": "Jane <jane@example.com>", "to": "bob@example.org", "subject": "Hi", "text": "Hello\n"})

    message = out.message
    assert message.get_content_type() == "text/plain"
    assert message.get_content() == "Hello\n"
    assert message["From"] == "Jane <jane@example.com>"
    assert message["Message-ID"] == out.message_id
    assert out.message_id.startswith("<") and out.message_id.endswith("@mailwright.test>")
    assert message["Date"]
    assert out.sender == "jane@example.com"
    assert out.recipients == ["bob@example.org"]


def test_it_builds_html_only_alternative_and_mixed_structures() -> None:
    base = {"from": "a@example.com", "to": "b@example.com"}

    assert build({**base, "html": "<p>x</p>"}).message.get_content_type() == "text/html"
    both = build({**base, "text": "x", "html": "<p>x</p>"}).message
    assert both.get_content_type() == "multipart/alternative"
    assert [p.get_content_type() for p in both.iter_parts()] == ["text/plain", "text/html"]
    mixed = build({**base, "text": "x", "html": "<p>x</p>", "attachments": [{"filename": "a.pdf", "content": b"%PDF"}]})
    assert [p.get_content_type() for p in mixed.message.iter_parts()] == ["multipart/alternative", "application/pdf"]


def test_it_keeps_bcc_out_of_the_headers_but_in_the_envelope() -> None:
    out = build(
        {
            "from": "a@example.com",
            "to": ["b@example.com"],
            "cc": "c@example.com, B@example.com",
            "bcc": "hidden@example.com",
        }
    )

    assert "Bcc" not in out.message
    assert b"hidden" not in sent_bytes(out)
    assert out.recipients == ["b@example.com", "c@example.com", "hidden@example.com"]


def test_it_takes_defaults_for_empty_fields_only() -> None:
    defaults = {"from": "robot@example.com", "subject": "Default subject", "cc": "audit@example.com"}

    out = build({"from": "", "to": "b@example.com", "subject": "Mine", "cc": []}, defaults=defaults)

    assert out.sender == "robot@example.com"
    assert out.message["Subject"] == "Mine"
    assert out.message["Cc"] == "audit@example.com"


def test_it_accepts_idn_domains_and_quoted_names() -> None:
    out = build({"from": '"Doe, Jane" <jane@example.com>', "to": "Jörg <jorg@bücher.de>"})

    assert out.recipients == ["jorg@xn--bcher-kva.de"]
    assert out.message["From"].addresses[0].display_name == "Doe, Jane"


@pytest.mark.parametrize(
    ("record", "error"),
    [
        ({"to": "b@example.com"}, "from: one sender address is required"),
        ({"from": "a@example.com, c@example.com", "to": "b@example.com"}, "from: only one address allowed"),
        ({"from": "a@example.com"}, "to: at least one recipient is required (in to, cc or bcc)"),
        ({"from": "a@example.com", "to": "bob@"}, "to: 'bob@' is not a valid address"),
        ({"from": "a@example.com", "to": "ok@example.com, bob@"}, "to: 'bob@' is not a valid address"),
        ({"from": "a@example.com", "to": "bob"}, "to: 'bob' is not a valid address"),
        ({"from": "a@example.com", "to": "a@b@example.com"}, "to: 'a@b@example.com' is not a valid address"),
        (
            {"from": "a@example.com", "cc": "Jane Doe jane@example.org"},
            "cc: 'Jane Doe jane@example.org' is not a valid address",
        ),
        ({"from": "a@example.com", "to": "x@-bad-.com"}, "to: 'x@-bad-.com' is not a valid address"),
        ({"from": "a@example.com", "to": "x@nodot"}, "to: 'x@nodot' is not a valid address"),
        ({"from": "a@example.com", "to": "x..y@example.com"}, "to: 'x..y@example.com' is not a valid address"),
        ({"from": "a@example.com", "bcc": ["ok@example.com", 42]}, "bcc: 42 is not an address"),
        # An IPv6 zone id can hold any text (RFC 5321's address literals have none): refused.
        ({"from": "a@example.com", "to": "a@[fe80::1%ü x]"}, "to: 'a@[fe80::1%ü x]' is not a valid address"),
        ({"from": "a@example.com", "to": "a@[fe80::1%<x>]"}, "to: 'a@[fe80::1%<x>]' is not a valid address"),
        ({"from": "a@example.com", "to": "N <a@[fe80::1%x>]>"}, "to: 'N <a@[fe80::1%x>]>' is not a valid address"),
        ({"from": "a@example.com", "to": "a@[fe80::1%eth0]"}, "to: 'a@[fe80::1%eth0]' is not a valid address"),
        (
            {"from": "a@example.com", "to": "b@example.com", "reply_to": "nope"},
            "reply_to: 'nope' is not a valid address",
        ),
    ],
)
def test_it_rejects_missing_and_invalid_addresses(record: dict, error: str) -> None:
    with pytest.raises(InvalidMessage) as raised:
        build(record)

    assert str(raised.value) == error
    assert raised.value.field == error.split(":")[0]


def test_an_address_text_is_checked_the_same_in_every_field_and_every_time() -> None:
    # fields remembers what each address text holds: the answer must not depend on the field or the turn.
    text = '"Doe, Jane" <jane@example.com>, bob@example.org'
    for _ in range(2):
        out = build({"from": "a@example.com", "to": text, "reply_to": text, "headers": {"Resent-To": text}})
        assert out.recipients == ["jane@example.com", "bob@example.org"]
        assert out.message["To"] == out.message["Reply-To"] == out.message["Resent-To"] == text
        for field in ("cc", "bcc"):
            with pytest.raises(InvalidMessage, match=rf"^{field}: 'bob@' is not a valid address$"):
                build({"from": "a@example.com", "to": text, field: f"{text}, bob@"})


@pytest.mark.parametrize(
    ("field", "value"),
    [
        ("subject", "Hello\r\nBcc: victim@example.com"),
        ("subject", "Hello\nthere"),
        ("subject", "line\u2028separator"),
        ("from", "Jane\r\n <a@example.com>"),
        ("to", "b@example.com\nBcc: victim@example.com"),
        ("in_reply_to", "<a@x>\r\nBcc: v@example.com"),
        ("references", ["<a@x>", "<b@x>\nX: y"]),
    ],
)
def test_it_rejects_line_breaks_in_any_header_field(field: str, value: object) -> None:
    record = {"from": "a@example.com", "to": "b@example.com", field: value}

    with pytest.raises(InvalidMessage) as raised:
        build(record)

    assert str(raised.value) == f"{field}: contains a line break (header injection)"


@pytest.mark.parametrize("field", ["subject", "text", "html"])
def test_it_rejects_text_that_cannot_be_encoded(field: str) -> None:
    with pytest.raises(InvalidMessage) as raised:
        build({"from": "a@example.com", "to": "b@example.com", field: "lone \ud800 surrogate"})

    assert str(raised.value) == f"{field}: contains characters that are not valid Unicode (lone surrogates)"


def test_it_rejects_line_breaks_in_custom_headers_and_file_names() -> None:
    base = {"from": "a@example.com", "to": "b@example.com"}

    with pytest.raises(
        InvalidMessage, match=r"^headers: the value of X-Ticket contains a line break \(header injection\)$"
    ):
        build({**base, "headers": {"X-Ticket": "1\r\nBcc: v@example.com"}})
    with pytest.raises(InvalidMessage, match=r"attachments\[0\]\.filename: contains a line break"):
        build({**base, "attachments": [{"filename": "a\r\n.txt", "content": b"x"}]})


@pytest.mark.parametrize(
    ("headers", "error"),
    [
        ({"Bcc": "x@example.com"}, "headers: Bcc is set with the bcc field"),
        ({"subject": "x"}, "headers: subject is set with the subject field"),
        ({"Message-ID": "<x@y>"}, "headers: Message-ID is set by Mailwright and cannot be overridden"),
        ([["Content-Type", "text/html"]], "headers: Content-Type is set by Mailwright and cannot be overridden"),
        ({"Bad Name": "x"}, "headers: 'Bad Name' is not a valid header name"),
        ({"X-Colon:": "x"}, "headers: 'X-Colon:' is not a valid header name"),
        ({"X-Number": 5}, "headers: the value of X-Number must be text, not int"),
        ("X-Foo: bar", "headers: must be a mapping or a list of [name, value] pairs"),
        # Headers the stdlib parses are checked like our own fields, not handed to its parser.
        ({"Resent-To": "a@example.com, b@"}, "headers: the value of Resent-To 'b@' is not a valid address"),
        ({"Sender": "<<<>>>"}, "headers: the value of Sender '<<<>>>' is not a valid address"),
        ({"Resent-Date": "yesterday"}, "headers: the value of Resent-Date 'yesterday' is not a date"),
        ([["Sender", "a@example.com"], ["Sender", "b@example.com"]], "headers: only one Sender header is allowed"),
        ([["orig-date", "4 Mar 2024 10:00 +0100"], ["Orig-Date", "5 Mar 2024 10:00 +0100"]],
         "headers: only one Orig-Date header is allowed"),
    ],
)
def test_it_rejects_custom_headers_that_are_invalid_or_override_ours(headers: object, error: str) -> None:
    with pytest.raises(InvalidMessage) as raised:
        build({"from": "a@example.com", "to": "b@example.com", "headers": headers})

    assert str(raised.value) == error


def test_it_adds_custom_headers_from_a_mapping_or_pairs() -> None:
    base = {"from": "a@example.com", "to": "b@example.com"}

    assert build({**base, "headers": {"X-Ticket": "42"}}).message["X-Ticket"] == "42"
    pairs = build({**base, "headers": [["Received", "one"], ["Received", "two"]]}).message
    assert pairs.get_all("Received") == ["one", "two"]
    parsed = build({**base, "headers": {"Sender": "Desk <desk@example.com>", "Resent-Date": "4 Mar 2024 10:00 +0100"}})
    assert parsed.message["Sender"] == "Desk <desk@example.com>"
    assert parsed.message["Resent-Date"] == "Mon, 04 Mar 2024 10:00:00 +0100"


def test_it_types_attachments_given_guessed_or_generic() -> None:
    out = build(
        {
            "from": "a@example.com",
            "to": "b@example.com",
            "text": "see",
            "attachments": [
                {"filename": "scan", "content_type": "image/png", "content": hostile.PNG},
                {"filename": "report.pdf", "content": base64.b64encode(hostile.PDF).decode()},
                {"filename": "archive.tar.gz", "content": b"\x1f\x8b"},
                {"filename": "blob", "content": b"\x00"},
            ],
        }
    )

    attachments = list(out.message.iter_attachments())
    assert [a.get_content_type() for a in attachments] == [
        "image/png",
        "application/pdf",
        "application/gzip",
        "application/octet-stream",
    ]
    assert out.attachments[1] == hostile.PDF


@pytest.mark.parametrize(
    ("attachment", "error"),
    [
        ({"content": b"x"}, "attachments[0].filename: is required"),
        ({"filename": "a", "content": "not base64!"}, "attachments[0].content: is text but not base64"),
        (
            {"filename": "a", "content": None, "skipped": "larger than 10 bytes"},
            "skipped when read: larger than 10 bytes",
        ),
        ({"filename": "a", "content": 12}, "attachments[0].content: must be bytes or base64 text, not int"),
        ({"filename": "a", "content": b"x", "content_type": "png"}, "'png' is not a MIME type like image/png"),
        ({"filename": "a", "content": b"x", "content_type": "multipart/mixed"}, "an attachment cannot be multipart"),
    ],
)
def test_it_rejects_attachments_it_cannot_send(attachment: dict, error: str) -> None:
    with pytest.raises(InvalidMessage) as raised:
        build({"from": "a@example.com", "to": "b@example.com", "attachments": [attachment]})

    assert error in str(raised.value)


def test_it_rejects_a_bad_message_id_domain() -> None:
    for domain in ("not a domain", "[fe80::1%ü]"):
        with pytest.raises(InvalidMessage, match="message_id_domain"):
            build_message({"from": "a@example.com", "to": "b@example.com"}, message_id_domain=domain)


@pytest.mark.parametrize("field", ["in_reply_to", "references"])
def test_it_rejects_message_ids_that_are_not_ascii(field: str) -> None:
    with pytest.raises(InvalidMessage) as raised:
        build({"from": "a@example.com", "to": "b@example.com", field: "<ok@example.com> <grüße@example.com>"})

    assert str(raised.value) == f"{field}: '<grüße@example.com>' is not a message id"


# --- both ways


def test_it_round_trips_a_built_message_through_the_parser() -> None:
    out = build(
        {
            "from": "Jörg Müller <jorg@example.de>",
            "to": ['"Doe, Jane" <jane@example.com>', "bob@example.org"],
            "cc": "carol@example.net",
            "reply_to": "replies@example.com",
            "subject": "Grüße — a long subject " + "x" * 100,
            "text": "Hallo,\nwie geht's? ✓\n",
            "html": "<p>Hallo, wie geht's? ✓</p>\n",
            "in_reply_to": "parent@example.com",
            "references": "<root@example.com> <parent@example.com>",
            "attachments": [
                {"filename": "résumé.pdf", "content": hostile.PDF},
                {"filename": "logo.png", "content": hostile.PNG},
            ],
        }
    )

    record = parse(sent_bytes(out))

    assert record["from"] == "Jörg Müller <jorg@example.de>"
    assert record["to"] == ['"Doe, Jane" <jane@example.com>', "bob@example.org"]
    assert record["cc"] == ["carol@example.net"]
    assert record["reply_to"] == ["replies@example.com"]
    assert record["subject"] == "Grüße — a long subject " + "x" * 100
    assert record["text"] == "Hallo,\nwie geht's? ✓\n"
    assert record["html"] == "<p>Hallo, wie geht's? ✓</p>\n"
    assert record["message_id"] == out.message_id
    assert record["in_reply_to"] == "<parent@example.com>"
    assert record["references"] == ["<root@example.com>", "<parent@example.com>"]
    assert [(a["filename"], a["content_type"], a["content"]) for a in record["attachments"]] == [
        ("résumé.pdf", "application/pdf", hostile.PDF),
        ("logo.png", "image/png", hostile.PNG),
    ]
    assert record["defects"] == []
    # The stdlib's strict reader agrees with ours about what was built.
    strict: Message = message_from_bytes(sent_bytes(out), policy=default_policy)
    assert not strict.defects and str(strict["Subject"]) == record["subject"]


def test_it_forwards_a_parsed_message_with_its_attachments() -> None:
    source = parse(hostile.nested())

    out = build(
        {
            "to": source["reply_to"],
            "subject": f"Fwd: {source['subject']}",
            "text": source["text"],
            "html": source["html"],
            "attachments": source["attachments"],
            "in_reply_to": source["message_id"],
            "references": [*source["references"], source["message_id"]],
        },
        defaults={"from": "Helpdesk <helpdesk@example.com>"},
    )

    forwarded = parse(sent_bytes(out))
    assert forwarded["subject"] == "Fwd: Nested"
    assert [a["content"] for a in forwarded["attachments"]] == [a["content"] for a in source["attachments"]]
    assert forwarded["references"][-1] == "<nested-1@example.com>"


# --- reading: large base64 runs set aside before parsing (a speed-up that must change nothing)


def _tree(msg: Message) -> list:
    """Everything the parser produced, part by part: headers, bodies, preamble, epilogue, defects."""
    out, stack = [], [msg]
    while stack:
        node = stack.pop()
        payload = node._payload
        out.append((node.items(), node.raw_body() if isinstance(payload, str) else None, node.preamble, node.epilogue,
                    [type(d).__name__ for d in node.defects]))
        if isinstance(payload, list):
            stack.extend(reversed(payload))
    return out


def _without_set_aside(monkeypatch: pytest.MonkeyPatch, raw: bytes) -> tuple[dict, list]:
    from connectors.email.message import parse as parsing
    from connectors.email.message import setaside

    with monkeypatch.context() as patch:
        patch.setattr(setaside, "MIN_MESSAGE", 10**12)
        return parse(raw), _tree(parsing._parse(raw, None)[0])


def _streamed(raw: bytes, piece: int) -> StreamedMessage:
    """``raw`` fed as a download gives it: in pieces of ``piece`` bytes, the size announced first."""
    message = StreamedMessage(size_hint=len(raw))
    for start in range(0, len(raw), piece):
        message.feed(raw[start : start + piece])
    return message


def _run(size: int, newline: bytes = b"\r\n") -> bytes:
    return base64.encodebytes(random.Random(size).randbytes(size)).replace(b"\n", newline)


def _set_aside_cases() -> list[bytes]:
    big, lf = _run(200_000), _run(150_000, b"\n")
    head = [("From", "a@example.com"), ("Subject", "big")]
    b64 = [("Content-Type", "application/pdf"), ("Content-Transfer-Encoding", "base64")]
    text = hostile.part([("Content-Type", "text/plain")], b"body")
    cases = [
        hostile.large_attachment(),
        hostile.message([*head, *b64], big),  # a single-part base64 message
        hostile.message([*head, *b64], lf),  # bare LF line ends
        hostile.message([*head, *b64], big + lf + b"trailing text\r\n" + big),  # several runs, mixed line ends
        hostile.message([*head, *b64], big.rstrip()),  # the run is the end of the message, no line break
        hostile.message([*head, *b64], big + _run(150_001)),  # padding in the middle of one run
        hostile.message([*head, *b64], big.replace(b"=", b"") + b"AA\r\n"),  # one character too many
        b"From: a@example.com\r\nSubject: no separator\r\n" + big,  # base64 right after the headers
        big,  # no headers at all
        hostile.message(  # runs in the preamble, a part and the epilogue
            [*head, ("Content-Type", "multipart/mixed; boundary=zz")],
            big + b"--zz\r\n" + text + b"\r\n--zz\r\n" + hostile.part(b64, big) + b"\r\n--zz--\r\n" + lf,
        ),
        hostile.message(  # a run directly before a boundary without a line break of its own
            [*head, ("Content-Type", "multipart/mixed; boundary=zz")],
            b"--zz\r\n" + hostile.part(b64, big.rstrip()) + b"\r\n--zz--",
        ),
        hostile.message(  # an attached message with a large attachment of its own
            [*head, ("Content-Type", "multipart/mixed; boundary=outer")],
            hostile.multipart("mixed", "outer", [text, hostile.part([("Content-Type", "message/rfc822")],
                                                                    hostile.large_attachment(300_000))]),
        ),
        hostile.message(  # multipart without a boundary: repaired from the body
            [*head, ("Content-Type", "multipart/mixed")],
            hostile.multipart("mixed", "lost", [text, hostile.part(b64, big)]),
        ),
        hostile.message(  # unterminated multipart
            [*head, ("Content-Type", "multipart/mixed; boundary=cut")],
            hostile.multipart("mixed", "cut", [text, hostile.part(b64, big)], close=False),
        ),
        hostile.message([*head, *b64], b"MailwrightSetAside00000000\r\n" + big),  # our marker in the mail
        hostile.deeply_nested() + big,  # too deep to follow, with a large body
    ]
    return cases + [seed + b"\r\n" + big for seed in hostile.seeds()]


def _streamed_cases() -> list[bytes]:
    """Runs that are regular at first and then not, across the pieces of a download."""
    head = [("From", "a@example.com"), ("Subject", "big")]
    b64 = [("Content-Type", "application/pdf"), ("Content-Transfer-Encoding", "base64")]
    big = _run(200_000)
    lines = big.split(b"\r\n")
    width = [(b"\r\n".join(lines[:1500]) + b"\r\n" + base64.b64encode(b"x" * 48) + b"\r\n"  # a line longer
              + b"\r\n".join(lines[1500:]))]
    short = [b"\r\n".join(lines[:1800]) + b"\r\nQUJD\r\n" + b"\r\n".join(lines[1800:])]  # short, then more
    bodies = [
        b"".join(base64.b64encode(random.Random(n).randbytes(n * 3000))[i : i + n] + b"\r\n"
                 for i in range(0, n * 4000, n)) for n in (64, 72)  # other line widths
    ] + width + short + [
        big.replace(b"\r\n", b"\n", 900),  # LF at first, CRLF later
        big.rstrip(b"=\r\n") + b"R==\r\n",  # unused bits set in the last character
        _run(200_001).rstrip(b"=\r\n") + b"Q=\r\n",  # unused bits set before one "="
        big.rstrip(b"=\r\n") + b"===\r\n",  # too much padding
        big.rstrip(b"=\r\n") + b"QUJ\r\n",  # a last line of 4n + 3 characters
        big[:100_002] + b"=" + big[100_003:],  # "=" inside a full line, mid-run
        big[:100_001] + b"==" + big[100_003:],
        big + b"QUJD\r\n",  # a line after the padded one
        b"\r\n".join(lines[:2000]) + b"\r\n=\r\n" + b"\r\n".join(lines[2000:]),  # stray padding line
        big.replace(b"\r\n", b"\r\r\n", 1),  # not a base64 line at all
        big[:100_000] + b"MailwrightSetAside" + big[100_000:],  # the marker in a run, once more
        # In place of a character, mid-line, where the line breaks are all in their places:
        big[:100_010] + b"\n" + big[100_011:],  # a line break (the decoder skips it)
        big[:100_010] + b"\r" + big[100_011:],
        big[:100_010] + b"\r\n" + big[100_012:],  # a line break as the run has them
        big[:100_010] + b"\n\r\n\n" + big[100_014:],  # four of them: as many characters short as a quantum
        big[:100_010] + b"." + big[100_011:],  # not a base64 character
        big[:100_010] + b"\xe9" + big[100_011:],
    ]
    return [hostile.message([*head, *b64], body) for body in bodies]


_ALL_CASES = _set_aside_cases() + _streamed_cases()


@pytest.mark.parametrize("number", range(len(_ALL_CASES)))
def test_setting_large_base64_runs_aside_changes_nothing(number: int, monkeypatch: pytest.MonkeyPatch) -> None:
    from connectors.email.message import parse as parsing
    from connectors.email.message import setaside

    raw = _ALL_CASES[number]
    record, tree = _without_set_aside(monkeypatch, raw)
    assert parse(raw) == record
    assert number not in (5, 6) or record["defects"], "the slow path's defects, found by the fast one too"
    assert _tree(parsing._parse(*setaside.set_aside(raw))[0]) == tree
    # Downloaded in pieces (a line, a CRLF or the marker cut in two), with runs decoded on the way.
    for piece in (1000, 4099, 65_536, 256 * 1024):
        assert parse(_streamed(raw, piece)) == record, piece
        assert _tree(parsing._parse(*_streamed(raw, piece).finish())[0]) == tree, piece


def test_it_sets_large_base64_runs_aside() -> None:
    from connectors.email.message import setaside

    raw = hostile.large_attachment()
    collapsed, runs = setaside.set_aside(raw)
    assert len(runs.runs) == 1 and len(collapsed) < 10_000
    streamed_collapsed, streamed_runs = _streamed(raw, 65_536).finish()
    assert streamed_collapsed == collapsed
    [run] = streamed_runs.runs
    assert run.decoded() == runs.run(0).decoded() and bytes(run.text()) == bytes(runs.run(0).text())


def test_a_streamed_attachment_is_in_memory_once() -> None:
    raw = hostile.large_attachment(2_000_000)
    tracemalloc.start()
    try:
        record = parse(_streamed(raw, 256 * 1024))
        _current, peak = tracemalloc.get_traced_memory()
    finally:
        tracemalloc.stop()
    [attachment] = record["attachments"]
    decoded = len(attachment["content"])
    assert decoded >= 2_000_000
    # The decoded attachment plus about a piece's worth of copies, never the encoded text beside it.
    assert peak < decoded + 1_000_000, peak


# --- sending: the wire form


def test_the_wire_form_is_as_bytes_byte_for_byte() -> None:
    from email.contentmanager import _encode_base64

    data = random.Random(3).randbytes(300_001)
    for record in (
        {"from": "a@example.com", "to": "b@example.com", "subject": "Grüße", "text": "one\ntwo\r\nthree\rfour\n\n",
         "html": "<p>x</p>\n", "attachments": [{"filename": "a.bin", "content": data},
                                              {"filename": "b.txt", "content": b"x\r\ny"}]},
        {"from": "a@example.com", "to": "b@example.com", "text": "plain"},
        {"from": "a@example.com", "to": "b@example.com", "text": "x" * 3000 + "\n",
         "attachments": [{"filename": "e.bin", "content": b""}]},
        {"from": "a@example.com", "to": "b@example.com", "text": ".a dot\n..two\n",
         "attachments": [{"filename": f"{size}.bin", "content": random.Random(size).randbytes(size)}
                         for size in (1, 56, 57, 58, 114, 58_367, 58_368, 58_369)]},
    ):
        out = build(record)
        wire = out.to_wire()
        sent = b"".join(wire.chunks())
        assert len(sent) == wire.size
        assert all(chunk.endswith(b"\r\n") for chunk in list(wire.chunks())[:-1])
        # What the email package writes once the attachments are in their parts.
        for part, content in zip(out.message.iter_attachments(), out.attachments, strict=True):
            part.set_payload(_encode_base64(content, 78))
        assert sent == out.message.as_bytes()
        strict = message_from_bytes(sent, policy=default_policy)
        attached = [p.get_payload(decode=True) for p in strict.iter_attachments()]
        assert attached == [a["content"] for a in record.get("attachments", [])]


def test_no_text_can_pose_as_an_attachment() -> None:
    out = build({"from": "a@example.com", "to": "b@example.com", "attachments": [{"filename": "a", "content": b"A"}]})
    forged = build({"from": "a@example.com", "to": "b@example.com", "text": sent_bytes(out).decode()})
    assert len(forged.to_wire().pieces) == 1
