from celery.exceptions import SoftTimeLimitExceeded
from django.apps import AppConfig

from connectors.base import register_stop_exception


class DesignerConfig(AppConfig):
    name = "designer"
    verbose_name = "Mailwright designer"

    def ready(self) -> None:
        # Importing the connector packages registers them.
        import connectors.email  # noqa: F401

        # A worker's soft time limit must stop the run, not pass for a server's failure.
        register_stop_exception(SoftTimeLimitExceeded)
