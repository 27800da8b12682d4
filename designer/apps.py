from importlib import import_module

from celery.exceptions import SoftTimeLimitExceeded
from django.apps import AppConfig
from django.conf import settings

from connectors.base import register_stop_exception
from designer.running import watchdog


class DesignerConfig(AppConfig):
    name = "designer"
    verbose_name = "Mailwright designer"

    def ready(self) -> None:
        # Importing a connector's package registers it.
        for name in settings.MAILWRIGHT_CONNECTORS:
            import_module(name)

        # A worker's soft time limit must stop the run, not pass for a server's failure.
        register_stop_exception(SoftTimeLimitExceeded)
        register_stop_exception(watchdog.TimeLimitReached)
