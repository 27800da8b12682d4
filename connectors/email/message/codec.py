"""The base64 line codec both directions use: the read side remakes a set-aside run's text with it,
the send side encodes attachments with it."""

from __future__ import annotations

import binascii

LINE = 76  # base64 characters per line: the email package's, for a 78-character line limit


def encode_lines(data: bytes | memoryview, line_length: int = LINE, line_break: bytes = b"\r\n") -> bytes:
    """``data`` in base64, ``line_length`` characters a line, the lines joined by ``line_break``."""
    encoded = binascii.b2a_base64(data, newline=False)
    return line_break.join([encoded[i : i + line_length] for i in range(0, len(encoded), line_length)])
