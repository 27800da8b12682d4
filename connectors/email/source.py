"""The Read Email source: one IMAP folder, read without side effects, acknowledged in batches.

Reading only ever uses FETCH items that leave the flags alone (``RFC822.SIZE``, ``FLAGS``,
``BODYSTRUCTURE``, ``BODY.PEEK[...]``), so a run that crashes, a preview and a failed delivery
mark nothing. Only ``acknowledge`` writes, after the engine knows the target accepted the
messages, and only once it has checked that the folder still has the UIDVALIDITY the keys were
taken under: otherwise a UID could name another message.

Memory stays bounded by a batch: sizes are asked first (a message above the limit is offered
as skipped and its body never downloaded), then bodies are fetched ``BODY_BATCH_BYTES`` at a
time and handed out one by one; a message larger than ``PIECE_BYTES`` is fetched alone, in
pieces (``pieces``: the next asked for while one is read), its attachments decoded as they
arrive. Before each download the engine is told its size (``make_room``), so it can first
finish with a large message it still holds.

A dropped connection is reconnected once per session (SELECT again, same UIDVALIDITY required)
and the command retried; a second drop is a transient ``ConnectorError`` for the engine.
"""

from __future__ import annotations

import contextlib
import imaplib
from collections.abc import Callable, Iterator, Mapping, Sequence
from datetime import UTC, datetime
from typing import Any, TypeVar

from imapclient.response_parser import parse_message_list

from connectors import net
from connectors.base import ConnectorError, SourceItem, SourceKey, SourceSession, no_room_needed
from connectors.email.activities import MB, ReadSettings
from connectors.email.config import EmailConfig
from connectors.email.errors import translate
from connectors.email.fetched import item_named
from connectors.email.imap import GuardedIMAPClient, open_imap
from connectors.email.message.parse import MessageTooComplex, parse_message
from connectors.email.message.setaside import StreamedMessage
from connectors.email.pieces import PIECE_BYTES, PieceReader

T = TypeVar("T")

# UIDs per FETCH of sizes and flags; their bodies are then fetched in batches within them, so this also
# bounds a batch of small messages (200 of 5 KB: one round trip where 50 took four).
PROBE_BATCH = 200
# Bodies per FETCH, by their RFC822.SIZE (one message at least). Small, because memory is counted
# in messages: a large message is fetched on its own, never alongside others it would double.
BODY_BATCH_BYTES = 1 * MB
STRUCTURE_BATCH = 500  # UIDs per FETCH BODYSTRUCTURE for the has_attachment filter
SUMMARY_HEADERS = "MESSAGE-ID SUBJECT FROM TO DATE"

# What a connection that went away raises: imaplib's abort (EOF, BYE), socket errors, timeouts.
_CONNECTION_LOST = (imaplib.IMAP4.abort, OSError, EOFError)


class EmailSource(SourceSession):
    """A Read Email activity's folder, open for one run. Use as a context manager."""

    def __init__(self, config: EmailConfig, secrets: Mapping[str, str], settings: ReadSettings,
                 deadline: net.Deadline | None = None) -> None:
        self.config = config
        self.deadline = deadline
        self.secrets = secrets
        self.settings = settings
        self.folder = settings.folder
        self.uidvalidity = 0
        self._client: GuardedIMAPClient | None = None
        self._session: contextlib.ExitStack | None = None
        self._reconnects_left = 1
        self._pieces = PieceReader()

    # Session ------------------------------------------------------------------------------------

    def __enter__(self) -> EmailSource:
        self._connect()
        return self

    def __exit__(self, *exc: object) -> None:
        self._disconnect()

    def _connect(self) -> GuardedIMAPClient:
        session = contextlib.ExitStack()
        try:
            client = session.enter_context(open_imap(self.config, self.secrets, deadline=self.deadline))
            with client.translating(f"open the folder {self.folder}"):
                uidvalidity = self._select(client)
        except BaseException:
            session.close()
            raise
        if self.uidvalidity and uidvalidity != self.uidvalidity:
            session.close()
            raise _recreated(self.folder, "the run stops here")
        self._session, self._client, self.uidvalidity = session, client, uidvalidity
        return client

    def _disconnect(self) -> None:
        session, self._session, self._client = self._session, None, None
        self._pieces.forget()
        if session is not None:
            session.close()

    def _select(self, client: GuardedIMAPClient) -> int:
        """SELECT the folder (read-write: acknowledging stores flags) and return its UIDVALIDITY."""
        return int(client.select_folder(self.folder, readonly=False)[b"UIDVALIDITY"])

    def _run(self, what: str, command: Callable[[GuardedIMAPClient], T], reads_pieces: bool = False) -> T:
        """Run ``command`` on the session; after a dropped connection reconnect once and run it again.
        A piece asked for ahead is read first, unless ``command`` ``reads_pieces`` (``pieces``).

        Repeating a command is harmless: SEARCH, FETCH, STORE, MOVE and EXPUNGE of one UID are
        idempotent; at worst a COPY (a move without MOVE) interrupted after it was done leaves a
        second copy in the destination, never a lost message.
        """
        while True:
            client = self._client or self._connect()
            timeout = client.read_timeout()
            try:
                net.set_timeout(client.socket(), timeout)
                if not reads_pieces:
                    self._pieces.settle(client)
                return command(client)
            except Exception as exc:  # noqa: BLE001 - every failure becomes a ConnectorError
                error = translate(exc, server=client.server, phase=what, timeout=timeout, secrets=self.secrets)
                if not isinstance(exc, _CONNECTION_LOST):
                    raise error from None
                self._disconnect()
                if self._reconnects_left <= 0:
                    raise ConnectorError(f"{error.message}; the connection was lost twice in this run") from None
                self._reconnects_left -= 1

    # Reading ------------------------------------------------------------------------------------

    def candidates(self) -> list[SourceKey]:
        arguments = self.settings.search_arguments()
        uids = self._run(f"search {self.folder}", lambda client: _uid_search(client, arguments))
        if self.settings.filters.has_attachment:
            uids = self._with_attachments(uids)
        return [SourceKey(self.folder, self.uidvalidity, uid) for uid in sorted(uids)]

    def _with_attachments(self, uids: list[int]) -> list[int]:
        kept: list[int] = []
        for batch in _chunks(sorted(uids), STRUCTURE_BATCH):
            found = self._run("read message structures", lambda client, b=batch: client.fetch(b, ["BODYSTRUCTURE"]))
            kept += [uid for uid in batch if uid in found and has_attachment(found[uid].get(b"BODYSTRUCTURE"))]
        return kept

    def fetch(self, keys: Sequence[SourceKey], make_room: Callable[[int], None] = no_room_needed
              ) -> Iterator[SourceItem]:
        """Yield the messages of ``keys`` in order; a message that vanished meanwhile is left out."""
        if any(key.epoch != self.uidvalidity for key in keys):
            raise _recreated(self.folder, "not reading UIDs found before")
        for chunk in _chunks(list(keys), PROBE_BATCH):
            uids = [key.position for key in chunk]
            probe = self._run("read message sizes", lambda client, u=uids: client.fetch(u, ["RFC822.SIZE", "FLAGS"]))
            batch: list[tuple[SourceKey, int, tuple[str, ...]]] = []
            batch_bytes = 0
            for key in chunk:
                facts = probe.get(key.position)
                if facts is None or b"RFC822.SIZE" not in facts:
                    continue  # expunged since the search
                size = int(facts[b"RFC822.SIZE"])
                flags = _flags(facts.get(b"FLAGS", ()))
                if size > self.settings.max_message_bytes or size > PIECE_BYTES:  # not in a batch
                    yield from self._bodies(batch, make_room)
                    batch, batch_bytes = [], 0
                    if size > self.settings.max_message_bytes:
                        yield self._oversized(key, size, flags)
                    else:
                        yield from self._downloaded_in_pieces(key, size, flags, make_room)
                    continue
                if batch and batch_bytes + size > BODY_BATCH_BYTES:
                    yield from self._bodies(batch, make_room)
                    batch, batch_bytes = [], 0
                batch.append((key, size, flags))
                batch_bytes += size
            yield from self._bodies(batch, make_room)

    def _bodies(self, batch: list[tuple[SourceKey, int, tuple[str, ...]]], make_room: Callable[[int], None]
                ) -> Iterator[SourceItem]:
        if not batch:
            return
        make_room(sum(size for _key, size, _flags in batch))
        uids = [key.position for key, _size, _flags in batch]
        # At most a piece and a byte each: a server that announces less than it holds cannot make
        # a batch bring in more than the pieces would; such a message goes on in pieces.
        item = f"BODY.PEEK[]<0.{PIECE_BYTES + 1}>"
        bodies = self._run(f"download {len(uids)} messages", lambda client: client.fetch(uids, [item]))
        for key, size, flags in batch:
            raw = item_named(bodies.get(key.position, {}), b"BODY[]")
            bodies.pop(key.position, None)
            if raw is None:
                continue  # expunged since the sizes were read
            if len(raw) > PIECE_BYTES:
                del raw
                yield from self._downloaded_in_pieces(key, size, flags, make_room)
                continue
            yield self._item(key, raw, flags)
            del raw  # parsed: the engine need not hold the raw bytes too while it delivers

    def _downloaded_in_pieces(self, key: SourceKey, size: int, flags: tuple[str, ...],
                              make_room: Callable[[int], None]) -> Iterator[SourceItem]:
        """A large message, ``PIECE_BYTES`` at a time: its attachments are decoded as they arrive."""
        message = StreamedMessage(size_hint=size)
        uid = key.position
        named = False  # whether the server names pieces by their origin: then the next is asked for ahead
        while True:
            make_room(size)
            piece, named = self._run(
                f"download message {uid}",
                lambda client, ahead=named: self._pieces.read(client, uid, message.size, size, ahead),
                reads_pieces=True)
            if piece is None:
                return  # expunged since the sizes were read
            message.feed(piece)
            if message.size > self.settings.max_message_bytes:  # more than the server announced
                yield self._oversized(key, message.size, flags, announced=size)
                return
            # A short piece is the last one; a server that gives less than asked before the size
            # it announced is asked again from there, until it gives nothing.
            if not piece or (len(piece) < PIECE_BYTES and message.size >= size):
                break
            del piece
        yield self._item(key, message, flags)

    def _item(self, key: SourceKey, raw: bytes | StreamedMessage, flags: tuple[str, ...]) -> SourceItem:
        try:
            record = self._parse(key, raw, flags)
        except MessageTooComplex as exc:
            return SourceItem(key, None, skip_reason=str(exc))
        return SourceItem(_with_identity(key, record), record, summary=summarize(record), size=record["size"])

    def _parse(self, key: SourceKey, raw: bytes | StreamedMessage, flags: tuple[str, ...]) -> dict[str, Any]:
        return parse_message(
            raw,
            uid=key.position,
            uidvalidity=self.uidvalidity,
            folder=self.folder,
            flags=flags,
            include_attachments=self.settings.attachments == "include",
            max_attachment_bytes=self.settings.max_attachment_bytes,
        )

    def _oversized(self, key: SourceKey, size: int, flags: tuple[str, ...], announced: int | None = None
                   ) -> SourceItem:
        """A message above the size limit: skipped with a reason; only a few headers are read."""
        item = f"BODY.PEEK[HEADER.FIELDS ({SUMMARY_HEADERS})]"
        found = self._run("read message headers", lambda client: client.fetch([key.position], [item]))
        header = item_named(found.get(key.position, {}), b"BODY[HEADER") or b""
        try:
            record = parse_message(
                header, uid=key.position, uidvalidity=self.uidvalidity, folder=self.folder, flags=flags
            )
        except MessageTooComplex:  # thousands of copies of a summary header: nothing worth showing
            record = {}
        reason = f"message is {size / MB:.1f} MB, larger than the limit of {self.settings.max_message_mb} MB"
        if announced is not None:
            reason = (f"message is larger than the limit of {self.settings.max_message_mb} MB "
                      f"(the server announced {announced} bytes, then sent more)")
        return SourceItem(_with_identity(key, record), None, skip_reason=reason, summary=summarize(record))

    # Acknowledging ------------------------------------------------------------------------------

    def acknowledge(self, keys: Sequence[SourceKey], action: str) -> None:
        """Apply ``mark_read``, ``move``, ``delete`` or ``leave`` to the messages of ``keys``, in one command."""
        handlers: dict[str, Callable[[GuardedIMAPClient, list[int]], None]] = {
            "mark_read": self._mark_read,
            "move": self._move,
            "delete": self._delete,
        }
        if action != "leave" and action not in handlers:
            raise ValueError(f"unknown after-read action {action!r}")
        if any(key.scope != self.folder for key in keys):
            raise ValueError(f"a key is from another folder than {self.folder}, the one this source reads")
        if action == "leave" or not keys:
            return
        epochs = {key.epoch for key in keys}
        uids = sorted({key.position for key in keys})

        def command(client: GuardedIMAPClient) -> None:
            # SELECT again rather than STATUS: STATUS on the selected folder may answer from the
            # session's cache (Dovecot does) and miss a folder deleted and created meanwhile.
            if epochs != {self._select(client)}:
                raise _recreated(self.folder, "not acknowledging")
            handlers[action](client, uids)

        which = f"message {uids[0]}" if len(uids) == 1 else f"{len(uids)} messages"
        what = {"mark_read": f"mark {which} read", "move": f"move {which} to {self.settings.move_to}"}
        self._run(what.get(action, f"delete {which}"), command)

    def _mark_read(self, client: GuardedIMAPClient, uids: list[int]) -> None:
        client.add_flags(uids, [b"\\Seen"], silent=True)

    def _move(self, client: GuardedIMAPClient, uids: list[int]) -> None:
        target = self.settings.move_to
        if client.has_capability("MOVE"):
            client.move(uids, target)
            return
        client.copy(uids, target)
        self._delete(client, uids)

    def _delete(self, client: GuardedIMAPClient, uids: list[int]) -> None:
        """Flag \\Deleted and expunge these UIDs only.

        Without UIDPLUS a plain EXPUNGE would also remove every other message someone flagged
        \\Deleted, so the flag stays and the messages go at the server's next expunge; our
        search skips deleted messages meanwhile.
        """
        client.add_flags(uids, [b"\\Deleted"], silent=True)
        if client.has_capability("UIDPLUS"):
            client.uid_expunge(uids)

    # Health -------------------------------------------------------------------------------------

    def health(self) -> dict[str, Any]:
        """Total and unread messages of the folder and how long its oldest unread one has waited."""

        def command(client: GuardedIMAPClient) -> dict[str, Any]:
            total = int(client.select_folder(self.folder, readonly=False)[b"EXISTS"])
            unread = client.search([b"UNSEEN", b"UNDELETED"])
            received = None
            if unread:
                found = client.fetch([min(unread)], ["INTERNALDATE"])
                received = next(iter(found.values()), {}).get(b"INTERNALDATE")
            return {"total": total, "unread": len(unread), "oldest_unread_received": received}

        facts = self._run(f"count the messages in {self.folder}", command)
        received = facts.pop("oldest_unread_received")
        oldest = received.astimezone(UTC) if isinstance(received, datetime) else None  # naive = local
        age = int((datetime.now(UTC) - oldest).total_seconds()) if oldest else None
        return {
            "folder": self.folder,
            **facts,
            "oldest_unread_at": oldest.isoformat() if oldest else None,
            "oldest_unread_age_seconds": max(age, 0) if age is not None else None,
        }


def list_folders(config: EmailConfig, secrets: Mapping[str, str]) -> list[str]:
    """The folders a Read Email activity can read, INBOX first, for the folder picker."""
    with open_imap(config, secrets) as client, client.translating("list the folders"):
        entries = client.list_folders()
    unselectable = {b"\\NOSELECT", b"\\NONEXISTENT"}
    names = [name for flags, _delimiter, name in entries if not {f.upper() for f in flags} & unselectable]
    return sorted(names, key=lambda name: (name.upper() != "INBOX", name.lower()))


def has_attachment(structure: Any) -> bool:
    """Whether a BODYSTRUCTURE (as imapclient parses it) has a part a mail client shows as attached.

    That is a part with ``Content-Disposition: attachment``, or one that carries a file name (an
    inline image without a name is part of the HTML, not an attachment). A forwarded message
    counts as one attachment; its own parts are not looked into.
    """
    if not isinstance(structure, tuple) or not structure:
        return False
    if isinstance(structure[0], list):  # multipart: (parts, subtype, ...)
        return any(has_attachment(part) for part in structure[0])
    kind = _lower(structure[0])
    subtype = _lower(structure[1]) if len(structure) > 1 else ""
    # RFC 3501 body-type-*: the disposition follows the extra fields of text and message/rfc822.
    position = {"text": 9, "message": 11 if subtype == "rfc822" else 8}.get(kind, 8)
    disposition = structure[position] if len(structure) > position else None
    params = structure[2] if len(structure) > 2 else None
    if isinstance(disposition, tuple) and disposition:
        if _lower(disposition[0]) == "attachment":
            return True
        if "filename" in _param_names(disposition[1] if len(disposition) > 1 else None):
            return True
    return "name" in _param_names(params)


def _recreated(folder: str, consequence: str) -> ConnectorError:
    return ConnectorError(f"the folder {folder} was recreated (UIDVALIDITY changed); {consequence}")


def summarize(record: Mapping[str, Any]) -> dict[str, str]:
    """Subject, from and to as one line each, for the run history."""
    return {name: _one_line(record.get(name)) for name in ("subject", "from", "to")}


def _one_line(value: Any) -> str:
    if value is None:
        return ""
    if isinstance(value, (list, tuple)):
        return ", ".join(_one_line(item) for item in value)
    return " ".join(str(value).split())


def _with_identity(key: SourceKey, record: Mapping[str, Any]) -> SourceKey:
    return SourceKey(key.scope, key.epoch, key.position, str(record.get("message_id") or ""))


def _uid_search(client: GuardedIMAPClient, arguments: list[bytes]) -> list[int]:
    """UID SEARCH with arguments already quoted by ``ReadSettings.search_arguments``.

    imapclient's public ``search`` would quote them again (a list) or send the whole criteria
    as one literal when any of it is non-ASCII (a string); its raw command sends our arguments
    as they are, 8-bit ones as literals.
    """
    return [int(uid) for uid in parse_message_list(client._raw_command_untagged(b"SEARCH", arguments))]


def _flags(raw: Sequence[Any]) -> tuple[str, ...]:
    names = (f.decode("utf-8", "replace") if isinstance(f, bytes) else str(f) for f in raw)
    return tuple(name for name in names if name != "\\Recent")  # per-session noise


def _param_names(params: Any) -> set[str]:
    if not isinstance(params, tuple):
        return set()
    return {_lower(name) for name in params[::2]}


def _lower(value: Any) -> str:
    return value.decode("ascii", "replace").lower() if isinstance(value, bytes) else str(value or "").lower()


def _chunks(items: list[T], size: int) -> Iterator[list[T]]:
    for start in range(0, len(items), size):
        yield items[start : start + size]
