"""The records of the Email activities, field by field: what Read Email gives a mapping (SPEC §3) and
what Send Email takes from it, each with a label, a type and one line of description."""

from __future__ import annotations

from connectors.base import FieldSpec

ATTACHMENT_KEYS = (
    FieldSpec("filename", "File name", "text", "As the sender named it, decoded"),
    FieldSpec("content_type", "Content type", "text", "e.g. application/pdf"),
    FieldSpec("size", "Size", "number", "In bytes"),
    FieldSpec("content", "Content", "bytes", "The file itself (empty when attachments are skipped)"),
)

READ_EMAIL_OUTPUT = (
    FieldSpec("uid", "UID", "number", "The message's IMAP UID in its folder"),
    FieldSpec("uidvalidity", "UIDVALIDITY", "number",
              "The folder's UIDVALIDITY (changes when the folder is recreated)"),
    FieldSpec("folder", "Folder", "text", "The folder the message was read from"),
    FieldSpec("message_id", "Message-ID", "text", "Message-ID header, e.g. <abc@example.com>"),
    FieldSpec("in_reply_to", "In-Reply-To", "text", "Message-ID of the message this one answers"),
    FieldSpec("references", "References", "list of text", "Message-IDs of the thread"),
    FieldSpec("date", "Date", "date and time", "Date header, ISO 8601 in UTC"),
    FieldSpec("from", "From", "address", "Sender, e.g. Ada Lovelace <ada@example.org>"),
    FieldSpec("to", "To", "list of addresses", "Recipients"),
    FieldSpec("cc", "Cc", "list of addresses", "Copy recipients"),
    FieldSpec("reply_to", "Reply-To", "list of addresses", "Where the sender wants answers to go"),
    FieldSpec("subject", "Subject", "text", "Subject, decoded"),
    FieldSpec("text", "Text body", "text", "Plain-text body (a text rendering of the HTML when there is none)"),
    FieldSpec("html", "HTML body", "text", "HTML body as received (not sanitised), or empty"),
    FieldSpec("headers", "Headers", "list of [name, value]", "Every header, in order"),
    FieldSpec("attachments", "Attachments", "list of files", "Attached files", ATTACHMENT_KEYS),
    FieldSpec("size", "Size", "number", "Size of the whole message in bytes"),
    FieldSpec("flags", "Flags", "list of text", "IMAP flags when read, e.g. \\Flagged"),
)

SEND_EMAIL_INPUT = (
    FieldSpec("from", "From", "address", "The sender, e.g. Support <support@example.com>"),
    FieldSpec("to", "To", "addresses", "Recipients: a list, or text with commas between addresses"),
    FieldSpec("cc", "Cc", "addresses", "Copy recipients"),
    FieldSpec("bcc", "Bcc", "addresses", "Hidden recipients: in the envelope, never in the headers"),
    FieldSpec("reply_to", "Reply-To", "addresses", "Where answers should go"),
    FieldSpec("subject", "Subject", "text", "One line; non-ASCII is encoded for you"),
    FieldSpec("text", "Text body", "text", "The plain-text body"),
    FieldSpec("html", "HTML body", "text", "The HTML body, sent beside the text one"),
    FieldSpec("attachments", "Attachments", "list of files",
              "Usually {{ attachments }} to pass the source's files on", ATTACHMENT_KEYS),
    FieldSpec("headers", "Extra headers", "[name, value] pairs or an object", "e.g. X-Ticket; not the ones above"),
    FieldSpec("in_reply_to", "In-Reply-To", "text", "Message-ID this message answers, to keep the thread"),
    FieldSpec("references", "References", "list of text", "Message-IDs of the thread"),
)
