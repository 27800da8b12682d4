"""Read Email and Send Email settings: validation, and the IMAP SEARCH they turn into (no network).

Also the BODYSTRUCTURE check behind the has_attachment filter, a pure function of source.py.
"""

from __future__ import annotations

from datetime import date
from typing import Any

import pytest

from connectors.base import ConfigError
from connectors.email.activities import (
    READ_EMAIL_FIELDS,
    SEND_EMAIL_FIELDS,
    ReadFilters,
    ReadSettings,
    parse_read_settings,
    parse_send_settings,
)
from connectors.email.search import SearchSyntaxError, imap_date, parse_search
from connectors.email.source import has_attachment


def read_errors(data: dict[str, Any]) -> dict[str, list[str]]:
    with pytest.raises(ConfigError) as caught:
        parse_read_settings(data)
    return caught.value.errors


def send_errors(data: dict[str, Any]) -> dict[str, list[str]]:
    with pytest.raises(ConfigError) as caught:
        parse_send_settings(data)
    return caught.value.errors


def search_error(text: str) -> str:
    with pytest.raises(SearchSyntaxError) as caught:
        parse_search(text)
    return str(caught.value)


# Read Email settings ----------------------------------------------------------------------------


def test_it_gives_the_documented_defaults() -> None:
    settings = parse_read_settings({})

    assert settings == ReadSettings()
    assert settings.folder == "INBOX"
    assert settings.unread_only is True
    assert settings.max_messages == 100
    assert (settings.after_read, settings.on_skip, settings.attachments) == ("mark_read", "leave", "include")
    assert (settings.max_message_bytes, settings.max_attachment_bytes) == (25 * 1024 * 1024, 25 * 1024 * 1024)


def test_it_round_trips_through_to_dict() -> None:
    data = {
        "folder": "Support/Incoming",
        "unread_only": False,
        "filters": {
            "from": "bob@example.com",
            "to": "",
            "subject": "Invoice",
            "since": "2024-02-01",
            "has_attachment": True,
        },
        "search": "NOT FLAGGED",
        "max_messages": 500,
        "after_read": "move",
        "move_to": "Archive",
        "on_skip": "mark_read",
        "attachments": "skip",
        "max_attachment_mb": 5,
        "max_message_mb": 40,
    }

    settings = parse_read_settings(data)

    assert settings.to_dict() == data
    assert parse_read_settings(settings.to_dict()) == settings
    assert settings.filters == ReadFilters(
        from_="bob@example.com", subject="Invoice", since=date(2024, 2, 1), has_attachment=True
    )


def test_it_reports_every_problem_by_dotted_path() -> None:
    errors = read_errors(
        {
            "folder": "In\r\nbox",
            "unread_only": "yes",
            "filters": {"since": "01/02/2024", "subject": 3, "colour": "red"},
            "max_messages": 0,
            "after_read": "archive",
            "max_message_mb": "big",
            "turbo": True,
        }
    )

    assert errors == {
        "turbo": ["is not a known setting"],
        "folder": ["must be a single line of text without control characters"],
        "after_read": ["must be one of mark_read, move, delete, leave"],
        "unread_only": ["must be true or false"],
        "filters.colour": ["is not a known setting"],
        "filters.subject": ["must be text"],
        "filters.since": ["must be a date written YYYY-MM-DD"],
        "max_messages": ["must be between 1 and 10000"],
        "max_message_mb": ["must be a whole number"],
    }


def test_it_refuses_an_empty_folder() -> None:
    assert read_errors({"folder": "  "}) == {"folder": ["is required"]}


def test_it_needs_a_move_to_folder_when_a_message_is_moved() -> None:
    assert read_errors({"after_read": "move"}) == {"move_to": ["is required"]}
    assert read_errors({"on_skip": "move"}) == {"move_to": ["is required"]}
    assert read_errors({"after_read": "move", "move_to": "INBOX"}) == {
        "move_to": ["must be another folder than the one read from (it would be read again)"]
    }


def test_it_refuses_an_impossible_date() -> None:
    assert read_errors({"filters": {"since": "2024-02-30"}}) == {"filters.since": ["must be a date written YYYY-MM-DD"]}


def test_it_keeps_the_sizes_in_range() -> None:
    assert read_errors({"max_attachment_mb": 0, "max_message_mb": 151}) == {
        "max_attachment_mb": ["must be between 1 and 150"],
        "max_message_mb": ["must be between 1 and 150"],
    }


def test_it_lists_the_record_fields_of_the_spec() -> None:
    assert READ_EMAIL_FIELDS == (
        "uid", "uidvalidity", "folder", "message_id", "in_reply_to", "references", "date", "from", "to", "cc",
        "reply_to", "subject", "text", "html", "headers", "attachments", "size", "flags",
    )  # fmt: skip
    assert SEND_EMAIL_FIELDS == (
        "from", "to", "cc", "bcc", "reply_to", "subject", "text", "html", "attachments", "headers", "in_reply_to",
        "references",
    )  # fmt: skip


# SEARCH arguments -------------------------------------------------------------------------------


def test_it_searches_unread_undeleted_messages_by_default() -> None:
    assert parse_read_settings({}).search_arguments() == [b"UNDELETED", b"UNSEEN"]
    assert parse_read_settings({"unread_only": False}).search_arguments() == [b"UNDELETED"]


def test_it_quotes_filter_text_so_it_stays_one_argument() -> None:
    settings = parse_read_settings(
        {
            "filters": {
                "from": "bob",
                "to": "help desk",
                "subject": 'Re: (urgent) "quoted" \\ path',
                "since": "2024-02-01",
            }
        }
    )

    assert settings.search_arguments() == [
        b"UNDELETED", b"UNSEEN",
        b"FROM", b'"bob"',
        b"TO", b'"help desk"',
        b"SUBJECT", b'"Re: (urgent) \\"quoted\\" \\\\ path"',
        b"SINCE", b"1-Feb-2024",
    ]  # fmt: skip


def test_it_sends_non_ascii_text_as_utf8_for_a_literal() -> None:
    settings = parse_read_settings({"filters": {"subject": "Café"}})

    assert settings.search_arguments() == [b"CHARSET", b"UTF-8", b"UNDELETED", b"UNSEEN", b"SUBJECT", "Café".encode()]


def test_it_wraps_the_raw_search_in_parentheses() -> None:
    settings = parse_read_settings({"unread_only": False, "search": 'or from bob subject "weekly report"'})

    assert settings.search_arguments() == [b"UNDELETED", b"(OR", b"FROM", b'"bob"', b"SUBJECT", b'"weekly report")']


def test_it_never_leaves_a_space_between_a_literal_and_a_closing_parenthesis() -> None:
    settings = parse_read_settings({"unread_only": False, "search": 'SUBJECT "été"'})

    # ALL is true for every message: neutral inside the group, and it carries the ")".
    assert settings.search_arguments() == [b"CHARSET", b"UTF-8", b"UNDELETED", b"(SUBJECT", "été".encode(), b"ALL)"]


def test_it_normalises_keys_dates_and_nested_groups() -> None:
    tokens = parse_read_settings({"unread_only": False, "search": "not (seen flagged) since 2024-03-05 uid 1:*"})

    assert tokens.search_arguments() == [
        b"UNDELETED", b"(NOT", b"(SEEN", b"FLAGGED)", b"SINCE", b"5-Mar-2024", b"UID", b"1:*)",
    ]  # fmt: skip


def test_it_accepts_the_rfc3501_search_grammar() -> None:
    for text in (
        "ALL",
        "1:10,20",
        "HEADER X-Priority 1",
        'HEADER "List-Id" "<dev.lists.example.com>"',
        "KEYWORD $Label1",
        "LARGER 1000 SMALLER 2000000",
        "OR OR FROM a FROM b FROM c",
        "SENTBEFORE 1-Jan-2025 ON 02-feb-2024",
        "YOUNGER 3600",
        'TEXT "say \\"hi\\""',
    ):
        assert parse_search(text), text


def test_it_explains_what_is_wrong_with_a_raw_search() -> None:
    assert search_error("FORM bob") == "FORM is not an IMAP search key (text with spaces goes in double quotes)"
    assert search_error("SUBJECT") == "SUBJECT needs a text in double quotes"
    assert search_error("SUBJECT (x)") == "SUBJECT needs a text in double quotes"
    assert search_error("(UNSEEN") == "a ( is never closed"
    assert search_error("UNSEEN)") == "a ) has no matching ("
    assert search_error("()") == "() is empty: put search keys inside"
    assert search_error('SUBJECT "open') == "a double quote is never closed"
    assert search_error('SUBJECT "a\\b"') == 'inside double quotes a backslash may only escape " or \\'
    assert search_error('"hello"') == '"hello" needs a search key in front, like SUBJECT "hello"'
    assert search_error("LARGER big") == "LARGER needs a whole number, not 'big'"
    assert search_error("SINCE yesterday") == "SINCE needs a date like 1-Feb-2024, not 'yesterday'"
    assert search_error("SINCE 31-Feb-2024") == "SINCE needs a date like 1-Feb-2024, not '31-Feb-2024'"
    assert search_error("OR FROM a") == "ends where a search key was expected"
    assert search_error("   ") == "is empty"


def test_it_refuses_what_could_break_out_of_the_command() -> None:
    assert search_error("SUBJECT {5}") == "literals ({n}) are not allowed: put the text in double quotes"
    assert search_error("UNSEEN\r\nA1 DELETE INBOX") == "must be a single line"
    assert search_error('SUBJECT "a\x00b"') == "must not contain control characters"


def test_it_reports_a_bad_raw_search_under_search() -> None:
    assert read_errors({"search": "FROM"}) == {"search": ["FROM needs a text in double quotes"]}


def test_it_writes_imap_dates_in_english_whatever_the_locale() -> None:
    assert imap_date(date(2024, 12, 9)) == "9-Dec-2024"


# Send Email settings ----------------------------------------------------------------------------


def test_it_keeps_valid_send_defaults() -> None:
    settings = parse_send_settings(
        {
            "defaults": {
                "from": "Support <support@example.com>",
                "to": ["a@example.com", "Bea <b@example.org>"],
                "subject": "",
                "headers": {"X-Ticket": "42"},
            },
            "message_id_domain": "Mail.Example.com",
        }
    )

    assert settings.defaults == {
        "from": "Support <support@example.com>",
        "to": ["a@example.com", "Bea <b@example.org>"],
        "headers": {"X-Ticket": "42"},
    }
    assert settings.message_id_domain == "mail.example.com"
    assert parse_send_settings(settings.to_dict()) == settings


def test_it_reports_every_bad_send_default() -> None:
    errors = send_errors(
        {
            "defaults": {
                "from": "nobody",
                "cc": "ok@example.com, no-at-sign",
                "subject": "Hello\r\nBcc: victim@example.com",
                "headers": {"X-Note": "a\nb"},
                "attachments": [],
            },
            "message_id_domain": "not a domain",
            "retries": 3,
        }
    )

    assert errors == {
        "retries": ["is not a known setting"],
        "defaults.attachments": ["cannot have a default"],
        "defaults.cc": ["'no-at-sign' is not a valid address"],
        "defaults.from": ["'nobody' is not a valid address"],
        "defaults.headers": ["the value of X-Note contains a line break (header injection)"],
        "defaults.subject": ["contains a line break (header injection)"],
        "message_id_domain": ["must be a domain name, like example.com"],
    }


def test_it_leaves_templated_defaults_to_be_checked_once_rendered() -> None:
    settings = parse_send_settings({"defaults": {"to": "{{ vars.helpdesk_address }}"}})

    assert settings.defaults == {"to": "{{ vars.helpdesk_address }}"}
    assert send_errors({"defaults": {"subject": "{{ subject }}\nBcc: x@example.com"}}) == {
        "defaults.subject": ["contains a line break (header injection)"]
    }


def test_it_takes_the_message_id_domain_from_the_sender() -> None:
    assert parse_send_settings({}).message_id_domain_for("Jane <jane@Example.org>") == "example.org"
    assert parse_send_settings({}).message_id_domain_for("") == "mailwright.local"
    assert (
        parse_send_settings({"message_id_domain": "ids.example.com"}).message_id_domain_for("jane@example.org")
        == "ids.example.com"
    )


# has_attachment: BODYSTRUCTUREs as Dovecot sends them and imapclient parses them -------------------

TEXT_PART = (b"text", b"plain", (b"charset", b"utf-8"), None, None, b"7bit", 7, 1, None, None, None, None)
HTML_PART = (b"text", b"html", (b"charset", b"utf-8"), None, None, b"7bit", 11, 1, None, None, None, None)
PDF_PART = (b"application", b"pdf", None, None, None, b"base64", 6, None, (b"attachment", (b"filename", b"x.pdf")),
            None, None)  # fmt: skip
INLINE_GIF = (b"image", b"gif", None, b"<a>", None, b"base64", 6, None, (b"inline", None), None, None)
NAMED_GIF = (b"image", b"gif", (b"name", b"logo.gif"), None, None, b"base64", 6, None, None, None, None)
FORWARDED = (b"message", b"rfc822", None, None, None, b"8bit", 120, (None,) * 10, TEXT_PART, 6, None,
             (b"attachment", None), None, None)  # fmt: skip


def multipart(subtype: bytes, *parts: tuple) -> tuple:
    return ([*parts], subtype, (b"boundary", b"b"), None, None, None)


def test_it_finds_attachments_in_a_bodystructure() -> None:
    assert has_attachment(multipart(b"mixed", multipart(b"alternative", TEXT_PART, HTML_PART), PDF_PART))
    assert has_attachment(multipart(b"mixed", TEXT_PART, FORWARDED))
    assert has_attachment(multipart(b"mixed", TEXT_PART, NAMED_GIF))


def test_it_does_not_count_bodies_or_unnamed_inline_images_as_attachments() -> None:
    assert not has_attachment(TEXT_PART)
    assert not has_attachment(multipart(b"alternative", TEXT_PART, multipart(b"related", HTML_PART, INLINE_GIF)))
    assert not has_attachment(None)
