"""An in-memory connector for engine tests: a mailbox-like source and a recording target.

Registered under the key "fake"; tests configure its behaviour through module-level state.
"""

from __future__ import annotations

import hashlib
from collections.abc import Callable, Iterator, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

from connectors.base import (
    ActivityType,
    ConfigError,
    ConnectorError,
    Delivery,
    Prepared,
    SourceItem,
    SourceKey,
    SourceSession,
    TargetSession,
    no_room_needed,
    register,
)
from connectors.base import Connector as BaseConnector

FIELDS = ("uid", "message_id", "subject", "from", "to", "text")


@dataclass
class FakeWorld:
    """The fake source folder and target, shared by every session of a test."""

    epoch: int = 1
    messages: dict[int, dict[str, Any]] = field(default_factory=dict)
    seen: set[int] = field(default_factory=set)
    sent: list[dict[str, Any]] = field(default_factory=list)
    # Replies the target gives, in order, before accepting: ("transient"|"permanent", text).
    faults: list[tuple[str, str]] = field(default_factory=list)
    ack_fails: bool = False
    next_uid: int = 1

    def add(self, subject: str, message_id: str | None = None, **extra: Any) -> int:
        uid = self.next_uid
        self.next_uid += 1
        self.messages[uid] = {"uid": uid, "message_id": message_id or f"<m{uid}@fake>", "subject": subject,
                              "from": "a@example.com", "to": ["b@example.com"], "text": "hello", **extra}
        return uid

    def recreate(self) -> None:
        """New epoch, positions renumbered: what a recreated IMAP folder does."""
        self.epoch += 1
        renumbered = {}
        for message in sorted(self.messages.values(), key=lambda m: m["uid"]):
            uid = self.next_uid
            self.next_uid += 1
            renumbered[uid] = {**message, "uid": uid}
        self.seen = {uid for uid, m in renumbered.items() if m["uid"] in self.seen}
        self.messages = renumbered


WORLD = FakeWorld()


@dataclass
class FakeSettings:
    max_messages: int = 100
    after_read: str = "mark_read"
    on_skip: str = "leave"

    def to_dict(self) -> dict[str, Any]:
        return {"max_messages": self.max_messages, "after_read": self.after_read, "on_skip": self.on_skip}


class FakeSource(SourceSession):
    def __exit__(self, *exc: object) -> None:
        return None

    def candidates(self) -> list[SourceKey]:
        return [SourceKey("INBOX", WORLD.epoch, uid) for uid in sorted(WORLD.messages) if uid not in WORLD.seen]

    def fetch(self, keys: Sequence[SourceKey], make_room: Callable[[int], None] = no_room_needed
              ) -> Iterator[SourceItem]:
        for key in keys:
            message = WORLD.messages.get(key.position)
            if message is None:
                continue
            make_room(message.get("bytes", 0))
            if message.get("unreadable"):
                yield SourceItem(key, None, skip_reason="unreadable", summary={"subject": message["subject"]})
                continue
            yield SourceItem(SourceKey(key.scope, key.epoch, key.position, message["message_id"]), dict(message),
                             size=message.get("bytes", 0))

    def acknowledge(self, keys: Sequence[SourceKey], action: str) -> None:
        if WORLD.ack_fails:
            raise ConnectorError("IMAP connection lost")
        if any(key.epoch != WORLD.epoch for key in keys):
            raise ConnectorError("folder was recreated")
        for key in keys:
            if action == "delete":
                WORLD.messages.pop(key.position, None)
            else:
                WORLD.seen.add(key.position)

    def health(self) -> dict[str, Any]:
        return {"unread": len(self.candidates())}


class FakeTarget(TargetSession):
    def __exit__(self, *exc: object) -> None:
        return None

    def prepare(self, record: Mapping[str, Any], message_id: str | None = None) -> Prepared:
        if not record.get("to"):
            raise ValueError("to: at least one recipient is required")
        message_id = message_id or f"<out-{len(WORLD.sent)}-{id(record)}@mailwright>"
        return Prepared({**record, "message_id": message_id}, message_id)

    def write(self, prepared: Prepared | Mapping[str, Any], written: Callable[[], None] | None = None) -> Delivery:
        if not isinstance(prepared, Prepared):
            prepared = self.prepare(prepared, prepared.get("message_id"))
        if WORLD.faults:
            kind, text = WORLD.faults.pop(0)
            raise ConnectorError(text, permanent=kind == "permanent")
        WORLD.sent.append(dict(prepared.record))
        return Delivery("250 ok", prepared.message_id)


class FakeConnector(BaseConnector):
    key = "fake"
    label = "Fake"
    description = "In-memory connector for tests"
    activity_types = (
        ActivityType("fake_read", "Fake read", "source", "", FIELDS),
        ActivityType("fake_write", "Fake write", "target", "", ("to", "subject", "text")),
    )
    secret_names = ()

    def parse_config(self, data: Mapping[str, Any]) -> dict[str, Any]:
        return dict(data)

    def parse_activity_settings(self, activity_type: str, data: Mapping[str, Any]) -> FakeSettings:
        unknown = set(data) - {"max_messages", "after_read", "on_skip"}
        if unknown:
            raise ConfigError({k: ["is not a known setting"] for k in unknown})
        return FakeSettings(**data)

    def open_source(self, config: Any, secrets: Mapping[str, str], settings: Any, deadline: Any = None) -> FakeSource:
        return FakeSource()

    def open_target(self, config: Any, secrets: Mapping[str, str], settings: Any, deadline: Any = None) -> FakeTarget:
        return FakeTarget()

    def source_lease_key(self, config: Any, settings: Any) -> str:
        return "source:fake:world"  # one in-memory world

    def record_identity(self, record: Mapping[str, Any]) -> str:
        return "digest:" + hashlib.sha256(repr(sorted(record.items())).encode()).hexdigest()

    def record_summary(self, record: Mapping[str, Any]) -> dict[str, str]:
        return {name: str(record.get(name, "")) for name in ("subject", "from", "to")}


register(FakeConnector())
