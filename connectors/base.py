"""The connector interface and its registry.

A connector is one kind of system Mailwright talks to. Each lives in its own package under
``connectors/`` and registers one ``Connector`` instance here; the designer only ever goes
through this interface, so a second connector is a new package plus one registry line.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator, Mapping, Sequence
from contextlib import AbstractContextManager
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any, ClassVar, Protocol

if TYPE_CHECKING:
    from connectors.net import Deadline


class TokenStore(Protocol):
    """Where a connector keeps what it derives from a connection's secrets (OAuth tokens) between uses.

    The value is opaque text; the designer stores it encrypted, per connection.
    """

    def load(self) -> str: ...

    def save(self, value: str) -> None: ...


class Secrets(dict[str, str]):
    """A connection's decrypted secrets, plus its ``token_store`` (None: nothing is kept between uses).

    The store rides along with the secrets because every path that logs in already receives
    them (Test, runs, the folder picker); a plain ``dict`` still works, without a token cache.
    """

    def __init__(self, values: Mapping[str, str] | None = None, *, token_store: TokenStore | None = None) -> None:
        super().__init__(values or {})
        self.token_store = token_store


class ConnectorError(Exception):
    """A failure of the outside world, told in words a user can act on.

    ``permanent`` separates "retrying will not help" (a 5xx reply, a rejected password) from
    transient trouble (a 4xx reply, a dropped connection) that the engine may retry.
    """

    def __init__(self, message: str, *, permanent: bool = False) -> None:
        super().__init__(message)
        self.message = message
        self.permanent = permanent

    def __str__(self) -> str:
        return self.message


class OutcomeUnknown(ConnectorError):
    """The record went out but its outcome never came back (no reply after SMTP's final dot).

    The target may have accepted it: the engine records it *in doubt* and never sends it again in
    the same run; a later run may resend it only under the same Message-ID, so receivers that
    deduplicate drop the copy.
    """


# Exceptions that stop a run from outside (a worker's time limit): connectors let them through as
# they are, never translated into a ConnectorError. The host application registers its own.
_STOP_EXCEPTIONS: list[type[BaseException]] = []


def register_stop_exception(kind: type[BaseException]) -> None:
    if kind not in _STOP_EXCEPTIONS:
        _STOP_EXCEPTIONS.append(kind)


def is_stop_exception(exc: BaseException) -> bool:
    return isinstance(exc, tuple(_STOP_EXCEPTIONS))


class ConnectionFailed(ConnectorError):
    """The endpoint could not be reached or refused the login: no record was even offered to it.

    Unlike a refusal of one record, this says nothing about the record, so the engine stops
    the run and leaves every record for the next one instead of failing them.
    """


class ConfigError(Exception):
    """A connection's settings are invalid: ``errors`` maps a dotted path to its messages."""

    def __init__(self, errors: Mapping[str, list[str]]) -> None:
        super().__init__("; ".join(f"{path}: {' '.join(msgs)}" for path, msgs in errors.items()))
        self.errors = dict(errors)


@dataclass(frozen=True)
class CheckStep:
    """One line of a connection test: which step, whether it passed, and what we learned."""

    name: str
    ok: bool
    detail: str


@dataclass(frozen=True)
class FieldSpec:
    """One field of the record a source gives or a target takes, as the mapping editor explains it."""

    name: str
    label: str
    type: str
    description: str = ""
    # The keys of each item, for a list of objects (a message's attachments).
    children: tuple[FieldSpec, ...] = ()


@dataclass(frozen=True)
class ActivityType:
    key: str
    label: str
    role: str  # "source" or "target"
    description: str
    # The record a source produces, or the record a target consumes: what a mapping may use or fill.
    fields: tuple[str, ...] = ()


@dataclass(frozen=True)
class SourceKey:
    """Where a source record lives, as the delivery ledger keys it.

    For Email: scope = folder, epoch = UIDVALIDITY, position = UID, identity = Message-ID.
    ``epoch`` changes when the positions of a scope are renumbered; ``identity`` then recognises a
    record already delivered under its old position.
    """

    scope: str
    epoch: int
    position: int
    identity: str = ""


@dataclass
class SourceItem:
    """One record offered by a source: its key, the record, or why it cannot be delivered."""

    key: SourceKey
    record: dict[str, Any] | None
    # Set when the record could not be read (too large, unreadable): the engine records it skipped.
    skip_reason: str = ""
    # What the run history shows for this item even when ``record`` is None.
    summary: dict[str, str] = field(default_factory=dict)
    # Bytes read for it (0: small or unknown): the engine holds one large record at a time.
    size: int = 0


@dataclass(frozen=True)
class Delivery:
    """What a target answered for one accepted record."""

    reply: str
    message_id: str = ""


def no_room_needed(size: int) -> None:
    """``make_room`` for a caller that holds nothing else while records are read."""


class SourceSession(AbstractContextManager):
    """An open source for one run. Reading never changes the source; ``acknowledge`` does."""

    def candidates(self) -> list[SourceKey]:
        """Keys of the records the source would offer now (cheap: no record bodies), oldest first.

        ``identity`` may be empty here; ``fetch`` fills it in.
        """
        raise NotImplementedError

    def fetch(self, keys: Sequence[SourceKey], make_room: Callable[[int], None] = no_room_needed
              ) -> Iterator[SourceItem]:
        """Read the given records, in batches, without marking anything.

        Before each download the source calls ``make_room`` with the bytes it is about to fetch
        (for a record fetched in pieces: before each piece, with the record's size): the engine
        may first finish with a large record it still holds, so that memory holds one large
        record, not two, and it keeps its target busy meanwhile.
        """
        raise NotImplementedError

    def acknowledge(self, keys: Sequence[SourceKey], action: str) -> None:
        """Apply the after-read ``action`` to delivered (or deliberately skipped) records, all or none.

        The engine acknowledges in batches: one round trip for many records instead of one each.
        """
        raise NotImplementedError

    def health(self) -> dict[str, Any]:
        """Backlog facts for the designer (e.g. unread count and age of the oldest unread record)."""
        return {}


@dataclass(frozen=True)
class Prepared:
    """A record made ready by ``TargetSession.prepare``: what ``write`` delivers.

    ``record`` is the record as delivered (with its ``message_id``); ``outgoing`` is the target's
    own built form of it (opaque to the engine, None when the target builds nothing ahead).
    """

    record: dict[str, Any]
    message_id: str
    outgoing: Any = None


class TargetSession(AbstractContextManager):
    """An open target for one run; its connections reused for every record.

    ``parallelism``: how many ``write`` calls may run at once, each on a thread of its own (each
    on a connection of its own); ``prepare`` stays on the caller's thread.
    """

    parallelism: int = 1

    def write(self, prepared: Prepared | Mapping[str, Any], written: Callable[[], None] | None = None) -> Delivery:
        """Deliver one prepared record (a plain record is prepared first); raise
        ConnectorError(permanent=...) when the target refuses it.

        ``written``, when given, may be called once the whole record is handed over, before the
        target's answer: the target has then let go of ``prepared.outgoing`` (the caller may let go
        of the record's content too), so a retry prepares the record again.
        """
        raise NotImplementedError

    def prepare(self, record: Mapping[str, Any], message_id: str | None = None) -> Prepared:
        """Validate and complete a record before delivery, assigning its Message-ID.

        Returns what ``write`` will deliver, with its ``message_id``, so the engine can store the
        id before sending; ``message_id`` given reuses an id (a resend after an unknown outcome).
        Raises ``ValueError`` for a record that can never be delivered as it is.
        """
        raise NotImplementedError


class Connector:
    """What every connector provides. Subclasses set the class attributes and implement the methods."""

    key: ClassVar[str]
    label: ClassVar[str]
    description: ClassVar[str]
    activity_types: ClassVar[tuple[ActivityType, ...]]
    # Names of the secret values this connector may store (encrypted, never rendered back).
    secret_names: ClassVar[tuple[str, ...]]

    def parse_config(self, data: Mapping[str, Any]) -> Any:
        """Validate a plain dict (from the database, a form or a project file) into a typed config.

        Raises ``ConfigError`` with every problem, keyed by dotted path.
        """
        raise NotImplementedError

    def split_secrets(self, data: Mapping[str, Any]) -> tuple[dict[str, Any], dict[str, tuple[str, Any]]]:
        """Separate a project file's connection entry into settings and secrets.

        Returns the settings dict for ``parse_config`` and ``{secret name: (dotted path, raw value)}``.
        """
        raise NotImplementedError

    def required_secret_names(self, config: Any) -> list[str]:
        """The secrets a connection with this config cannot work without."""
        raise NotImplementedError

    def rebinding_changes(self, old: Mapping[str, Any], new: Mapping[str, Any]) -> list[str]:
        """What changed between two stored configs (plain dicts) in where the secrets go (hosts,
        ports, TLS, identity provider), named for a person; stored secrets must not follow such a change."""
        return []

    def check(self, config: Any, secrets: Mapping[str, str]) -> Iterator[CheckStep]:
        """Test the connection step by step; every step is bounded by the config's timeouts."""
        raise NotImplementedError

    def activity_type(self, key: str) -> ActivityType:
        for activity_type in self.activity_types:
            if activity_type.key == key:
                return activity_type
        raise LookupError(f"the {self.label} connector has no activity type {key!r}")

    def unfilled_fields(self, activity_type: str, settings: Mapping[str, Any], mapped: set[str]) -> list[str]:
        """The fields a target needs that neither its stored ``settings`` (defaults) nor the ``mapped``
        fields fill: every record would be refused, so the operation is not ready. None by default."""
        return []

    def parse_activity_settings(self, activity_type: str, data: Mapping[str, Any]) -> Any:
        """Validate an activity's settings (``ConfigError`` keyed by dotted path)."""
        raise NotImplementedError

    def split_record_defaults(self, activity_type: str, data: Mapping[str, Any],
                              per_record: Callable[[Any], bool]) -> tuple[dict[str, Any], dict[str, Any]]:
        """Take out of a target activity's stored settings the defaults of its record fields that
        ``per_record`` picks (templates, which the designer renders for each record like the mapping).

        Returns the settings without them, for ``parse_activity_settings``, and those defaults by record
        field; the designer gives a record the rendered default of every field its mapping left empty.
        """
        return dict(data), {}

    def open_source(self, config: Any, secrets: Mapping[str, str], settings: Any,
                    deadline: Deadline | None = None) -> SourceSession:
        """The source for one run; every network wait of it ends by ``deadline`` (the run's timeout)."""
        raise NotImplementedError

    def open_target(self, config: Any, secrets: Mapping[str, str], settings: Any,
                    deadline: Deadline | None = None) -> TargetSession:
        """The target for one run; every network wait of it ends by ``deadline`` (the run's timeout)."""
        raise NotImplementedError

    # The web layer is reached through properties so that a worker, which never serves a page,
    # never imports a connector's forms and views.

    @property
    def connection_form(self) -> type[Any]:
        """The form class that creates and edits a connection of this kind (one form for both)."""
        raise NotImplementedError

    @property
    def activity_ui(self) -> Mapping[str, Any]:
        """The designer's view of each activity type, by key: settings form, connection check, previews."""
        raise NotImplementedError

    @property
    def urlpatterns(self) -> list[Any]:
        """This connector's own URLs at the site's root, for the designer's URLconf to include."""
        return []

    @property
    def team_urlpatterns(self) -> list[Any]:
        """This connector's own URLs under a team's prefix (``t/<team>/``): views take ``team``."""
        return []

    def bind_connection_form(self, form: Any, request: Any) -> None:
        """Give the connection form what it shows of this request (e.g. a sign-in redirect URI)."""

    def connection_page_context(self, request: Any, connection: Any) -> dict[str, Any]:
        """What the connection page shows about this connector's own features (e.g. a sign-in)."""
        return {}

    def source_lease_key(self, config: Any, settings: Any) -> str:
        """The lease that keeps two runs from reading the same place at once; the same place
        reached through two connections gives the same key."""
        raise NotImplementedError

    def record_identity(self, record: Mapping[str, Any]) -> str:
        """An identity for a source record that has none of its own, from its content."""
        raise NotImplementedError

    def record_summary(self, record: Mapping[str, Any]) -> dict[str, str]:
        """The few facts of a record that run history lists show (text values only)."""
        return {}


_REGISTRY: dict[str, Connector] = {}


def register(connector: Connector) -> Connector:
    _REGISTRY[connector.key] = connector
    return connector


def get_connector(key: str) -> Connector:
    try:
        return _REGISTRY[key]
    except KeyError:
        raise LookupError(f"unknown connector {key!r}; known: {', '.join(sorted(_REGISTRY))}") from None


def all_connectors() -> list[Connector]:
    return sorted(_REGISTRY.values(), key=lambda c: c.label)


def connector_for_activity(activity_type: str) -> Connector:
    """The connector that offers an activity type (each type key belongs to one connector)."""
    for connector in _REGISTRY.values():
        if any(t.key == activity_type for t in connector.activity_types):
            return connector
    known = sorted(t.key for c in _REGISTRY.values() for t in c.activity_types)
    raise LookupError(f"unknown activity type {activity_type!r}; known: {', '.join(known)}")


def activity_ui(activity_type: str) -> Any:
    """The designer's view of an activity type (settings form, checks, previews), from its connector."""
    return connector_for_activity(activity_type).activity_ui[activity_type]


def root_urlpatterns() -> list[Any]:
    """Every connector's own URLs at the site's root."""
    return [pattern for connector in all_connectors() for pattern in connector.urlpatterns]


def team_urlpatterns() -> list[Any]:
    """Every connector's own URLs under a team's prefix."""
    return [pattern for connector in all_connectors() for pattern in connector.team_urlpatterns]
