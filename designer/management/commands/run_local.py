import subprocess
import sys
import threading

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
        banner = (f"\n{self.style.SUCCESS(f'Mailwright is at http://{addr}/  -  log in with {login}')}\n"
                  f"(the login is kept in {login_file}; a Celery worker runs beside the server, pid {worker.pid};"
                  " stop both with Ctrl-C)\n")
        self.stdout.write(banner)
        # Said again once the worker's and the server's start-up chatter is over, so it is the last thing seen.
        threading.Timer(6, self.stdout.write, args=(banner,)).start()
        try:
            call_command("runserver", addr, use_reloader=False)
        finally:
            worker.terminate()
            try:
                worker.wait(timeout=10)
            except subprocess.TimeoutExpired:
                worker.kill()
