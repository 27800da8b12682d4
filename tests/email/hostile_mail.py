"""Raw messages that real mailers, broken gateways and attackers send, built in code.

Each function returns the bytes an IMAP server would hand us. ``seeds()`` gives the well-formed
messages that the mutation test starts from.
"""

from __future__ import annotations

import base64

CRLF = b"\r\n"
PNG = base64.b64decode(
    "iVBORw0KGgoAAAANSUhEUgAAAAEAAAABCAYAAAAfFcSJAAAADUlEQVR42mNkYPhfDwAChwGA60e6kgAAAABJRU5ErkJggg=="
)
PDF = b"%PDF-1.4\n%\xe2\xe3\xcf\xd3\n1 0 obj <<>> endobj\ntrailer <<>>\n%%EOF\n"


def message(headers: list[tuple[str, str | bytes]], body: bytes = b"") -> bytes:
    """A message from (name, value) pairs; bytes values go out as they are (8-bit, folds...)."""
    lines = [name.encode() + b": " + (value if isinstance(value, bytes) else value.encode()) for name, value in headers]
    return CRLF.join(lines) + CRLF + CRLF + body


def part(headers: list[tuple[str, str | bytes]], body: bytes) -> bytes:
    return message(headers, body)


def multipart(subtype: str, boundary: str, parts: list[bytes], *, close: bool = True) -> bytes:
    """A multipart body: the parts between delimiter lines, closed unless told otherwise."""
    delimiter = b"--" + boundary.encode()
    out = b"This is a multi-part message in MIME format." + CRLF
    for p in parts:
        out += delimiter + CRLF + p + CRLF
    if close:
        out += delimiter + b"--" + CRLF
    return out


def _b64(data: bytes) -> bytes:
    return base64.encodebytes(data).replace(b"\n", CRLF)


# --- well-formed starting points


def plain() -> bytes:
    return message(
        [
            ("From", "Jane Doe <jane@example.com>"),
            ("To", "bob@example.org"),
            ("Subject", "Quarterly figures"),
            ("Date", "Fri, 01 Mar 2024 10:30:00 +0100"),
            ("Message-ID", "<plain-1@example.com>"),
            ("MIME-Version", "1.0"),
            ("Content-Type", "text/plain; charset=utf-8"),
            ("Content-Transfer-Encoding", "8bit"),
        ],
        "Hello Bob,\r\nthe figures are attached — or not.\r\n".encode(),
    )


def nested() -> bytes:
    """mixed( alternative( text, related( html, inline image ) ), pdf, attached message )."""
    related = multipart(
        "related",
        "rel",
        [
            part(
                [("Content-Type", "text/html; charset=utf-8"), ("Content-Transfer-Encoding", "quoted-printable")],
                b'<html><body><p>Gr=C3=BC=C3=9Fe, see <img src=3D"cid:logo@x"></p></body></html>',
            ),
            part(
                [
                    ("Content-Type", "image/png"),
                    ("Content-ID", "<logo@x>"),
                    ("Content-Disposition", "inline"),
                    ("Content-Transfer-Encoding", "base64"),
                ],
                _b64(PNG),
            ),
        ],
    )
    alternative = multipart(
        "alternative",
        "alt",
        [
            part(
                [("Content-Type", "text/plain; charset=utf-8"), ("Content-Transfer-Encoding", "8bit")],
                "Grüße, see the logo".encode(),
            ),
            part([("Content-Type", 'multipart/related; boundary="rel"')], related),
        ],
    )
    inner = message(
        [("From", "carol@example.net"), ("Subject", "Original"), ("Content-Type", "text/plain")], b"Inner body\r\n"
    )
    body = multipart(
        "mixed",
        "mix",
        [
            part([("Content-Type", 'multipart/alternative; boundary="alt"')], alternative),
            part(
                [
                    ("Content-Type", 'application/pdf; name="report.pdf"'),
                    ("Content-Disposition", 'attachment; filename="report.pdf"'),
                    ("Content-Transfer-Encoding", "base64"),
                ],
                _b64(PDF),
            ),
            part([("Content-Type", "message/rfc822"), ("Content-Disposition", "attachment")], inner),
        ],
    )
    return message(
        [
            ("From", "Jane Doe <jane@example.com>"),
            ("To", "Bob <bob@example.org>, carol@example.net"),
            ("Cc", '"Doe, John" <john@example.com>'),
            ("Reply-To", "replies@example.com"),
            ("Subject", "Nested"),
            ("Date", "Sat, 02 Mar 2024 08:00:00 -0500"),
            ("Message-ID", "<nested-1@example.com>"),
            ("In-Reply-To", "<parent@example.com>"),
            ("References", "<root@example.com>\r\n <parent@example.com>"),
            ("MIME-Version", "1.0"),
            ("Content-Type", 'multipart/mixed; boundary="mix"'),
        ],
        body,
    )


def html_only() -> bytes:
    html = (
        b"<html><head><title>T</title><style>p{color:red}</style></head><body>"
        b"<h1>Invoice</h1><p>Total:&nbsp;<b>12&euro;</b></p><ul><li>one</li><li>two</li></ul>"
        b"<!-- secret --><script>alert(1)</script><p>Bye</p></body></html>"
    )
    return message([("From", "shop@example.com"), ("Content-Type", "text/html; charset=utf-8")], html)


def seeds() -> list[bytes]:
    return [plain(), nested(), html_only(), rfc2231_filename(), broken_base64()]


# --- headers


def encoded_words() -> bytes:
    """Mixed charsets, a word split inside a UTF-8 character, spaces inside a Q word, bad folds."""
    word = "€".encode()  # three bytes, split across two encoded words
    first = base64.b64encode(b"Price " + word[:1]).decode()
    second = base64.b64encode(word[1:] + b"5").decode()
    return message(
        [
            ("From", "=?iso-8859-1?q?J=F6rg_M=FCller?= <jorg@example.de>"),
            ("To", "=?utf-8?q?Doe=2C_Jane?= <jane@example.com>, =?windows-1251?b?0e/g8ejh7g==?= <ivan@example.ru>"),
            ("Subject", f"=?utf-8?b?{first}?=\r\n =?utf-8?b?{second}?= =?UTF-8?Q?_and a Q word with spaces?="),
            ("X-Folded", "=?utf-8?q?folded?=\r\n\t=?utf-8?q?_across_lines?="),
        ],
        b"body\r\n",
    )


def unknown_charset_word() -> bytes:
    return message([("From", "a@example.com"), ("Subject", "=?x-unknown?q?caf=E9?= ok")], b"x\r\n")


def raw_8bit_headers() -> bytes:
    return message(
        [
            ("From", "Jörg Müller <jorg@example.de>".encode()),
            ("To", "Andr\xe9 <andre@example.fr>".encode("latin-1")),
            ("Subject", "Grüße aus Köln".encode()),
            ("X-Latin", "d\xe9j\xe0 vu".encode("latin-1")),
        ],
        b"body\r\n",
    )


def encoded_crlf_subject() -> bytes:
    """An encoded CR LF: decoded naively it would inject a Bcc when the subject is forwarded."""
    return message([("From", "a@example.com"), ("Subject", "=?utf-8?q?Hi=0D=0ABcc:_victim@example.com?=")], b"x\r\n")


def nul_bytes() -> bytes:
    return message(
        [("From", "a@example.com"), ("Subject", b"nul\x00here"), ("Content-Type", "text/plain")],
        b"before\x00after\r\n",
    )


def long_header(length: int = 200_000) -> bytes:
    return message([("From", "a@example.com"), ("Subject", "x" * length), ("X-Long", "=?utf-8?q?y?= " * 1000)], b"x")


def duplicate_headers() -> bytes:
    return message(
        [
            ("From", "first@example.com"),
            ("From", "second@example.com"),
            ("To", "one@example.com"),
            ("To", "two@example.com"),
            ("Subject", "first subject"),
            ("Subject", "second subject"),
            ("Date", "Mon, 04 Mar 2024 12:00:00 +0000"),
            ("Date", "garbage"),
        ],
        b"x\r\n",
    )


def bad_date() -> bytes:
    return message([("From", "a@example.com"), ("Date", "the day after tomorrow")], b"x\r\n")


def unparseable_addresses() -> bytes:
    return message([("From", "<<<>>>"), ("To", "undisclosed-recipients:;"), ("Cc", '"unterminated <x')], b"x\r\n")


# --- bodies and structure


def rfc2231_filename() -> bytes:
    body = multipart(
        "mixed",
        "b",
        [
            part([("Content-Type", "text/plain")], b"see attachments"),
            part(
                [
                    ("Content-Type", "application/pdf"),
                    ("Content-Disposition", "attachment; filename*=utf-8''na%C3%AFve%20r%C3%A9sum%C3%A9.pdf"),
                    ("Content-Transfer-Encoding", "base64"),
                ],
                _b64(PDF),
            ),
            part(
                [
                    ("Content-Type", "text/csv"),
                    (
                        "Content-Disposition",
                        "attachment;\r\n filename*0*=iso-8859-1''Gr%FC;\r\n filename*1=\"sse.csv\"",
                    ),
                ],
                b"a,b\r\n",
            ),
            part(
                [
                    ("Content-Type", 'image/png; name="=?utf-8?b?w6ljbGFpci5wbmc=?="'),
                    ("Content-Transfer-Encoding", "base64"),
                ],
                _b64(PNG),
            ),
            part(
                [
                    ("Content-Type", "application/octet-stream"),
                    ("Content-Disposition", "attachment; filename*=utf-8''a; filename*0=b"),
                ],
                b"conflicting RFC 2231 pieces",
            ),
        ],
    )
    return message([("From", "a@example.com"), ("Content-Type", "multipart/mixed; boundary=b")], body)


def body_in_charset(charset: str, data: bytes) -> bytes:
    return message([("From", "a@example.com"), ("Content-Type", f"text/plain; charset={charset}")], data)


def broken_base64() -> bytes:
    return message(
        [
            ("From", "a@example.com"),
            ("Content-Type", "multipart/mixed; boundary=z"),
        ],
        multipart(
            "mixed",
            "z",
            [
                part(
                    [("Content-Type", "text/plain"), ("Content-Transfer-Encoding", "base64")], b"SGVsbG8g*!\r\nd29y bGQ"
                ),
                part(
                    [("Content-Type", "application/octet-stream"), ("Content-Transfer-Encoding", "base64")],
                    b"aGVsbG8=d29ybGQ=\r\nQ",
                ),
            ],
        ),
    )


def broken_quoted_printable() -> bytes:
    return message(
        [
            ("From", "a@example.com"),
            ("Content-Type", "text/plain; charset=utf-8"),
            ("Content-Transfer-Encoding", "quoted-printable"),
        ],
        b"caf=C3=A9 =ZZ soft=\r\nbreak =",
    )


def missing_boundary() -> bytes:
    body = multipart(
        "mixed",
        "lost",
        [part([("Content-Type", "text/plain")], b"found me"), part([("Content-Type", "image/png")], PNG)],
    )
    return message([("From", "a@example.com"), ("Content-Type", "multipart/mixed")], body)


def wrong_boundary() -> bytes:
    body = multipart("alternative", "real", [part([("Content-Type", "text/html")], b"<p>html</p>")])
    return message([("From", "a@example.com"), ("Content-Type", "multipart/alternative; boundary=other")], body)


def boundary_unguessable() -> bytes:
    return message([("From", "a@example.com"), ("Content-Type", "multipart/mixed")], b"just text\r\n")


def unterminated_multipart() -> bytes:
    body = multipart(
        "mixed",
        "cut",
        [
            part([("Content-Type", "text/plain")], b"first part"),
            part([("Content-Type", "application/pdf"), ("Content-Transfer-Encoding", "base64")], _b64(PDF)[:30]),
        ],
        close=False,
    )
    return message([("From", "a@example.com"), ("Content-Type", "multipart/mixed; boundary=cut")], body)


def missing_content_type() -> bytes:
    return message([("From", "a@example.com"), ("Subject", "no type")], "naïve UTF-8 body".encode())


def invalid_content_type() -> bytes:
    return message([("From", "a@example.com"), ("Content-Type", "garbage")], b"text anyway")


def empty() -> bytes:
    return b""


def headers_only() -> bytes:
    return b"From: a@example.com\r\nSubject: no body"


def deeply_nested(depth: int = 3000) -> bytes:
    opening = b"".join(b'Content-Type: multipart/mixed; boundary="b%d"\r\n\r\n--b%d\r\n' % (i, i) for i in range(depth))
    return b"From: a@example.com\r\n" + opening + b"Content-Type: text/plain\r\n\r\ndeep\r\n"


def base64_attached_message() -> bytes:
    inner = b"From: inner@example.com\r\nSubject: inside\r\n\r\ninner body\r\n"
    body = multipart(
        "mixed",
        "m",
        [
            part([("Content-Type", "text/plain")], b"outer"),
            part([("Content-Type", "message/rfc822"), ("Content-Transfer-Encoding", "base64")], _b64(inner)),
        ],
    )
    return message([("From", "a@example.com"), ("Content-Type", "multipart/mixed; boundary=m")], body)


def large_attachment(size: int = 1_000_000) -> bytes:
    data = bytes(range(256)) * (size // 256) + bytes(size % 256)
    body = multipart(
        "mixed",
        "big",
        [
            part([("Content-Type", "text/plain")], b"see attachment"),
            part(
                [
                    ("Content-Type", "application/octet-stream"),
                    ("Content-Disposition", 'attachment; filename="big.bin"'),
                    ("Content-Transfer-Encoding", "base64"),
                ],
                _b64(data),
            ),
        ],
    )
    return message([("From", "a@example.com"), ("Content-Type", "multipart/mixed; boundary=big")], body)


def large_attachment_with_a_line_split(size: int = 300_000) -> bytes:
    """A large base64 attachment where two characters, mid-line, became a line break: every other
    break in its place, both halves base64 lines, two characters fewer than any base64 text has."""
    raw = large_attachment(size)
    middle = raw.index(b"\r\n", len(raw) // 2) + 2 + 14  # 14 characters into a line of the attachment
    return raw[:middle] + b"\r\n" + raw[middle + 2 :]
