"""The fields of an activity's record as the mapping editor shows them: label, type, description, and
for a target the default its activity gives a field left empty."""

from __future__ import annotations

from typing import Any

from connectors.base import FieldSpec, activity_ui
from designer.models import Activity


def fields_of(activity: Activity | None) -> tuple[FieldSpec, ...]:
    """The activity's record field by field; a field its connector does not describe keeps its bare name."""
    if activity is None:
        return ()
    try:
        names = activity.activity_type.fields
        described = {spec.name: spec for spec in getattr(activity_ui(activity.type), "schema", ())}
    except (LookupError, NotImplementedError):
        return ()
    return tuple(described.get(name) or FieldSpec(name, name, "") for name in names)


def default_of(activity: Activity | None, name: str) -> Any:
    """What the target sends for ``name`` when the mapping leaves it empty, or None."""
    if activity is None:
        return None
    try:
        defaults = getattr(activity_ui(activity.type), "defaults", None)
    except (LookupError, NotImplementedError):
        return None
    return defaults(activity.settings).get(name) if defaults else None


def placeholder(activity: Activity | None, name: str) -> str:
    default = default_of(activity, name)
    if default in (None, "", [], {}):
        return "Empty: left out of the message"
    shown = ", ".join(map(str, default)) if isinstance(default, list) else str(default)
    return f"Empty: the activity's default, {shown}"
