import subprocess
import sys

from django.conf import settings
from django.core.management import call_command
from django.core.management.base import BaseCommand

from designer.management.commands.setup_local import LOGIN_FILE


class Command(BaseCommand):
    help = "Serve the app and run a Celery worker beside it (what `make run` starts)."

    def add_arguments(self, parser) -> None:
        parser.add_argument("--addr", default="127.0.0.1:8000")

    def handle(self, addr: str, **options) -> None:
        worker = subprocess.Popen(
            [sys.executable, "-m", "celery", "-A", "designer", "worker", "--loglevel", "INFO",
             "--concurrency", "2", "--hostname", "local@%h"],
        )
        login_file = settings.DATA_DIR / LOGIN_FILE
        login = login_file.read_text().strip().replace("\n", ", ") if login_file.exists() else "your own user"
        self.stdout.write(self.style.SUCCESS(f"\nMailwright is at http://{addr}/  -  log in with {login}"))
        self.stdout.write(f"(the login is kept in {login_file}; a Celery worker is running, pid {worker.pid})\n")
        try:
            call_command("runserver", addr, use_reloader=False)
        finally:
            worker.terminate()
            try:
                worker.wait(timeout=10)
            except subprocess.TimeoutExpired:
                worker.kill()
