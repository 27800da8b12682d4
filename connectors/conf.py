"""Settings of the host application, read by connectors that also run outside Django (scripts, unit tests)."""

from __future__ import annotations

from typing import Any

try:
    from django.conf import settings
    from django.core.signals import setting_changed
except ImportError:  # outside Django: every setting is its default
    settings = setting_changed = None

_UNSET = object()
# Reading a Django setting costs about as much as reading a small message's headers, and a message
# meets several on its way (structure limits, the DATA reply's timeout): each is read once, and
# again after any setting changes (override_settings, tests); before Django is configured, each time.
_read: dict[str, Any] = {}
if setting_changed is not None:
    setting_changed.connect(lambda **_: _read.clear(), weak=False)


def setting(name: str, default: Any) -> Any:
    """``django.conf.settings.<name>`` when Django is configured and sets it, else ``default``."""
    if name not in _read:
        if settings is None or not settings.configured:
            return default
        _read[name] = getattr(settings, name, _UNSET)
    value = _read[name]
    return default if value is _UNSET else value
