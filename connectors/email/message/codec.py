"""The base64 line codec both directions use: the read side remakes a set-aside run's text with it,
the send side encodes attachments with it."""

from __future__ import annotations

import binascii

LINE = 76  # base64 characters per line: the email package's, for a 78-character line limit


def encode_lines(data: bytes | memoryview, line_length: int = LINE, line_break: bytes = b"\r\n", *,
                 terminated: bool = False) -> bytes:
    """``data`` in base64, ``line_length`` characters a line, the lines joined by ``line_break``
    (``terminated``: and ended by one)."""
    encoded = binascii.b2a_base64(data, newline=False)
    lines = [encoded[i : i + line_length] for i in range(0, len(encoded), line_length)]
    if terminated:
        lines.append(b"")  # the last break comes with the join: appending it would copy the whole text again
    return line_break.join(lines)
