"""Where a source record becomes a target's message: context, condition, mapping, then the target's prepare.

The engine and the preview both go through ``transform``, so what a preview shows is what a run sends.
"""

from __future__ import annotations

import logging
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from connectors.base import Prepared, SourceKey, TargetSession, is_stop_exception
from designer.models import Operation
from designer.running import activity_settings
from designer.running.mapping import MappingError, condition_holds, context_for, render_mapping

log = logging.getLogger(__name__)


@dataclass
class Transformed:
    """One record through an operation's transformation, as far as it got."""

    holds: bool | None = None  # the condition's verdict; None when it was not asked
    rendered: dict[str, Any] | None = None  # the mapping's values, by target field
    prepared: Prepared | None = None  # the target's message, when a target was given
    error: str = ""  # why it stopped: a template failed, or the target refuses the message
    refused: bool = False  # the error is the target's refusal of the rendered message


def transform(operation: Operation, record: Mapping[str, Any], target: TargetSession | None = None, *,
              mapping: Mapping[str, Any] | None = None, condition: str | None = None,
              apply_condition: bool = True, render_when_false: bool = False,
              message_id: str | None = None) -> Transformed:
    """Render ``record`` through the operation's condition and mapping (or the ones given, unsaved) and,
    with a ``target``, let it prepare the message under ``message_id`` (a new one when None)."""
    context = context_for(record, operation.project.variables or {})
    result = Transformed()
    if apply_condition:
        try:
            result.holds = condition_holds(operation.condition if condition is None else condition, context)
        except MappingError as exc:
            result.error = f"condition: {exc.message}"
            return result
        if not result.holds and not render_when_false:
            return result
    try:
        result.rendered = render_mapping(operation.mapping if mapping is None else mapping, context)
    except MappingError as exc:
        result.error = f"mapping of {exc.field}: {exc.message}"
        return result
    try:
        result.rendered = activity_settings.with_defaults(result.rendered, operation.target, context)
    except MappingError as exc:
        result.error = f"{exc.field}: {exc.message}"
        return result
    if target is not None:
        try:
            result.prepared = target.prepare(result.rendered, message_id=message_id)
        except ValueError as exc:  # a message the target can never accept as mapped
            result.error, result.refused = str(exc), True
    return result


def transform_in_run(operation: Operation, record: Mapping[str, Any], target: TargetSession, key: SourceKey, *,
                     apply_condition: bool, message_id: str | None) -> Transformed:
    """``transform`` for a run: a bug that only this record triggers becomes its error (and is logged),
    so that it fails alone and the other messages go on."""
    try:
        return transform(operation, record, target, apply_condition=apply_condition, message_id=message_id)
    except Exception as exc:  # noqa: BLE001 - see above
        if is_stop_exception(exc):
            raise
        log.exception("transforming message %s failed", key.position)
        return Transformed(error=f"unexpected {type(exc).__name__}: {exc}")
