"""The settings of an Email connection: parsed and validated from a plain dict.

The same dict shape is stored in the database, built by the form and read from a project file
(SPEC §8), so one parser gives every entry point the same rules and the same messages, each keyed
by its dotted path (``imap.port``).
"""

from __future__ import annotations

import ssl
from collections import defaultdict
from collections.abc import Mapping
from dataclasses import asdict, dataclass, field
from typing import Any

from connectors.base import ConfigError
from connectors.email.auth import AUTH_METHODS
from connectors.net import is_valid_hostname

SECURITY_MODES = ("ssl", "starttls", "none")
IMAP_DEFAULT_PORTS = {"ssl": 993, "starttls": 143, "none": 143}
SMTP_DEFAULT_PORTS = {"ssl": 465, "starttls": 587, "none": 25}
# Bounds the courtesy LOGOUT / QUIT when closing: a dead server must not hold the caller up.
CLOSE_TIMEOUT = 5.0
CONNECT_TIMEOUT_RANGE = (1, 120)
READ_TIMEOUT_RANGE = (1, 600)



@dataclass(frozen=True)
class ServerSettings:
    host: str
    port: int
    security: str
    verify_tls: bool = True


@dataclass(frozen=True)
class EmailConfig:
    imap: ServerSettings | None
    smtp: ServerSettings | None
    auth_method: str
    auth: dict[str, Any] = field(default_factory=dict)
    ca_pem: str = ""
    connect_timeout: float = 10
    read_timeout: float = 30
    ehlo_name: str = ""

    def to_dict(self) -> dict[str, Any]:
        return {
            "imap": asdict(self.imap) if self.imap else None,
            "smtp": asdict(self.smtp) if self.smtp else None,
            "auth": {"method": self.auth_method, **self.auth},
            "ca_pem": self.ca_pem,
            "timeouts": {"connect": self.connect_timeout, "read": self.read_timeout},
            "ehlo_name": self.ehlo_name,
        }


class _Errors:
    def __init__(self) -> None:
        self.by_path: dict[str, list[str]] = defaultdict(list)

    def add(self, path: str, message: str) -> None:
        self.by_path[path].append(message)


def _int_in_range(errors: _Errors, path: str, value: Any, low: int, high: int) -> int | None:
    if isinstance(value, bool) or not isinstance(value, (int, float, str)):
        errors.add(path, "must be a whole number")
        return None
    try:
        number = int(str(value).strip())
    except ValueError:
        errors.add(path, "must be a whole number")
        return None
    if not low <= number <= high:
        errors.add(path, f"must be between {low} and {high}")
        return None
    return number


def _bool(errors: _Errors, path: str, value: Any, default: bool) -> bool:
    if value is None:
        return default
    if not isinstance(value, bool):
        errors.add(path, "must be true or false")
        return default
    return value


def _server(errors: _Errors, path: str, data: Any, default_ports: Mapping[str, int]) -> ServerSettings | None:
    if data is None:
        return None
    if not isinstance(data, Mapping):
        errors.add(path, "must be an object with host, port and security")
        return None
    unknown = set(data) - {"host", "port", "security", "verify_tls"}
    for key in sorted(unknown):
        errors.add(f"{path}.{key}", "is not a known setting")
    host = data.get("host")
    if not isinstance(host, str) or not host.strip():
        errors.add(f"{path}.host", "is required")
        host = ""
    else:
        host = host.strip()
        if not is_valid_hostname(host):
            errors.add(f"{path}.host", "must be a host name or IP address (no scheme, port or spaces)")
    security = data.get("security", "ssl")
    if security not in SECURITY_MODES:
        errors.add(f"{path}.security", f"must be one of {', '.join(SECURITY_MODES)}")
        security = "ssl"
    port_value = data.get("port")
    if port_value in (None, ""):
        port = default_ports[security]
    else:
        port = _int_in_range(errors, f"{path}.port", port_value, 1, 65535) or 0
    verify = _bool(errors, f"{path}.verify_tls", data.get("verify_tls"), True)
    return ServerSettings(host=host, port=port, security=security, verify_tls=verify)


def _check_ca_pem(errors: _Errors, value: Any) -> str:
    if value in (None, ""):
        return ""
    if not isinstance(value, str):
        errors.add("ca_pem", "must be PEM text")
        return ""
    value = value.strip()
    if "-----BEGIN CERTIFICATE-----" not in value:
        errors.add("ca_pem", "must contain at least one PEM certificate (-----BEGIN CERTIFICATE-----)")
        return ""
    try:
        ssl.create_default_context(cadata=value)
    except (ssl.SSLError, ValueError):
        errors.add("ca_pem", "is not a readable PEM certificate")
        return ""
    return value + "\n"


def parse_email_config(data: Mapping[str, Any]) -> EmailConfig:
    """Validate ``data`` and return the typed config; raise ``ConfigError`` listing every problem."""
    errors = _Errors()
    if not isinstance(data, Mapping):
        raise ConfigError({"": ["must be an object"]})
    known = {"imap", "smtp", "auth", "ca_pem", "timeouts", "ehlo_name"}
    for key in sorted(set(data) - known):
        errors.add(key, "is not a known setting")

    imap = _server(errors, "imap", data.get("imap"), IMAP_DEFAULT_PORTS)
    smtp = _server(errors, "smtp", data.get("smtp"), SMTP_DEFAULT_PORTS)
    if data.get("imap") is None and data.get("smtp") is None:
        errors.add("imap", "give an IMAP server, an SMTP server or both")

    auth = data.get("auth")
    method_key = "password"
    auth_settings: dict[str, Any] = {}
    if not isinstance(auth, Mapping):
        errors.add("auth", "must be an object with a method")
    else:
        method_key = auth.get("method")
        method = AUTH_METHODS.get(method_key) if isinstance(method_key, str) else None
        if method is None:
            errors.add("auth.method", f"must be one of {', '.join(AUTH_METHODS)}")
            method_key = "password"
        else:
            allowed = {"method"} | {f.name for f in method.fields}
            for key in sorted(set(auth) - allowed):
                errors.add(f"auth.{key}", f"is not a setting of the {method.key} method")
            # Fields that depend on another (``when``) come last, once what they depend on is known.
            for f in sorted(method.setting_fields, key=lambda f: f.when is not None):
                if not f.applies(auth_settings):
                    continue  # another grant's field: not used, so not kept
                value = auth.get(f.name)
                if value in (None, ""):
                    if f.default:
                        auth_settings[f.name] = f.default
                    elif f.required:
                        errors.add(f"auth.{f.name}", "is required")
                    continue
                if not isinstance(value, str) or "\r" in value or "\n" in value:
                    errors.add(f"auth.{f.name}", "must be a single line of text")
                    continue
                value = value.strip()
                if f.choices and value not in dict(f.choices):
                    errors.add(f"auth.{f.name}", f"must be one of {', '.join(v for v, _ in f.choices)}")
                    continue
                problem = f.check(value) if f.check else None
                if problem:
                    errors.add(f"auth.{f.name}", problem)
                    continue
                auth_settings[f.name] = value
            if imap is not None and not method.supports_imap:
                errors.add("auth.method", "an IMAP server needs a login; choose another method or remove IMAP")

    timeouts = data.get("timeouts") or {}
    connect_timeout: float = 10
    read_timeout: float = 30
    if not isinstance(timeouts, Mapping):
        errors.add("timeouts", "must be an object with connect and read seconds")
    else:
        if timeouts.get("connect") not in (None, ""):
            connect_timeout = (
                _int_in_range(errors, "timeouts.connect", timeouts["connect"], *CONNECT_TIMEOUT_RANGE) or 10
            )
        if timeouts.get("read") not in (None, ""):
            read_timeout = _int_in_range(errors, "timeouts.read", timeouts["read"], *READ_TIMEOUT_RANGE) or 30

    ehlo_name = data.get("ehlo_name") or ""
    if not isinstance(ehlo_name, str) or (ehlo_name and not is_valid_hostname(ehlo_name.strip())):
        errors.add("ehlo_name", "must be a host name")
        ehlo_name = ""

    ca_pem = _check_ca_pem(errors, data.get("ca_pem"))

    if errors.by_path:
        raise ConfigError(errors.by_path)
    return EmailConfig(
        imap=imap,
        smtp=smtp,
        auth_method=method_key,
        auth=auth_settings,
        ca_pem=ca_pem,
        connect_timeout=connect_timeout,
        read_timeout=read_timeout,
        ehlo_name=ehlo_name.strip(),
    )


def split_email_secrets(data: Mapping[str, Any]) -> tuple[dict[str, Any], dict[str, tuple[str, Any]]]:
    """Take the secret fields of the auth method out of ``auth`` (they live there in project files)."""
    config = dict(data)
    auth = config.get("auth")
    if not isinstance(auth, Mapping):
        return config, {}
    auth = dict(auth)
    method = AUTH_METHODS.get(auth.get("method")) if isinstance(auth.get("method"), str) else None
    secrets: dict[str, tuple[str, Any]] = {}
    for f in method.secret_fields if method else ():
        if f.name in auth:
            value = auth.pop(f.name)
            if f.applies(auth):  # another grant's password is dropped, never stored
                secrets[f.name] = (f"auth.{f.name}", value)
    config["auth"] = auth
    return config, secrets


# Where stored secrets go: changing any of these requires them to be entered again.
_BINDING_FIELDS = (
    (("imap", "host"), "the IMAP host"), (("imap", "port"), "the IMAP port"),
    (("imap", "security"), "the IMAP security"), (("imap", "verify_tls"), "the IMAP TLS verification"),
    (("smtp", "host"), "the SMTP host"), (("smtp", "port"), "the SMTP port"),
    (("smtp", "security"), "the SMTP security"), (("smtp", "verify_tls"), "the SMTP TLS verification"),
    (("ca_pem",), "the custom CA"), (("auth", "method"), "the authentication method"),
    (("auth", "authority"), "the Microsoft authority host"), (("auth", "tenant_id"), "the Microsoft tenant"),
)


def rebinding_changes(old: Mapping[str, Any], new: Mapping[str, Any]) -> list[str]:
    """The binding fields (see ``_BINDING_FIELDS``) whose value differs between two stored configs."""

    def value(config: Mapping[str, Any], path: tuple[str, ...]) -> Any:
        for key in path:
            config = config.get(key) if isinstance(config, Mapping) else None
        return str(config).strip().lower().rstrip(".") if isinstance(config, str) else config

    return [label for path, label in _BINDING_FIELDS if value(old or {}, path) != value(new or {}, path)]
