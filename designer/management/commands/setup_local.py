import secrets

from cryptography.fernet import Fernet
from django.conf import settings
from django.contrib.auth import get_user_model
from django.core.management import call_command
from django.core.management.base import BaseCommand, CommandError

from designer import demo
from designer.keyfiles import write_new
from designer.models import Membership, Role, Team

LOGIN_FILE = "login.txt"


class Command(BaseCommand):
    help = ("Prepare a local installation (used by `make run`): key, database, a first admin user and team, "
            "and the demo project on the sandbox mailbox (unless MAILWRIGHT_DEMO=0).")

    def handle(self, **options) -> None:
        if not settings.DEBUG:
            raise CommandError("setup_local is for a local installation with DEBUG=1; in production set the "
                               "environment variables of the README and run migrate yourself.")
        data = settings.DATA_DIR
        data.mkdir(parents=True, exist_ok=True)
        key_file = settings.ENCRYPTION_KEY_FILE
        if not settings.MAILWRIGHT_ENCRYPTION_KEYS:
            write_new(key_file, Fernet.generate_key().decode())
            settings.MAILWRIGHT_ENCRYPTION_KEYS = [key_file.read_text().strip()]
            self.stdout.write(f"Created an encryption key for connection secrets: {key_file}")
            self.stdout.write("  Keep it safe: without it the stored passwords cannot be read.")
        call_command("migrate", interactive=False, verbosity=0)

        login_file = data / LOGIN_FILE
        User = get_user_model()
        if not User.objects.filter(username="admin").exists():
            password = secrets.token_urlsafe(12)
            User.objects.create_superuser("admin", "admin@localhost", password)
            login_file.write_text(f"username: admin\npassword: {password}\n")
            login_file.chmod(0o600)
        admin = User.objects.get(username="admin")
        team, _ = Team.objects.get_or_create(name="Demo")
        Membership.objects.get_or_create(team=team, user=admin, defaults={"role": Role.ADMIN})
        if demo.enabled():
            demo.install(team, demo.prepare(data), admin)
            self.stdout.write(f"Demo project “{demo.PROJECT}” is ready in team {team.name} "
                              "(MAILWRIGHT_DEMO=0 leaves it out).")
