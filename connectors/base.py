"""The connector interface and its registry.

A connector is one kind of system Mailwright talks to. Each lives in its own package under
``connectors/`` and registers one ``Connector`` instance here; the designer only ever goes
through this interface, so a second connector is a new package plus one registry line.
"""

from __future__ import annotations

from collections.abc import Iterator, Mapping
from dataclasses import dataclass
from typing import Any, ClassVar


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
class ActivityType:
    key: str
    label: str
    role: str  # "source" or "target"
    description: str


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

    def check(self, config: Any, secrets: Mapping[str, str]) -> Iterator[CheckStep]:
        """Test the connection step by step; every step is bounded by the config's timeouts."""
        raise NotImplementedError


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
