from django.apps import AppConfig


class DesignerConfig(AppConfig):
    name = "designer"
    verbose_name = "Mailwright designer"

    def ready(self) -> None:
        # Importing the connector packages registers them.
        import connectors.email  # noqa: F401
