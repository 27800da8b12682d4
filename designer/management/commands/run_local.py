import subprocess
import sys
import threading

from django.conf import settings
from django.core.management import call_command
from django.core.management.base import BaseCommand

from designer import demo
from designer.management.commands.setup_local import LOGIN_FILE


class Command(BaseCommand):
    help = ("Serve the app with a Celery worker and beat beside it, and the demo's sandbox mailbox "
            "(what `make run` starts).")

    def add_arguments(self, parser) -> None:
        parser.add_argument("--addr", default="127.0.0.1:8000")

    def handle(self, addr: str, **options) -> None:
        celery = [sys.executable, "-m", "celery", "-A", "designer"]
        # Fixed argument lists built here, no user input: S603 does not apply.
        worker_args = [*celery, "worker", "--loglevel", "INFO", "--concurrency", "2", "--hostname", "local@%h"]
        worker = subprocess.Popen(worker_args)  # noqa: S603
        # Beat turns operations' schedules (kept in the database) into runs.
        beat = subprocess.Popen([*celery, "beat", "--loglevel", "INFO"])  # noqa: S603
        processes = [beat, worker]
        sandbox = demo.stored(settings.DATA_DIR) if demo.enabled() else None
        if sandbox is not None:
            config = str(settings.DATA_DIR / demo.CONFIG_FILE)
            processes.append(subprocess.Popen([sys.executable, "-m", "designer.demo", config]))  # noqa: S603
        login_file = settings.DATA_DIR / LOGIN_FILE
        login = login_file.read_text().strip().replace("\n", ", ") if login_file.exists() else "your own user"
        banner = (f"\n{self.style.SUCCESS(f'Mailwright is at http://{addr}/  -  log in with {login}')}\n"
                  f"(the login is kept in {login_file}; a Celery worker and beat run beside the server;"
                  " stop both with Ctrl-C)\n")
        if sandbox is not None:
            banner += (f"Demo: open the project “{demo.PROJECT}” and press Run now on “{demo.OPERATION}”. "
                       f"Its sandbox mailbox is on 127.0.0.1 (IMAP {sandbox.imap_port}, SMTP {sandbox.smtp_port}; "
                       f"users {' and '.join(demo.MAILBOXES)}, password in {settings.DATA_DIR / demo.CONFIG_FILE}).\n")
        self.stdout.write(banner)
        # Said again once the worker's and the server's start-up chatter is over, so it is the last thing seen.
        threading.Timer(6, self.stdout.write, args=(banner,)).start()
        try:
            call_command("runserver", addr, use_reloader=False)
        finally:
            for process in processes:
                process.terminate()
            for process in processes:
                try:
                    process.wait(timeout=10)
                except subprocess.TimeoutExpired:
                    process.kill()
