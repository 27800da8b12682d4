"""The settings of the Email activities (Read Email, Send Email), parsed from plain dicts.

As with ``config.py``, one parser serves the database, the form and the project file, and every
problem comes back at once in a ``ConfigError`` keyed by dotted path (``filters.since``).

Read Email also turns its settings into the arguments of an IMAP ``UID SEARCH``, through the
grammar in ``search.py``.
"""

from __future__ import annotations

from collections.abc import Iterator, Mapping
from dataclasses import dataclass, field
from datetime import date
from email.utils import parseaddr
from functools import lru_cache
from typing import Any

from connectors.base import ConfigError
from connectors.email.config import _bool, _Errors, _int_in_range
from connectors.email.message.build import TARGET_FIELDS, InvalidMessage, build_message
from connectors.email.message.parse import RECORD_KEYS
from connectors.email.search import (
    CONTROL,
    ISO_DATE,
    SearchSyntaxError,
    Token,
    imap_date,
    parse_search,
    search_arguments,
)
from connectors.net import is_valid_hostname

MB = 1024 * 1024

# SPEC §3 / §4: the records a mapping reads from and fills. "defects" is for the run log only.
READ_EMAIL_FIELDS = tuple(key for key in RECORD_KEYS if key != "defects")
SEND_EMAIL_FIELDS = TARGET_FIELDS
# A message cannot be built without these: each needs a default on the activity or a mapping.
SEND_EMAIL_REQUIRED = ("from", "to")

AFTER_READ_ACTIONS = ("mark_read", "move", "delete", "leave")
ON_SKIP_ACTIONS = ("leave", "mark_read", "move", "delete")
ATTACHMENT_MODES = ("include", "skip")
MAX_MESSAGES_RANGE = (1, 10_000)
# The whole message is held in memory while it is parsed: the limit bounds a worker's memory.
SIZE_MB_RANGE = (1, 150)
MAX_TEXT_LENGTH = 1000
DEFAULT_MESSAGE_ID_DOMAIN = "mailwright.local"
_PROBE_ADDRESS = "probe@mailwright.local"



@dataclass(frozen=True)
class ReadFilters:
    from_: str = ""
    to: str = ""
    subject: str = ""
    since: date | None = None  # received on or after: IMAP SINCE compares the arrival date
    # True: only messages with at least one attachment. IMAP has no SEARCH key for it, so the
    # source checks each candidate's BODYSTRUCTURE (no body is downloaded).
    has_attachment: bool = False

    def to_dict(self) -> dict[str, Any]:
        return {
            "from": self.from_,
            "to": self.to,
            "subject": self.subject,
            "since": self.since.isoformat() if self.since else None,
            "has_attachment": self.has_attachment,
        }


@dataclass(frozen=True)
class ReadSettings:
    folder: str = "INBOX"
    unread_only: bool = True
    filters: ReadFilters = field(default_factory=ReadFilters)
    search: str = ""
    max_messages: int = 100
    after_read: str = "mark_read"
    # The folder for both ``after_read`` and ``on_skip`` set to "move".
    move_to: str = ""
    on_skip: str = "leave"
    attachments: str = "include"
    max_attachment_mb: int = 25
    max_message_mb: int = 25

    @property
    def max_message_bytes(self) -> int:
        return self.max_message_mb * MB

    @property
    def max_attachment_bytes(self) -> int:
        return self.max_attachment_mb * MB

    def to_dict(self) -> dict[str, Any]:
        return {
            "folder": self.folder,
            "unread_only": self.unread_only,
            "filters": self.filters.to_dict(),
            "search": self.search,
            "max_messages": self.max_messages,
            "after_read": self.after_read,
            "move_to": self.move_to,
            "on_skip": self.on_skip,
            "attachments": self.attachments,
            "max_attachment_mb": self.max_attachment_mb,
            "max_message_mb": self.max_message_mb,
        }

    def search_arguments(self) -> list[bytes]:
        """The arguments of ``UID SEARCH`` for these settings, ready for the wire.

        ``UNDELETED`` is always there: a message flagged \\Deleted but not yet expunged (a delete
        on a server without UIDPLUS) is gone as far as the user is concerned. Text is quoted;
        non-ASCII text is left as raw UTF-8 for the IMAP client to send as a literal, with
        ``CHARSET UTF-8`` in front.
        """
        tokens: list[Token] = [Token.atom("UNDELETED")]
        if self.unread_only:
            tokens.append(Token.atom("UNSEEN"))
        for key, value in (("FROM", self.filters.from_), ("TO", self.filters.to), ("SUBJECT", self.filters.subject)):
            if value:
                tokens += [Token.atom(key), Token.string(value)]
        if self.filters.since:
            tokens += [Token.atom("SINCE"), Token.atom(imap_date(self.filters.since))]
        if self.search:
            tokens += [Token.atom("("), *parse_search(self.search), Token.atom(")")]
        return search_arguments(tokens)


DEFAULT_MAX_CONNECTIONS = 4
MAX_CONNECTIONS = 16


@dataclass(frozen=True)
class SendSettings:
    # Any of the SPEC §4 input fields but attachments; the mapping overrides each one it sets.
    defaults: dict[str, Any] = field(default_factory=dict)
    # Empty: the domain of the message's From address (see ``message_id_domain_for``).
    message_id_domain: str = ""
    # SMTP connections a run keeps busy at once; a server that allows fewer makes the pool shrink.
    max_connections: int = DEFAULT_MAX_CONNECTIONS

    def to_dict(self) -> dict[str, Any]:
        return {"defaults": dict(self.defaults), "message_id_domain": self.message_id_domain,
                "max_connections": self.max_connections}

    def message_id_domain_for(self, sender: str) -> str:
        """The domain for a new Message-ID: the configured one, else the sender's, else ours."""
        if self.message_id_domain:
            return self.message_id_domain
        return _domain_of(sender or "")


@lru_cache(maxsize=256)
def _domain_of(sender: str) -> str:
    _name, address = parseaddr(sender)
    domain = address.rpartition("@")[2].strip().lower()
    return domain if domain and is_valid_hostname(domain) else DEFAULT_MESSAGE_ID_DOMAIN


# Reading the settings --------------------------------------------------------------------------


def parse_read_settings(data: Mapping[str, Any]) -> ReadSettings:
    """Validate a Read Email activity's settings; raise ``ConfigError`` listing every problem."""
    if not isinstance(data, Mapping):
        raise ConfigError({"": ["must be an object"]})
    errors = _Errors()
    known = {field_name for field_name in ReadSettings.__dataclass_fields__}
    _unknown(errors, "", data, known)

    folder = _folder(errors, "folder", data.get("folder", "INBOX"), required=True) or "INBOX"
    after_read = _choice(errors, "after_read", data.get("after_read"), AFTER_READ_ACTIONS)
    on_skip = _choice(errors, "on_skip", data.get("on_skip"), ON_SKIP_ACTIONS)
    move_to = _folder(errors, "move_to", data.get("move_to"), required="move" in (after_read, on_skip))
    if move_to and move_to == folder:
        errors.add("move_to", "must be another folder than the one read from (it would be read again)")

    search = data.get("search") or ""
    if not isinstance(search, str):
        errors.add("search", "must be text")
        search = ""
    search = search.strip()
    if search:
        try:
            parse_search(search)
        except SearchSyntaxError as exc:
            errors.add("search", str(exc))

    settings = ReadSettings(
        folder=folder,
        unread_only=_bool(errors, "unread_only", data.get("unread_only"), True),
        filters=_filters(errors, data.get("filters")),
        search=search,
        max_messages=_number(errors, "max_messages", data.get("max_messages"), 100, MAX_MESSAGES_RANGE),
        after_read=after_read,
        move_to=move_to,
        on_skip=on_skip,
        attachments=_choice(errors, "attachments", data.get("attachments"), ATTACHMENT_MODES),
        max_attachment_mb=_number(errors, "max_attachment_mb", data.get("max_attachment_mb"), 25, SIZE_MB_RANGE),
        max_message_mb=_number(errors, "max_message_mb", data.get("max_message_mb"), 25, SIZE_MB_RANGE),
    )
    if errors.by_path:
        raise ConfigError(errors.by_path)
    return settings


def _filters(errors: _Errors, data: Any) -> ReadFilters:
    if data is None:
        return ReadFilters()
    if not isinstance(data, Mapping):
        errors.add("filters", "must be an object with from, to, subject, since or has_attachment")
        return ReadFilters()
    _unknown(errors, "filters.", data, {"from", "to", "subject", "since", "has_attachment"})
    return ReadFilters(
        from_=_line(errors, "filters.from", data.get("from")),
        to=_line(errors, "filters.to", data.get("to")),
        subject=_line(errors, "filters.subject", data.get("subject")),
        since=_iso_date(errors, "filters.since", data.get("since")),
        has_attachment=_bool(errors, "filters.has_attachment", data.get("has_attachment"), False),
    )


def parse_send_settings(data: Mapping[str, Any]) -> SendSettings:
    """Validate a Send Email activity's settings; raise ``ConfigError`` listing every problem.

    A default that holds a template (``{{ vars.helpdesk_address }}``) is only checked once it is
    rendered, when the message is built.
    """
    if not isinstance(data, Mapping):
        raise ConfigError({"": ["must be an object"]})
    errors = _Errors()
    _unknown(errors, "", data, {"defaults", "message_id_domain", "max_connections"})

    defaults: dict[str, Any] = {}
    raw_defaults = data.get("defaults") or {}
    if not isinstance(raw_defaults, Mapping):
        errors.add("defaults", "must be an object of default message fields")
        raw_defaults = {}
    allowed = {"from", "to", "cc", "bcc", "reply_to", "subject", "text", "html", "headers"}
    _unknown(errors, "defaults.", raw_defaults, allowed, hint="cannot have a default")
    for name in sorted(allowed & set(raw_defaults)):
        value = raw_defaults[name]
        if value in (None, "", [], {}):
            continue
        problem = _template_problem(name, value) if _has_template(value) else _builder_problem(name, value)
        if problem:
            errors.add(f"defaults.{name}", problem)
        else:
            defaults[name] = value

    domain = data.get("message_id_domain") or ""
    if not isinstance(domain, str) or (domain.strip() and not is_valid_hostname(domain.strip())):
        errors.add("message_id_domain", "must be a domain name, like example.com")
        domain = ""

    connections = data.get("max_connections")
    connections = DEFAULT_MAX_CONNECTIONS if connections is None else connections
    if isinstance(connections, bool) or not isinstance(connections, int) or not 1 <= connections <= MAX_CONNECTIONS:
        errors.add("max_connections", f"must be a whole number from 1 to {MAX_CONNECTIONS}")
        connections = DEFAULT_MAX_CONNECTIONS

    if errors.by_path:
        raise ConfigError(errors.by_path)
    return SendSettings(defaults=defaults, message_id_domain=domain.strip().lower(), max_connections=connections)


def _unknown(errors: _Errors, prefix: str, data: Mapping[str, Any], known: set[str], hint: str = "") -> None:
    for key in sorted(set(data) - known, key=str):
        errors.add(f"{prefix}{key}", hint or "is not a known setting")


def _choice(errors: _Errors, path: str, value: Any, choices: tuple[str, ...]) -> str:
    if value in (None, ""):
        return choices[0]
    if value not in choices:
        errors.add(path, f"must be one of {', '.join(choices)}")
        return choices[0]
    return value


def _number(errors: _Errors, path: str, value: Any, default: int, bounds: tuple[int, int]) -> int:
    if value in (None, ""):
        return default
    return _int_in_range(errors, path, value, *bounds) or default


def _line(errors: _Errors, path: str, value: Any) -> str:
    """One line of text: control characters (CR/LF above all) would break a header or a command."""
    if value in (None, ""):
        return ""
    if not isinstance(value, str):
        errors.add(path, "must be text")
        return ""
    if CONTROL.search(value):
        errors.add(path, "must be a single line of text without control characters")
        return ""
    if len(value) > MAX_TEXT_LENGTH:
        errors.add(path, f"must be at most {MAX_TEXT_LENGTH} characters")
        return ""
    return value.strip()


def _folder(errors: _Errors, path: str, value: Any, *, required: bool) -> str:
    name = _line(errors, path, value)
    if not name and required and not errors.by_path.get(path):
        errors.add(path, "is required")
    return name


def _iso_date(errors: _Errors, path: str, value: Any) -> date | None:
    if value in (None, ""):
        return None
    if isinstance(value, str) and ISO_DATE.match(value.strip()):
        try:
            return date.fromisoformat(value.strip())
        except ValueError:
            pass
    errors.add(path, "must be a date written YYYY-MM-DD")
    return None


def _has_template(value: Any) -> bool:
    return any("{{" in text or "{%" in text for text in _texts(value))


def _template_problem(name: str, value: Any) -> str:
    """A default holding a template is built once rendered; only a line break is wrong already."""
    if name not in ("text", "html") and any("\r" in text or "\n" in text for text in _texts(value)):
        return "contains a line break (header injection)"
    return ""


def _texts(value: Any) -> Iterator[str]:
    if isinstance(value, str):
        yield value
    elif isinstance(value, Mapping):
        for key, item in value.items():
            yield from _texts(key)
            yield from _texts(item)
    elif isinstance(value, (list, tuple)):
        for item in value:
            yield from _texts(item)


def _builder_problem(name: str, value: Any) -> str:
    """What ``build_message`` says about this default, so settings and sending share one set of rules."""
    probe = {"from": _PROBE_ADDRESS, "to": _PROBE_ADDRESS, name: value}
    try:
        build_message(probe, message_id_domain=DEFAULT_MESSAGE_ID_DOMAIN)
    except InvalidMessage as exc:
        return str(exc).removeprefix(f"{exc.field}: ")
    return ""
