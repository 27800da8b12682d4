"""Email messages, by direction: raw messages in, Read Email records out (``parse``, with
``feed`` for the message tree, ``decode``, ``headers``, ``addresses``, ``html`` and ``setaside``);
Send Email records in, messages out (``build``, with ``fields``, ``outgoing_headers`` and
``wire``). ``codec`` is the one thing both sides share. The read side never imports the send side.

Reading (``parse.parse_message``) turns the bytes the IMAP reader fetched into the source record of
SPEC §3. Real mail is hostile: wrong or unknown charsets, 8-bit headers, broken encodings,
multiparts without boundaries, truncation. The contract is that *any* bytes give a record, and
whatever had to be repaired is listed in the record's ``defects`` for the engine to log.

To keep that contract the structure is parsed with the ``compat32`` parser, which records
defects rather than raising (the two ways it can still raise, deep nesting and RFC 2231 trouble in
a boundary, are handled here), and every header and body is decoded here rather than by
``email.policy.default``: the default policy decodes headers lazily through a parser that raises
on some hostile values (IndexError, AttributeError...), so its exceptions would surface at every
access. Decoding here is lenient by rule: an unknown charset gives replacement characters.

Building (``build.build_message``) turns the target record of SPEC §4 into an ``EmailMessage`` ready
for SMTP. It is strict by rule: every address, header name and header value is checked, and the
first problem raises ``InvalidMessage`` naming the field.

Record types, reading side (values are JSON-friendly apart from attachment content):

- ``from``: one display string, ``"Jane Doe <jane@example.com>"`` or ``"jane@example.com"``;
  ``to``, ``cc``, ``reply_to``: lists of such strings (names with specials are quoted, so each
  string can be handed back to ``build_message``).
- ``message_id``, ``in_reply_to``: ``"<id@host>"`` (with brackets) or ``""``; ``references``: a
  list of such ids.
- ``date``: ISO 8601 in UTC (``"2024-03-01T09:30:00+00:00"``) when parseable, else the header
  text as it came, ``""`` when missing.
- ``subject`` and header values: decoded, unfolded, control characters replaced by spaces.
- ``headers``: ``[[name, value], ...]`` in message order, duplicates kept.
- ``text``: the first inline text/plain body, or a plain rendering of the HTML body when there is
  none; ``html``: the first inline text/html body or ``""``. Line ends are ``\\n``.
- ``attachments``: every other leaf part (attached files, inline images, further text parts,
  attached messages as ``message/rfc822``), each ``{filename, content_type, size, content}`` with
  ``content`` as ``bytes`` (an attached message byte for byte as it was attached). ``content`` is
  ``None`` when ``include_attachments`` is false (metadata only), and
  also when the part is larger than ``max_attachment_bytes``, which adds
  ``skipped: "larger than N bytes"``. A part without a file name is named ``part-N.ext``.
- ``size``: ``len(raw)``; ``flags``: a list of str; ``defects``: a list of str.
"""
