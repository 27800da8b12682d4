"""The Email connection's settings form: the browser's way into ``parse_email_config``.

The form only collects values; the rules live in ``config.py`` so the form, the project file
and the database agree. Secrets are never rendered back: an edit shows "unchanged" and keeps
the stored value unless a new one is typed.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from typing import Any

from django import forms

from connectors.base import ConfigError
from connectors.email.auth import AUTH_METHODS
from connectors.email.config import (
    CONNECT_TIMEOUT_RANGE,
    READ_TIMEOUT_RANGE,
    SECURITY_MODES,
    EmailConfig,
    parse_email_config,
    rebinding_changes,
)

SECURITY_LABELS = {"ssl": "SSL/TLS (implicit)", "starttls": "STARTTLS", "none": "None (plain text)"}
UNCHANGED = "unchanged"


def _auth_fields() -> dict[str, Any]:
    """Every auth method's fields, once each, remembering which methods use them."""
    fields: dict[str, Any] = {}
    for method in AUTH_METHODS.values():
        for f in method.fields:
            fields.setdefault(f.name, (f, []))[1].append(method.key)
    return fields


def _error_field(path: str) -> str | None:
    """Map a config path (``imap.port``) to the form field that shows its error."""
    mapping = {
        "timeouts.connect": "connect_timeout",
        "timeouts.read": "read_timeout",
        "auth.method": "auth_method",
        "imap": "imap_enabled",
        "smtp": "smtp_enabled",
    }
    if path in mapping:
        return mapping[path]
    return path.replace(".", "_")


def _sentence(message: str) -> str:
    if message == "is required":
        return "This field is required."
    return f"{message[0].upper()}{message[1:]}."


def add_config_errors(form: forms.Form, error: ConfigError) -> None:
    """Show a ConfigError's messages on the fields their paths name (others on the form itself)."""
    for path, messages in error.errors.items():
        field = _error_field(path)
        for message in messages:
            form.add_error(field if field in form.fields else None, _sentence(message))


class EmailConnectionForm(forms.Form):
    imap_enabled = forms.BooleanField(label="Read mail over IMAP", required=False, initial=True)
    imap_host = forms.CharField(label="IMAP host", required=False, max_length=253)
    imap_port = forms.IntegerField(label="IMAP port", required=False, help_text="Empty: 993 for SSL, 143 otherwise")
    imap_security = forms.ChoiceField(
        label="IMAP security", choices=[(m, SECURITY_LABELS[m]) for m in SECURITY_MODES], initial="ssl"
    )
    imap_verify_tls = forms.BooleanField(label="Verify the IMAP server's certificate", required=False, initial=True)
    smtp_enabled = forms.BooleanField(label="Send mail over SMTP", required=False, initial=True)
    smtp_host = forms.CharField(label="SMTP host", required=False, max_length=253)
    smtp_port = forms.IntegerField(
        label="SMTP port", required=False, help_text="Empty: 465 for SSL, 587 for STARTTLS, 25 for none"
    )
    smtp_security = forms.ChoiceField(
        label="SMTP security", choices=[(m, SECURITY_LABELS[m]) for m in SECURITY_MODES], initial="starttls"
    )
    smtp_verify_tls = forms.BooleanField(label="Verify the SMTP server's certificate", required=False, initial=True)
    auth_method = forms.ChoiceField(
        label="Authentication", choices=[(m.key, m.label) for m in AUTH_METHODS.values()], initial="password"
    )
    ca_pem = forms.CharField(
        label="Custom CA certificate (PEM)",
        required=False,
        widget=forms.Textarea(attrs={"rows": 4, "spellcheck": "false"}),
        help_text="Trust a self-signed or private CA instead of the system's certificate authorities.",
    )
    connect_timeout = forms.IntegerField(
        label="Connect timeout (seconds)",
        initial=10,
        min_value=CONNECT_TIMEOUT_RANGE[0],
        max_value=CONNECT_TIMEOUT_RANGE[1],
    )
    read_timeout = forms.IntegerField(
        label="Read timeout (seconds)", initial=30, min_value=READ_TIMEOUT_RANGE[0], max_value=READ_TIMEOUT_RANGE[1]
    )
    ehlo_name = forms.CharField(
        label="Client host name for EHLO", required=False, max_length=253, help_text="Empty: this machine's name"
    )

    def __init__(self, *args: Any, stored_secrets: Iterable[str] = (), stored_config: Mapping[str, Any] | None = None,
                 **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self.stored_secrets = set(stored_secrets)
        self.stored_config = stored_config
        self.rebound: list[str] = []  # binding fields changed: stored secrets no longer go along
        self.auth_field_methods: dict[str, list[str]] = {}
        for name, (spec, methods) in _auth_fields().items():
            key = f"auth_{name}"
            self.auth_field_methods[key] = methods
            if spec.secret:
                stored = name in self.stored_secrets
                self.fields[key] = forms.CharField(
                    label=spec.label,
                    required=False,
                    strip=False,
                    widget=forms.PasswordInput(
                        render_value=False,
                        attrs={"placeholder": UNCHANGED if stored else "", "autocomplete": "new-password"},
                    ),
                    help_text="Stored encrypted; leave empty to keep it unchanged." if stored else spec.help_text,
                )
            elif spec.choices:
                self.fields[key] = forms.ChoiceField(
                    label=spec.label, required=False, choices=spec.choices, initial=spec.default,
                    help_text=spec.help_text,
                )
            else:
                self.fields[key] = forms.CharField(
                    label=spec.label, required=False, max_length=320, help_text=spec.help_text,
                    initial=spec.default or None,
                )
        for name, field in self.fields.items():
            if isinstance(field, forms.IntegerField):
                # A number input silently drops "abc"; text kept as typed gets "Enter a whole number."
                field.widget = forms.TextInput(attrs={"inputmode": "numeric", "pattern": "[0-9]*", "size": 8})
            # Required whenever their part is used (IMAP or SMTP on, the method needs them): marked so.
            field.marked_required = name in ("imap_host", "smtp_host", "auth_username")
            if field.marked_required:
                field.widget.attrs["aria-required"] = "true"

    @classmethod
    def initial_from_config(cls, config: Mapping[str, Any]) -> dict[str, Any]:
        initial: dict[str, Any] = {}
        for server in ("imap", "smtp"):
            block = config.get(server)
            initial[f"{server}_enabled"] = block is not None
            for key, value in (block or {}).items():
                initial[f"{server}_{key}"] = value
        auth = dict(config.get("auth") or {})
        initial["auth_method"] = auth.pop("method", "password")
        initial.update({f"auth_{k}": v for k, v in auth.items()})
        timeouts = config.get("timeouts") or {}
        initial["connect_timeout"] = timeouts.get("connect", 10)
        initial["read_timeout"] = timeouts.get("read", 30)
        initial["ca_pem"] = config.get("ca_pem", "")
        initial["ehlo_name"] = config.get("ehlo_name", "")
        return initial

    def conditional_rules(self) -> list[tuple[str, str, str, str]]:
        """(method, field, controlling field, value) for each value of a choice that hides a field.

        E.g. the OAuth method's password field is hidden unless its grant is "password"; the
        template turns each rule into a CSS :has() selector, so no script is needed.
        """
        rules = []
        for method in AUTH_METHODS.values():
            specs = {f.name: f for f in method.fields}
            for spec in method.fields:
                if spec.when is None:
                    continue
                control, shown = spec.when
                for value, _label in specs[control].choices:
                    if value not in shown:
                        rules.append((method.key, f"auth_{spec.name}", f"auth_{control}", value))
        return rules

    def show_redirect_uri(self, uri: str) -> None:
        """Tell whoever registers the app which redirect URI the browser sign-in comes back to."""
        if "auth_grant" in self.fields:
            self.fields["auth_grant"].help_text = (
                f"For sign-in in the browser, add this redirect URI (platform Web) to the app registration: {uri}"
            )

    def fieldsets(self) -> list[tuple[str, str, list[forms.BoundField]]]:
        auth = ["auth_method", *self.auth_field_methods]
        groups = [
            ("imap", "IMAP (Read Email)", [f for f in self.fields if f.startswith("imap_")]),
            ("smtp", "SMTP (Send Email)", [f for f in self.fields if f.startswith("smtp_")]),
            ("auth", "Authentication", auth),
            ("tls", "TLS, timeouts and EHLO", ["ca_pem", "connect_timeout", "read_timeout", "ehlo_name"]),
        ]
        return [(key, title, [self[name] for name in names]) for key, title, names in groups]

    def _config_dict(self) -> dict[str, Any]:
        data = self.cleaned_data
        config: dict[str, Any] = {}
        for server in ("imap", "smtp"):
            if data.get(f"{server}_enabled"):
                config[server] = {
                    "host": data.get(f"{server}_host", ""),
                    "port": data.get(f"{server}_port"),
                    "security": data.get(f"{server}_security"),
                    "verify_tls": bool(data.get(f"{server}_verify_tls")),
                }
            else:
                config[server] = None
        method = AUTH_METHODS.get(data.get("auth_method", ""))
        config["auth"] = {"method": data.get("auth_method")}
        if method:
            config["auth"].update({f.name: data.get(f"auth_{f.name}", "") for f in method.setting_fields})
        config["ca_pem"] = data.get("ca_pem", "")
        config["timeouts"] = {"connect": data.get("connect_timeout"), "read": data.get("read_timeout")}
        config["ehlo_name"] = data.get("ehlo_name", "")
        return config

    def clean(self) -> dict[str, Any]:
        cleaned = super().clean()
        if self.errors:
            return cleaned
        self._check_secrets(cleaned)
        try:
            self.config: EmailConfig = parse_email_config(self._config_dict())
        except ConfigError as exc:
            add_config_errors(self, exc)
            return cleaned
        if self.stored_config is not None and self.stored_secrets:
            self._check_rebinding()
        return cleaned

    def _check_rebinding(self) -> None:
        """A stored secret is only ever sent where it was entered for: after a change of server or
        identity provider every secret the method uses must be typed again (and cached tokens go)."""
        self.rebound = rebinding_changes(self.stored_config, self.config.to_dict())
        if not self.rebound:
            return
        method = AUTH_METHODS[self.config.auth_method]
        why = " and ".join(self.rebound)
        for spec in method.secrets_needed(self.config.auth):
            if spec.name not in self.new_secrets:
                self.add_error(f"auth_{spec.name}", f"{why[0].upper()}{why[1:]} changed: enter the "
                               f"{spec.label.lower()} again. A stored secret is only sent to the server it was "
                               "entered for.")

    def _check_secrets(self, cleaned: Mapping[str, Any]) -> None:
        """Collect typed secrets; a required one must be typed unless one is stored already."""
        self.new_secrets: dict[str, str] = {}
        method = AUTH_METHODS.get(cleaned.get("auth_method", ""))
        settings = {f.name: cleaned.get(f"auth_{f.name}") or f.default for f in method.setting_fields} if method else {}
        required = {f.name for f in method.required_secrets(settings)} if method else set()
        for spec in method.secrets_needed(settings) if method else ():
            typed = cleaned.get(f"auth_{spec.name}", "")
            if typed:
                self.new_secrets[spec.name] = typed
            elif spec.name in required and spec.name not in self.stored_secrets:
                self.add_error(f"auth_{spec.name}", "This field is required.")

    def merged_secrets(self, stored: Mapping[str, str]) -> dict[str, str]:
        """The secrets to store: the typed ones, else the stored ones the chosen method still uses."""
        method = AUTH_METHODS[self.config.auth_method]
        wanted = {f.name for f in method.secrets_needed(self.config.auth)}
        merged = {} if self.rebound else {k: v for k, v in stored.items() if k in wanted}
        merged.update(self.new_secrets)
        return merged
