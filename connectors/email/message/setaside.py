"""Long base64 runs of a large message, set aside so the email parser never walks them.

The parser goes line by line in Python, and a megabyte of base64 is some 18,000 lines. So, in a
large message, each long run of lines made only of base64 characters is set aside before
parsing and replaced by one line of the same kind (a marker). To the parser such a line can
only be body text (it is never a header, a header continuation, a boundary or a blank line), one
line or many, so it sees the same structure, and every body comes back byte for byte when its
markers are replaced by their runs. The run's last line break stays in place, since the parser
gives the line break before a boundary to the boundary.

Runs come two ways, each in one ``SetAside``:

- ``set_aside(raw)``, over a message in memory: the runs stay where they are, in the message's own
  bytes, and a base64 body that is one run is decoded straight from there, never copied;
- ``StreamedMessage``, fed a message piece by piece as it is downloaded: a run whose lines are
  regular (as mail programs write them) is decoded as it arrives and only its decoded bytes are
  kept, its text made again on the rare demand; an irregular run is kept as text. A large
  attachment is then never in memory twice, encoded and decoded.
"""

from __future__ import annotations

import binascii
import io
import re
from dataclasses import dataclass

from connectors.email.message.codec import encode_lines

MIN_MESSAGE = 64 * 1024  # smaller messages are parsed as they are
MIN_RUN = 4 * 1024
_BASE64_LINES = re.compile(rb"^(?:[A-Za-z0-9+/=]++\r?\n)++", re.MULTILINE)
MARKER = "MailwrightSetAside"
MARKERS = re.compile(MARKER + r"([0-9]{8})")
_MARKER_BYTES = MARKER.encode()
_PADDING_THEN_MORE = re.compile(rb"=[\r\n]*[A-Za-z0-9+/]")
# Regular lines are checked and decoded this many at a time: the copies that takes stay small.
_LINES_AT_ONCE = 256


class Run:
    """One set-aside run: its text as it was in the message, and that text decoded."""

    def text(self) -> bytes | memoryview:
        raise NotImplementedError

    def decoded(self) -> bytes | None:
        """The run's base64 decoded, or None when it needs a careful decoder (see ``decode_run``)."""
        raise NotImplementedError


@dataclass(frozen=True)
class _Span(Run):
    """A run left in the bytes of the message (or kept as its own text)."""

    raw: memoryview
    start: int
    end: int

    def text(self) -> memoryview:
        return self.raw[self.start : self.end]

    def decoded(self) -> bytes | None:
        return decode_run(self.text())


@dataclass(frozen=True)
class _Decoded(Run):
    """A regular run, decoded as it arrived: lines of ``line_length`` characters, the last one no longer."""

    data: bytes
    line_length: int
    line_break: bytes

    def text(self) -> bytes:
        return encode_lines(self.data, self.line_length, self.line_break)

    def decoded(self) -> bytes:
        return self.data


def decode_run(run: bytes | memoryview) -> bytes | None:
    """A run's base64 decoded in place, or None when it needs the careful decoder.

    A run holds only base64 characters and line breaks, so what can be wrong with it is padding
    before its end (which ``a2b_base64`` would stop at, silently) or a length that does not add
    up (which it refuses).
    """
    if _PADDING_THEN_MORE.search(run):
        return None
    try:
        return binascii.a2b_base64(run)
    except binascii.Error:
        return None


@dataclass(frozen=True)
class SetAside:
    """The runs of one message, by the number in their marker."""

    runs: list[Run]

    def run(self, index: int) -> Run:
        return self.runs[index]

    def restore(self, text: str) -> bytes:
        """``text`` (as the parser gave it) in bytes, with its markers replaced by their runs."""
        pieces: list[bytes | memoryview] = []
        done = 0
        for found in MARKERS.finditer(text):
            before = text[done : found.start()].encode("ascii", "surrogateescape")
            pieces += [before, self.run(int(found.group(1))).text()]
            done = found.end()
        pieces.append(text[done:].encode("ascii", "surrogateescape"))
        return b"".join(pieces)


def _breaks_in_place(lines: bytes, width: int, brk: bytes) -> bool:
    """Whether ``lines`` has ``brk`` after every ``width`` characters (its length a multiple of both)."""
    stride = width + len(brk)
    count = len(lines) // stride
    return all(lines[width + i :: stride] == brk[i : i + 1] * count for i in range(len(brk)))


def _marker(index: int) -> bytes:
    return b"%s%08d" % (_MARKER_BYTES, index)


def _last_break(lines: bytes | memoryview) -> bytes:
    return b"\r\n" if lines[-2:] == b"\r\n" else b"\n"


def set_aside(raw: bytes) -> tuple[bytes, SetAside | None]:
    """``raw`` with its long base64 runs replaced by markers, and where the runs are."""
    if len(raw) < MIN_MESSAGE or _MARKER_BYTES in raw:
        return raw, None
    view = memoryview(raw)
    pieces: list[bytes] = []
    runs: list[Run] = []
    done = 0
    for match in _BASE64_LINES.finditer(raw):
        start, end = match.span()
        end -= len(_last_break(view[start:end]))
        if end - start < MIN_RUN:
            continue
        pieces += [raw[done:start], _marker(len(runs))]
        runs.append(_Span(view, start, end))
        done = end
    if not runs:
        return raw, None
    pieces.append(raw[done:])
    return b"".join(pieces), SetAside(runs)


# --- streaming


class _RunBuilder:
    """A run as it arrives, in blocks of whole lines.

    While its lines are regular (one length, a multiple of 4; one kind of line break; only the
    last line shorter; base64 that encodes back to exactly the same text) it is decoded block by
    block; from the first irregularity on it is kept as text.
    """

    def __init__(self, capacity: int) -> None:
        self.length = 0  # characters so far, line breaks included
        self.last_break = b""
        self.line_length = 0
        self.line_break = b""
        self._decoded: io.BytesIO | None = None
        self._text: bytearray | None = None
        self._ended = False  # a short or padded line came: a regular run ends there
        self._capacity = capacity  # the decoded size to expect: the buffer is not grown (and copied) on the way

    def add(self, block: memoryview) -> None:
        self.length += len(block)
        self.last_break = _last_break(block)
        if self._text is None and self._decoded is None:
            self._start(block)
        if self._text is None and not self._decode_regular(block):
            self._text = bytearray(self._decoded_text())
            self._decoded = None
        if self._text is not None:
            self._text += block

    def continue_regular(self, data: bytes, start: int, end: int) -> int:
        """Take the lines of ``data[start:end]`` when all of them go on with this regular run; where
        that leaves the caller (``start``: nothing taken, it scans for the run's end).

        Decoding the lines as they are (``_decode_regular``, which checks that each break is in its
        place and that no other character was skipped, and keeps nothing when it refuses) is much
        faster than the line-by-line scan, and in a large attachment it is what the next piece holds.
        """
        width, brk = self.line_length, self.line_break
        if self._text is not None or self._ended or not width:
            return start
        lines = (end - start) // (width + len(brk))
        block = memoryview(data)[start:end]
        if not lines or len(block) != lines * (width + len(brk)) or not self._decode_regular(block):
            return start
        self.length += len(block)
        self.last_break = brk
        return end

    def _start(self, block: memoryview) -> None:
        # Lines far longer than RFC 2045's 76 characters are not regular.
        head = bytes(block[:1024])
        end_of_line = head.find(b"\n")
        self.line_break = b"\r\n" if head[end_of_line - 1 : end_of_line] == b"\r" else b"\n"
        self.line_length = max(0, end_of_line + 1 - len(self.line_break))
        self._decoded = io.BytesIO()
        if self._capacity:
            self._decoded.seek(self._capacity - 1)
            self._decoded.write(b"\0")
            self._decoded.seek(0)

    def _decode_regular(self, block: memoryview) -> bool:
        """Decode ``block`` when it continues the run regularly; False (nothing kept of it) otherwise."""
        width = self.line_length
        if width == 0 or width % 4 or self._ended:
            return False
        decoded_before = self._decoded.tell()
        step = (width + len(self.line_break)) * _LINES_AT_ONCE
        for start in range(0, len(block), step):
            decoded = self._decode_lines(bytes(block[start : start + step]))
            if decoded is None:
                self._decoded.seek(decoded_before)
                return False
            self._decoded.write(decoded)
        return True

    def _decode_lines(self, chunk: bytes) -> bytes | None:
        """``chunk`` (whole lines of the run) decoded, or None when it breaks the run's regularity.

        Regular text is what encoding its decoded bytes gives back: every quantum is 4 characters
        with padding only at the very end, and the unused bits before the padding are zero.
        """
        width, brk = self.line_length, self.line_break
        stride = width + len(brk)
        full = len(chunk) // stride
        rest = chunk[full * stride :]
        if self._ended:
            return None
        if rest:  # a shorter last line: the run must end with it
            content = rest[: -len(brk)]
            if not rest.endswith(brk) or len(content) >= width or len(content) % 4 or b"\r" in content:
                return None
            self._ended = True
        if not _breaks_in_place(chunk[: full * stride], width, brk):
            return None
        padding = 0
        if b"=" in chunk:
            text = chunk.rstrip(b"\r\n")
            padding = len(text) - len(text.rstrip(b"="))
            if padding > 2 or b"=" in text[: len(text) - padding]:
                return None
            self._ended = True  # nothing may follow padding
        try:
            decoded = binascii.a2b_base64(chunk)  # skips the line breaks, and any other character
        except binascii.Error:  # as many characters as no base64 text has: one was skipped
            return None
        characters = full * width + (len(rest) - len(brk) if rest else 0)
        if len(decoded) != characters // 4 * 3 - padding:  # a character skipped: not a regular run
            return None
        if padding and binascii.b2a_base64(decoded[-(3 - padding) :], newline=False) != text[-4:]:
            return None
        return decoded

    def _decoded_text(self) -> bytes:
        if self._decoded is None or not self._decoded.tell():
            return b""
        data = self._decoded.getvalue()[: self._decoded.tell()]  # the buffer may be longer (capacity)
        return encode_lines(data, self.line_length, self.line_break, terminated=True)

    def text(self) -> bytes:
        """The run so far as it arrived (every line break included)."""
        return bytes(self._text) if self._text is not None else self._decoded_text()

    def finish(self) -> Run:
        """The run without its last line break (which stays in the message)."""
        if self._text is not None:
            text = bytes(self._text[: -len(self.last_break)])
            return _Span(memoryview(text), 0, len(text))
        decoded = self._decoded
        decoded.truncate(decoded.tell())
        return _Decoded(decoded.getvalue(), self.line_length, self.line_break)


class StreamedMessage:
    """A message read piece by piece, its long base64 runs set aside as they arrive.

    ``size_hint`` (the size the server announced) lets a run that spans pieces be decoded into a
    buffer of the right size at once. ``finish`` gives what ``set_aside`` gives for the whole
    message. A message that holds the marker text itself is kept whole, as it came.
    """

    def __init__(self, size_hint: int = 0) -> None:
        self.size = 0
        self._size_hint = size_hint
        self._skeleton = bytearray()  # the message so far without its runs, a marker in place of each
        self._runs: list[Run] = []
        self._pending = bytearray()  # a last line not yet ended
        self._open: _RunBuilder | None = None  # a run that reached the end of the lines scanned so far
        self._tail = b""  # the previous piece's end, where a marker text may have begun
        self._whole: bytearray | None = None

    def feed(self, piece: bytes) -> None:
        self.size += len(piece)
        if self._whole is not None:
            self._whole += piece
            return
        if _MARKER_BYTES in self._tail + piece[: len(_MARKER_BYTES)] or _MARKER_BYTES in piece:
            self._whole = bytearray(self._so_far())
            self._whole += piece
            return
        self._tail = piece[-len(_MARKER_BYTES) :]
        # Whole lines are scanned as they come; a line cut by the end of a piece waits for the rest.
        start = self.size - len(piece)  # where the piece is in the message
        first = piece.find(b"\n") + 1
        if not first:
            self._pending += piece
            return
        if self._pending:
            line = bytes(self._pending) + piece[:first]
            self._pending = bytearray()
            self._scan(line, start + first - len(line))
        else:
            first = 0
        cut = piece.rfind(b"\n") + 1
        self._pending += piece[cut:]
        self._scan(piece, start + first, first, cut)

    def finish(self) -> tuple[bytes, SetAside | None]:
        """The message with its runs replaced by markers, and the runs (None: the message as it came)."""
        if self._whole is not None:
            return bytes(self._whole), None
        self._close_run()
        self._skeleton += self._pending
        self._pending = bytearray()
        # Unlike ``set_aside``, a small message is not left whole: only the engine's large ones come
        # here, and setting runs aside changes nothing in what is read from a message of any size.
        return bytes(self._skeleton), SetAside(self._runs) if self._runs else None

    def _scan(self, data: bytes, offset: int, start: int = 0, end: int | None = None) -> None:
        """Take in the whole lines of ``data[start:end]``; ``data[start]`` is at ``offset`` in the message."""
        end = len(data) if end is None else end
        view = memoryview(data)
        done = self._open.continue_regular(data, start, end) if self._open is not None else start
        for match in _BASE64_LINES.finditer(data, done, end):
            run_start, run_end = match.span()
            if run_start > done:
                self._close_run()  # text came between: the run that was open has ended
            self._skeleton += view[done:run_start]
            if self._open is None:
                # A run that may go on in the next piece is decoded into a buffer sized for the rest of the message.
                remaining = self._size_hint - offset - (run_start - start) if run_end == end else 0
                self._open = _RunBuilder(capacity=remaining * 3 // 4 + 3 if remaining > 0 else 0)
            self._open.add(view[run_start:run_end])
            done = run_end
            if run_end < end:
                self._close_run()
        if done < end:
            self._close_run()
            self._skeleton += view[done:end]

    def _close_run(self) -> None:
        run, self._open = self._open, None
        if run is None:
            return
        if run.length - len(run.last_break) < MIN_RUN:
            self._skeleton += run.text()
            return
        self._skeleton += _marker(len(self._runs)) + run.last_break
        self._runs.append(run.finish())

    def _so_far(self) -> bytes:
        """The message as it came so far."""
        skeleton = SetAside(self._runs).restore(self._skeleton.decode("ascii", "surrogateescape"))
        return skeleton + (self._open.text() if self._open is not None else b"") + bytes(self._pending)
