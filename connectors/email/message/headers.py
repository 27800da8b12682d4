"""The top-level headers of a message being read: looked up by name, addresses, message ids, date."""

from __future__ import annotations

import re
from datetime import UTC
from email.message import Message
from email.utils import parsedate_to_datetime

from connectors.email.message.addresses import address_pairs
from connectors.email.message.decode import Defects, clean, decode_header_value, unraw


class _Headers:
    """The top-level headers: each value 8-bit-decoded and unfolded once, looked up by name.

    Looking one up notes a duplicate: RFC 5322 allows one of each header the record reads.
    """

    def __init__(self, pairs: list[tuple[str, str]], decoded: list[list[str]], defects: Defects) -> None:
        self._values: dict[str, list[str]] = {}
        for name, value in pairs:
            self._values.setdefault(name.strip().lower(), []).append(value)
        self.decoded = decoded
        self._defects = defects

    def all(self, name: str) -> list[str]:
        values = self._values.get(name.lower(), [])
        if len(values) > 1:
            self._defects.add(f"{name}: {len(values)} headers (all of them are used)")
        return values

    def first(self, name: str) -> str:
        values = self._values.get(name.lower(), [])
        if len(values) > 1:
            self._defects.add(f"{name}: {len(values)} headers (the first is used)")
        return values[0] if values else ""


def read_headers(msg: Message, defects: Defects) -> _Headers:
    pairs: list[tuple[str, str]] = []
    decoded: list[list[str]] = []
    for raw_name, raw_value in msg.items():
        # Most names and values are printable ASCII (no 8-bit byte, no fold, no control character),
        # and most values hold no encoded word: all that decoding would do to them is strip them.
        if raw_name.isascii() and raw_name.isprintable():
            name = raw_name.strip()
        else:
            name = clean(unraw(raw_name, "header name", defects), "header name", defects)
        if raw_value.isascii() and raw_value.isprintable() and "=?" not in raw_value:
            pairs.append((name, raw_value))
            decoded.append([name, raw_value.strip()])
            continue
        where = name[:60]  # a hostile name can be megabytes long; defects quote it
        value = unraw(raw_value, where, defects)
        pairs.append((name, value))
        decoded.append([name, decode_header_value(value, where, defects)])
    return _Headers(pairs, decoded, defects)


_SPECIALS = re.compile(r'[()<>@,;:\\".\[\]]')


def read_addresses(values: list[str], where: str, defects: Defects) -> list[str]:
    """Display strings of the addresses in header values (8-bit decoded, encoded words still encoded)."""
    if not values:
        return []
    # Split before decoding: a decoded display name may contain a comma or angle brackets.
    found: list[str] = []
    for name, addr in address_pairs(values):
        name = decode_header_value(name, where, defects)
        addr = clean(addr, where, defects)
        if addr or name:
            found.append(_display(name, addr))
    # Nothing without an "@" is lost: that is an empty group such as "undisclosed-recipients:;".
    if not found and any("@" in v for v in values):
        defects.add(f"{where}: no address could be read (the header text is kept)")
        found = [decode_header_value(", ".join(values), where, defects)]
    return found


def _display(name: str, addr: str) -> str:
    if not name:
        return addr
    if _SPECIALS.search(name):
        name = '"' + name.replace("\\", "\\\\").replace('"', '\\"') + '"'
    return f"{name} <{addr}>" if addr else name


_MESSAGE_ID = re.compile(r"<[^<>\s]+>")


def message_ids(value: str) -> list[str]:
    """The ids in a Message-ID / In-Reply-To / References value, each as ``<id>``."""
    ids = _MESSAGE_ID.findall(value)
    if not ids:  # some mailers leave the brackets out
        ids = [f"<{token}>" for token in (t.strip("<>") for t in value.split()) if token]
    return [i for i in ids if i.isprintable()]


def read_date(value: str, defects: Defects) -> str:
    if not value.strip():
        return ""
    text = decode_header_value(value, "Date", defects)
    try:
        moment = parsedate_to_datetime(text)
        # "-0000" means "zone unknown" and gives a naive datetime; UTC is the honest reading.
        moment = moment.replace(tzinfo=UTC) if moment.tzinfo is None else moment.astimezone(UTC)
    except (TypeError, ValueError, IndexError, OverflowError):
        defects.add("Date: not a valid date (kept as text)")
        return text
    return moment.isoformat()
