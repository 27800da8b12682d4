"""Notices the product sends about itself (a run's outcome, a stalled source) through a Send Email
activity of the project, with the activity's defaults filling what the notice leaves empty."""

from __future__ import annotations

from connectors.base import ConfigError, ConnectorError
from designer.models import Activity
from designer.running import activity_settings
from designer.running.mapping import MappingError, context_for


def send(activity: Activity, to: str, subject: str, text: str) -> str:
    """Send one notice; "" when it went, else why not (in words, never a secret)."""
    connection = activity.connection
    connector = connection.connector_type
    record = {"to": to, "subject": subject, "text": text}
    try:
        settings = activity_settings.parsed(activity)
        record = activity_settings.with_defaults(record, activity, context_for(record, activity.project.variables))
        with connector.open_target(connector.parse_config(connection.config), connection.get_secrets(),
                                   settings) as target:
            target.write(target.prepare(record))
    except (ConnectorError, ConfigError, MappingError, ValueError) as exc:
        return str(exc)
    return ""
