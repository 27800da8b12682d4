from django.core.management.base import BaseCommand, CommandError
from django.db import transaction
from django.db.models import Q

from designer.crypto import SecretsUnreadable, rotate_token
from designer.models import Connection, Variable


class Command(BaseCommand):
    help = (
        "Re-encrypt every stored secret with the newest key (the first of MAILWRIGHT_ENCRYPTION_KEYS). "
        "Afterwards the older keys can be removed."
    )

    @transaction.atomic
    def handle(self, **options) -> None:
        rotated = 0
        # The secrets and the OAuth token cache (refresh and access tokens) are encrypted alike.
        encrypted = Q(secrets_token="") & Q(token_cache_token="")
        for connection in Connection.objects.exclude(encrypted).select_for_update():
            try:
                connection.secrets_token = rotate_token(connection.secrets_token)
                connection.token_cache_token = rotate_token(connection.token_cache_token)
            except SecretsUnreadable as exc:
                raise CommandError(
                    f"connection {connection.name!r} (id {connection.pk}): {exc}; nothing changed"
                ) from None
            connection.save(update_fields=["secrets_token", "token_cache_token"])
            rotated += 1
        for variable in Variable.objects.filter(secret=True).select_for_update():
            try:
                variable.value_token = rotate_token(variable.value_token)
            except SecretsUnreadable as exc:
                raise CommandError(
                    f"project variable {variable.name!r} (id {variable.pk}): {exc}; nothing changed"
                ) from None
            variable.save(update_fields=["value_token"])
            rotated += 1
        self.stdout.write(f"re-encrypted {rotated} secret record(s) with the newest key")
