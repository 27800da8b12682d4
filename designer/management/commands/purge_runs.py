from django.conf import settings
from django.core.management.base import BaseCommand

from designer.running import runs


class Command(BaseCommand):
    help = "Delete runs older than the retention period (MAILWRIGHT_RUN_RETENTION_DAYS, default 30)."

    def add_arguments(self, parser) -> None:
        parser.add_argument("--days", type=int, default=None,
                            help=f"keep this many days (default {settings.MAILWRIGHT_RUN_RETENTION_DAYS})")

    def handle(self, days: int | None, **options) -> None:
        deleted = runs.purge(days)
        self.stdout.write(f"deleted {deleted} run(s)")
