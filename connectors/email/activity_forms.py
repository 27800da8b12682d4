"""What the designer shows for the Email activities: their settings forms, the Read Email output
schema, a sample record for previews, and what a prepared Send Email message looks like.

As with the connection form, the forms only collect values: ``parse_read_settings`` and
``parse_send_settings`` hold the rules, so the designer, the project file and the engine agree.
A form field is named after the settings path it fills, with ``_`` for ``.`` (``filters_since``
fills ``filters.since``), so a ``ConfigError`` path finds its field without a lookup table.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from dataclasses import dataclass
from email.message import EmailMessage
from typing import Any, ClassVar

from django import forms

from connectors.base import ConfigError, FieldSpec, Prepared
from connectors.email.activities import (
    AFTER_READ_ACTIONS,
    ATTACHMENT_MODES,
    DEFAULT_MAX_CONNECTIONS,
    MAX_CONNECTIONS,
    MAX_MESSAGES_RANGE,
    ON_SKIP_ACTIONS,
    SIZE_MB_RANGE,
    parse_read_settings,
    parse_send_settings,
)
from connectors.email.forms import add_config_errors
from connectors.email.message.build import OutgoingMessage
from connectors.email.message.parse import parse_message
from connectors.email.schema import READ_EMAIL_OUTPUT, SEND_EMAIL_INPUT

# The settings that are objects; their keys become fields named "<group>_<key>".
_GROUPS = ("filters", "defaults")

_ACTION_LABELS = {
    "mark_read": "Mark it read",
    "move": "Move it to another folder",
    "delete": "Delete it",
    "leave": "Leave it as it is",
}
_ATTACHMENT_LABELS = {"include": "Include them (up to the size limit)", "skip": "Skip them (names and sizes only)"}

# SPEC §3: the record a Read Email activity gives the mapping, one short line per field.
READ_FIELD_DESCRIPTIONS = {spec.name: spec.description for spec in READ_EMAIL_OUTPUT}


def _choices(keys: tuple[str, ...], labels: Mapping[str, str]) -> list[tuple[str, str]]:
    return [(key, labels.get(key, key)) for key in keys]


def _flatten(settings: Mapping[str, Any]) -> dict[str, Any]:
    flat: dict[str, Any] = {}
    for key, value in settings.items():
        if key in _GROUPS and isinstance(value, Mapping):
            flat.update({f"{key}_{name}": item for name, item in value.items()})
        else:
            flat[key] = value
    return flat


class ActivitySettingsForm(forms.Form):
    """An activity's settings in the browser; ``settings`` holds the parsed result once valid.

    ``steps`` splits the fields into the wizard's steps: (title, field names). ``base`` is the
    stored settings: keys the form does not show (e.g. default headers from a project file)
    are kept.
    """

    steps: ClassVar[tuple[tuple[str, tuple[str, ...]], ...]]
    parse: ClassVar[Callable[[Mapping[str, Any]], Any]]

    def __init__(self, *args: Any, base: Mapping[str, Any] | None = None, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self.base = dict(base or {})

    @classmethod
    def initial_from_settings(cls, settings: Mapping[str, Any]) -> dict[str, Any]:
        initial = {}
        for name, value in _flatten(settings).items():
            if isinstance(value, list):  # addresses from a project file
                value = ", ".join(str(item) for item in value)
            initial[name] = "" if value is None else value
        return initial

    def settings_dict(self) -> dict[str, Any]:
        data = {key: dict(value) if isinstance(value, Mapping) else value for key, value in self.base.items()}
        for name in self.fields:
            value = self.cleaned_data.get(name)
            group = next((g for g in _GROUPS if name.startswith(f"{g}_")), None)
            if group:
                data.setdefault(group, {})[name.removeprefix(f"{group}_")] = value
            else:
                data[name] = value
        return data

    def clean(self) -> dict[str, Any]:
        cleaned = super().clean()
        if self.errors:
            return cleaned
        try:
            self.settings: dict[str, Any] = type(self).parse(self.settings_dict()).to_dict()
        except ConfigError as exc:
            add_config_errors(self, exc)
        return cleaned

    def summary(self) -> list[tuple[str, Any]]:
        """Label and value of every field, for the review step and for viewers."""
        values = self.cleaned_data if self.is_bound and hasattr(self, "cleaned_data") else self.initial
        rows = []
        for name, field in self.fields.items():
            value = values.get(name, field.initial)
            if isinstance(field, forms.ChoiceField):
                value = dict(field.choices).get(value, value)
            elif isinstance(field, forms.BooleanField):
                value = "Yes" if value else "No"
            rows.append((field.label, "not set" if value in (None, "") else value))
        return rows

    def folders_used(self) -> dict[str, str]:
        """The folders these settings name, by field, to check against the server's list."""
        return {}


class ReadEmailForm(ActivitySettingsForm):
    steps = (
        ("Name and folder", ("folder",)),
        ("Filters and limits", ("unread_only", "filters_from", "filters_to", "filters_subject", "filters_since",
                                "filters_has_attachment", "search", "max_messages", "attachments",
                                "max_attachment_mb", "max_message_mb")),
        ("After delivery", ("after_read", "on_skip", "move_to")),
        ("Output", ()),
    )
    parse = staticmethod(parse_read_settings)
    field_descriptions = READ_FIELD_DESCRIPTIONS

    def folders_used(self) -> dict[str, str]:
        data = self.cleaned_data
        moves = "move" in (data.get("after_read"), data.get("on_skip"))
        return {name: data.get(name) or "" for name in ("folder", "move_to") if name == "folder" or moves}

    folder = forms.CharField(
        label="Folder", initial="INBOX", max_length=1000,
        help_text="Type it, or pick one from the server's folders.",
        widget=forms.TextInput(attrs={"list": "folder-options", "autocomplete": "off", "spellcheck": "false"}),
    )
    unread_only = forms.BooleanField(label="Unread messages only", required=False, initial=True)
    filters_from = forms.CharField(label="From contains", required=False, max_length=1000)
    filters_to = forms.CharField(label="To contains", required=False, max_length=1000)
    filters_subject = forms.CharField(label="Subject contains", required=False, max_length=1000)
    filters_since = forms.CharField(
        label="Received on or after", required=False, widget=forms.DateInput(attrs={"type": "date"})
    )
    filters_has_attachment = forms.BooleanField(label="Only messages with an attachment", required=False)
    search = forms.CharField(
        label="Raw IMAP SEARCH (advanced)", required=False, max_length=1000,
        help_text='Added to the filters above, e.g. OR FROM "a@example.com" FROM "b@example.com"',
        widget=forms.TextInput(attrs={"spellcheck": "false"}),
    )
    max_messages = forms.IntegerField(
        label="Messages per run, at most", initial=100, min_value=MAX_MESSAGES_RANGE[0],
        max_value=MAX_MESSAGES_RANGE[1],
    )
    after_read = forms.ChoiceField(
        label="After a message is delivered", choices=_choices(AFTER_READ_ACTIONS, _ACTION_LABELS),
        initial="mark_read",
    )
    move_to = forms.CharField(
        label="Move to folder", required=False, max_length=1000,
        help_text="Where “move” puts messages (after delivery or when skipped).",
        widget=forms.TextInput(attrs={"list": "folder-options", "autocomplete": "off", "spellcheck": "false"}),
    )
    on_skip = forms.ChoiceField(
        label="When the condition skips a message", choices=_choices(ON_SKIP_ACTIONS, _ACTION_LABELS),
        initial="leave",
    )
    attachments = forms.ChoiceField(
        label="Attachments", choices=_choices(ATTACHMENT_MODES, _ATTACHMENT_LABELS), initial="include"
    )
    max_attachment_mb = forms.IntegerField(
        label="Largest attachment included (MB)", initial=25, min_value=SIZE_MB_RANGE[0], max_value=SIZE_MB_RANGE[1]
    )
    max_message_mb = forms.IntegerField(
        label="Largest message read (MB)", initial=25, min_value=SIZE_MB_RANGE[0], max_value=SIZE_MB_RANGE[1],
        help_text="A larger message is skipped with the reason, never half-read.",
    )


class SendEmailForm(ActivitySettingsForm):
    steps = (("Message defaults", (
        "defaults_from", "defaults_to", "defaults_cc", "defaults_bcc", "defaults_reply_to", "defaults_subject",
        "defaults_text", "defaults_html", "message_id_domain", "max_connections",
    )),)
    parse = staticmethod(parse_send_settings)
    field_descriptions: ClassVar[dict[str, str]] = {}

    defaults_from = forms.CharField(label="From", required=False, max_length=1000,
                                    help_text="e.g. Support <support@example.com>")
    defaults_to = forms.CharField(label="To", required=False, max_length=1000,
                                  help_text="Addresses separated by commas")
    defaults_cc = forms.CharField(label="Cc", required=False, max_length=1000)
    defaults_bcc = forms.CharField(label="Bcc", required=False, max_length=1000)
    defaults_reply_to = forms.CharField(label="Reply-To", required=False, max_length=1000)
    defaults_subject = forms.CharField(label="Subject", required=False, max_length=1000)
    defaults_text = forms.CharField(label="Text body", required=False, widget=forms.Textarea(attrs={"rows": 3}))
    defaults_html = forms.CharField(label="HTML body", required=False, widget=forms.Textarea(attrs={"rows": 3}))
    message_id_domain = forms.CharField(label="Message-ID domain", required=False, max_length=253,
                                        help_text="Empty: the domain of the From address")
    max_connections = forms.IntegerField(
        label="SMTP connections at once", initial=DEFAULT_MAX_CONNECTIONS, min_value=1, max_value=MAX_CONNECTIONS,
        required=False,
        help_text="Messages go out over this many connections in parallel, so they may arrive in another order "
                  "than they were read; fewer are used when the server allows fewer.",
    )


def sample_record() -> dict[str, Any]:
    """A Read Email record for previews without a mailbox: parsed from a real message, so it has
    exactly the shape a run gives the mapping."""
    message = EmailMessage()
    message["From"] = "Ada Lovelace <ada@example.org>"
    message["To"] = "Support <support@example.com>"
    message["Subject"] = "Printer on floor 3 is jammed again"
    message["Date"] = "Mon, 02 Mar 2026 09:30:00 +0000"
    message["Message-ID"] = "<sample-1@example.org>"
    message.set_content("Hello,\n\nthe printer on floor 3 is jammed again. The log is attached.\n\nAda\n")
    message.add_alternative(
        "<p>Hello,</p><p>the printer on <b>floor 3</b> is jammed again. The log is attached.</p><p>Ada</p>",
        subtype="html",
    )
    message.add_attachment(b"09:12 paper jam in tray 2\n", maintype="text", subtype="plain",
                           filename="printer-log.txt")
    return parse_message(bytes(message), uid=1, uidvalidity=1, folder="INBOX")


# Headers that describe the MIME structure rather than the message: the preview shows the parts.
_STRUCTURE_HEADERS = {"mime-version", "content-type", "content-transfer-encoding"}


def describe_prepared(prepared: Prepared) -> dict[str, Any]:
    """What a record prepared by ``EmailTarget.prepare`` would send: headers, envelope, bodies,
    attachments (names, types and sizes)."""
    outgoing: OutgoingMessage = prepared.outgoing
    message = outgoing.message
    plain, html = message.get_body(("plain",)), message.get_body(("html",))
    return {
        "headers": [(name, str(value)) for name, value in message.items() if name.lower() not in _STRUCTURE_HEADERS],
        "envelope": {"from": outgoing.sender, "to": outgoing.recipients},
        "text": plain.get_content() if plain is not None else "",
        "html": html.get_content() if html is not None else "",
        "attachments": [
            {"filename": part.get_filename() or "", "content_type": part.get_content_type(), "size": len(content)}
            for part, content in zip(message.iter_attachments(), outgoing.attachments, strict=True)
        ],
    }


def _needs(server: str, label: str) -> Callable[[Mapping[str, Any]], str]:
    def problem(config: Mapping[str, Any]) -> str:
        return "" if config.get(server) else f"it has no {server.upper()} server, which {label} needs"
    return problem


@dataclass(frozen=True)
class ActivityUI:
    """The designer's view of one activity type."""

    form: type[ActivitySettingsForm]
    # Why a connection (its config) cannot serve this activity type, or "".
    connection_problem: Callable[[Mapping[str, Any]], str]
    # Sources: a record for previews without reading the source.
    sample: Callable[[], dict[str, Any]] | None = None
    # Targets: headers, bodies and attachments of a prepared record, for previews.
    describe: Callable[[Prepared], dict[str, Any]] | None = None
    # The record's fields with labels, types and descriptions: a source's output, a target's input.
    schema: tuple[FieldSpec, ...] = ()
    # Targets: the value each field takes when the mapping leaves it empty.
    defaults: Callable[[Mapping[str, Any]], Mapping[str, Any]] | None = None


ACTIVITY_UI = {
    "read_email": ActivityUI(ReadEmailForm, _needs("imap", "Read Email"), sample=sample_record,
                             schema=READ_EMAIL_OUTPUT),
    "send_email": ActivityUI(SendEmailForm, _needs("smtp", "Send Email"), describe=describe_prepared,
                             schema=SEND_EMAIL_INPUT, defaults=lambda settings: settings.get("defaults", {})),
}
