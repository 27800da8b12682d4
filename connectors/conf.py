"""Settings of the host application, read by connectors that also run outside Django (scripts, unit tests)."""

from __future__ import annotations

from typing import Any


def setting(name: str, default: Any) -> Any:
    """``django.conf.settings.<name>`` when Django is configured and sets it, else ``default``."""
    try:
        from django.conf import settings
    except ImportError:
        return default
    return getattr(settings, name, default) if settings.configured else default
