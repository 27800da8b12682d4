"""Preview of an operation: one source record through the mapping into the target's message, nothing sent.

The source is opened the way a run opens it and only read (for Email: SEARCH and
``BODY.PEEK``), so previewing marks nothing. The target only ``prepare``s the message, which
builds and checks it without connecting. HTML is sanitised with nh3 for a sandboxed iframe whose
document carries a CSP that forbids scripts, remote images and every other fetch.
"""

from __future__ import annotations

import json
from collections.abc import Iterator, Mapping
from contextlib import contextmanager
from dataclasses import dataclass, field
from typing import Any

import nh3

from connectors.base import ConnectorError, SourceKey, activity_ui
from designer.crypto import SecretsUnreadable
from designer.models import Activity, Operation
from designer.running.context import RunAborted, endpoint
from designer.running.transform import transform
from designer.running.variables import masked

SAMPLE = "sample"
LATEST = 10
CSP = "default-src 'none'; img-src data:; style-src 'unsafe-inline'"
# Mail HTML leans on inline styles; the CSP above keeps them from fetching anything.
_HTML_ATTRIBUTES = {**{tag: set(names) for tag, names in nh3.ALLOWED_ATTRIBUTES.items()}, "*": {"style"}}
_SHOWN_CHARS = 500
_BRIEF_CHARS = 60


class PreviewError(Exception):
    """Why there is no preview, in words for the page."""


@dataclass
class Preview:
    source_label: str
    # None when the condition could not be evaluated (see ``error``).
    condition_holds: bool | None = None
    # The rendered mapping, for display: (field, value as text).
    fields: list[tuple[str, str]] = field(default_factory=list)
    # What the target would send (see ActivityUI.describe), with ``srcdoc`` for the HTML body.
    message: dict[str, Any] | None = None
    srcdoc: str = ""
    error: str = ""
    # The source record's values, short, to show beside the field chips while mapping.
    source_values: list[tuple[str, str]] = field(default_factory=list)


@contextmanager
def _open(activity: Activity, role: str) -> Iterator[Any]:
    """The activity's source or target session, any failure told as a PreviewError."""
    try:
        resolved = endpoint(activity, role)
        connector = activity.connection.connector_type
        opener = connector.open_source if role == "source" else connector.open_target
        with opener(resolved.config, resolved.secrets, resolved.settings) as session:
            yield session
    except RunAborted as exc:
        raise PreviewError(str(exc)) from None
    except SecretsUnreadable as exc:
        raise PreviewError(f"{activity.connection.name}: {exc}") from None
    except ConnectorError as exc:
        raise PreviewError(f"{activity.name}: {exc.message}") from None


def _key_value(key: SourceKey) -> str:
    return json.dumps([key.scope, key.epoch, key.position])


def _key(value: str) -> SourceKey:
    try:
        scope, epoch, position = json.loads(value)
        return SourceKey(str(scope), int(epoch), int(position))
    except (ValueError, TypeError):
        raise PreviewError("That message choice is not valid; load the latest messages again.") from None


def latest_messages(source: Activity) -> list[tuple[str, str]]:
    """(choice, label) of the newest records the source would offer now, newest first."""
    with _open(source, "source") as session:
        keys = session.candidates()[-LATEST:]
        items = list(session.fetch(keys))
    choices = []
    for item in reversed(items):
        summary = item.summary or {}
        date = (item.record or {}).get("date", "")
        label = " — ".join(part for part in (str(date)[:16].replace("T", " "), summary.get("from", ""),
                                               summary.get("subject") or "(no subject)") if part)
        choices.append((_key_value(item.key), label))
    return choices


def source_record(source: Activity | None, choice: str) -> tuple[dict[str, Any], str]:
    """The record to preview with, and how to name it: the sample, or one message of the source."""
    if source is None:
        raise PreviewError("Place a source in this operation to preview it.")
    if choice == SAMPLE:
        sample = activity_ui(source.type).sample
        if sample is None:
            raise PreviewError(f"{source.name} has no sample record; pick one of its messages.")
        return sample(), "the sample message"
    key = _key(choice)
    with _open(source, "source") as session:
        item = next(iter(session.fetch([key])), None)
    if item is None:
        raise PreviewError("That message is no longer in the source; load the latest messages again.")
    if item.record is None:
        raise PreviewError(f"The source would skip that message: {item.skip_reason}")
    return item.record, f"message {key.position} of {key.scope}"


def build(operation: Operation, mapping: Mapping[str, Any], condition: str, record: Mapping[str, Any],
          label: str) -> Preview:
    """Render ``mapping`` for ``record`` and let the operation's target prepare the message; a secret
    variable's value is masked wherever it shows."""
    preview = _build(operation, mapping, condition, record, label)
    secrets = operation.project.secret_values
    preview.fields = masked(preview.fields, secrets)
    preview.message, preview.srcdoc = masked(preview.message, secrets), masked(preview.srcdoc, secrets)
    preview.error = masked(preview.error, secrets)
    return preview


def _build(operation: Operation, mapping: Mapping[str, Any], condition: str, record: Mapping[str, Any],
           label: str) -> Preview:
    preview = Preview(source_label=label)
    preview.source_values = _source_values(record)
    result = transform(operation, record, mapping=mapping, condition=condition, render_when_false=True)
    preview.condition_holds = result.holds
    if result.error:
        preview.error = result.error
        return preview
    preview.fields = [(name, _shown(value)) for name, value in result.rendered.items()]
    target = operation.target
    if target is None:
        return preview
    describe = activity_ui(target.type).describe
    try:
        with _open(target, "target") as session:
            prepared = session.prepare(result.rendered)
    except PreviewError as exc:
        preview.error = str(exc)
        return preview
    except ValueError as exc:
        preview.error = f"{target.name} would refuse this message: {exc}"
        return preview
    if describe is not None:
        preview.message = describe(prepared)
        preview.srcdoc = sandboxed_document(preview.message.get("html", ""))
    return preview


def sandboxed_document(html: str) -> str:
    """The document for ``<iframe sandbox srcdoc>``: sanitised HTML under a CSP that allows no fetch."""
    if not html:
        return ""
    cleaned = nh3.clean(html, attributes=_HTML_ATTRIBUTES)
    return f'<!doctype html><meta charset="utf-8"><meta http-equiv="Content-Security-Policy" content="{CSP}">{cleaned}'


def _source_values(record: Mapping[str, Any]) -> list[tuple[str, str]]:
    """Each field's value, short; for a list of objects (attachments) also its first item's keys, as
    ``name-key``, beside the sub-fields the mapping editor lists. Bytes are shown by their size."""
    values = []
    for name, value in record.items():
        values.append((name, _brief(value)))
        if isinstance(value, list) and value and isinstance(value[0], Mapping):
            values += [(f"{name}-{key}", f"{len(item)} bytes" if isinstance(item, bytes) else _brief(item))
                       for key, item in value[0].items()]
    return values


def _brief(value: Any) -> str:
    """A value on one short line, for beside a field's name."""
    text = " ".join(_shown(value).split())
    return text if len(text) <= _BRIEF_CHARS else f"{text[:_BRIEF_CHARS]}…"


def _shown(value: Any) -> str:
    """A rendered value as text for the page: attachments by name and size, long text cut."""
    if isinstance(value, list) and all(isinstance(item, Mapping) for item in value):
        return ", ".join(f"{item.get('filename', '?')} ({item.get('size', '?')} bytes)" for item in value) or "[]"
    text = value if isinstance(value, str) else repr(value)
    return text if len(text) <= _SHOWN_CHARS else f"{text[:_SHOWN_CHARS]}… ({len(text)} characters)"
