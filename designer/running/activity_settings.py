"""An activity's settings as a session is opened with them: project variables rendered in, and the
defaults its connector renders for each record (templates) set apart, rendered per record here too."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from connectors.base import ConfigError, all_connectors
from designer.models import Activity
from designer.running.mapping import MappingError, render_value
from designer.running.variables import is_template, render_settings, setting_problems


def split(activity: Activity) -> tuple[dict[str, Any], dict[str, Any]]:
    """(stored settings without the per-record defaults, those defaults by record field)."""
    connector = activity.connection.connector_type
    return connector.split_record_defaults(activity.type, activity.settings or {}, is_template)


def parsed(activity: Activity) -> Any:
    """The connector's settings with the project variables rendered in; ConfigError names a failing one."""
    data, _defaults = split(activity)
    try:
        data = render_settings(data, activity.project.variables)
    except MappingError as exc:
        raise ConfigError({exc.field: [exc.message]}) from None
    return activity.connection.connector_type.parse_activity_settings(activity.type, data)


def with_defaults(rendered: Mapping[str, Any], activity: Activity | None,
                  context: Mapping[str, Any]) -> dict[str, Any]:
    """The mapping's result, each field it left empty given the activity's templated default, rendered
    with ``context`` (record fields and vars); MappingError names the default."""
    result = dict(rendered)
    if activity is None:
        return result
    for name, template in split(activity)[1].items():
        if _is_empty(result.get(name)):
            result[name] = _render(f"default {name}", template, context)
    return result


def _render(field: str, template: Any, context: Mapping[str, Any]) -> Any:
    if isinstance(template, Mapping):
        return {key: _render(field, value, context) for key, value in template.items()}
    if isinstance(template, list):
        return [_render(field, value, context) for value in template]
    return render_value(field, template, context)


def _is_empty(value: Any) -> bool:
    if isinstance(value, str):
        return not value.strip()
    return value is None or (isinstance(value, (list, tuple, dict)) and not value)


def record_fields() -> tuple[str, ...]:
    """Every field a source record may have: what a target's default may use (its source is not known)."""
    return tuple(dict.fromkeys(name for connector in all_connectors() for kind in connector.activity_types
                               if kind.role == "source" for name in kind.fields))


def problems(activity: Activity, settings: Mapping[str, Any]) -> dict[str, list[str]]:
    """Template problems of settings about to be saved for ``activity``, by dotted setting path."""
    connector = activity.connection.connector_type
    opened_with, _defaults = connector.split_record_defaults(activity.type, settings, is_template)
    return setting_problems(settings, opened_with, activity.project.variables, record_fields())
