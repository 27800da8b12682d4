"""The product as an operator deploys it, run from the clean virtualenv of requirements.txt alone:
production settings from the environment, a PostgreSQL database of its own, ``manage.py``
commands, gunicorn, prefork workers and beat as separate processes.

Nothing here imports the product: every step is a process of the production virtualenv, so what
the test virtualenv happens to hold cannot make it pass.
"""

from __future__ import annotations

import json
import os
import subprocess
import time
import uuid
from collections.abc import Iterator, Mapping
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import psycopg
import pytest
from cryptography.fernet import Fernet

from tests.production.venv import ROOT, production_venv
from tests.servers.dovecot import free_port
from tests.workers import Service, Worker

POSTGRES_ADMIN_URL = "postgresql://postgres@127.0.0.1:5432/postgres"
REDIS_URL = "redis://127.0.0.1:6379/12"  # db 12 is this suite's; every key it writes is under its queue's name
RABBITMQ_URL = "amqp://guest:guest@127.0.0.1:5672//"
HOST = "mail.example.com"


def production_env(data_dir: Path, **overrides: str) -> dict[str, str]:
    """What an operator exports (README, "Running in production"), pointed at this machine's servers."""
    inherited = {k: v for k, v in os.environ.items()
                 if not k.startswith(("DJANGO_", "PYTHON", "VIRTUAL_ENV", "CELERY_", "MAILWRIGHT_", "DATABASE_"))}
    return {
        **inherited,
        "DEBUG": "0", "SECRET_KEY": "a-long-random-production-secret-" + "z7Q" * 12,
        "ALLOWED_HOSTS": HOST, "MAILWRIGHT_ENCRYPTION_KEYS": Fernet.generate_key().decode(),
        "MAILWRIGHT_DATA_DIR": str(data_dir), "MAILWRIGHT_KEY_DIR": str(data_dir / "keys"),
        "STATIC_ROOT": str(data_dir / "static"),
        "DATABASE_URL": f"sqlite:///{data_dir / 'db.sqlite3'}", "CELERY_BROKER_URL": REDIS_URL,
        # The suite's mail servers are on loopback, which production settings deny: open it as the
        # test settings do (an operator opens an internal relay's network the same way).
        "MAILWRIGHT_ALLOW_NETWORKS": "127.0.0.0/8,::1/128",
        **overrides,
    }


def python() -> str:
    return str(production_venv() / "bin" / "python")


def manage(env: Mapping[str, str], *args: str, timeout: float = 180) -> subprocess.CompletedProcess[str]:
    """``python manage.py ARGS`` from the production virtualenv."""
    return subprocess.run([python(), "manage.py", *args], cwd=ROOT, env=dict(env), capture_output=True, text=True,
                          timeout=timeout)


def manage_ok(env: Mapping[str, str], *args: str, timeout: float = 180) -> str:
    result = manage(env, *args, timeout=timeout)
    assert result.returncode == 0, f"manage.py {' '.join(args)}:\n{result.stdout[-2000:]}{result.stderr[-3000:]}"
    return result.stdout


@contextmanager
def postgres_database() -> Iterator[str]:
    """A database of this test session's own (others use theirs on the same server), dropped after."""
    name = f"mailwright_prod_{uuid.uuid4().hex[:12]}"
    with psycopg.connect(POSTGRES_ADMIN_URL, autocommit=True) as admin:
        admin.execute(f'CREATE DATABASE "{name}"')
    try:
        yield f"postgres://postgres@127.0.0.1:5432/{name}"
    finally:
        with psycopg.connect(POSTGRES_ADMIN_URL, autocommit=True) as admin:
            admin.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')


def query(database_url: str, sql: str, *params: Any) -> list[tuple[Any, ...]]:
    """Read what the deployed processes wrote, straight from PostgreSQL."""
    with psycopg.connect(database_url.replace("postgres://", "postgresql://", 1)) as connection:
        return connection.execute(sql, params).fetchall()  # type: ignore[arg-type]


@dataclass
class Deployment:
    """One installation: its environment, database, queue, and the processes started for it."""

    directory: Path
    env: dict[str, str]
    database_url: str
    queue: str
    started: list[Worker | Service] = field(default_factory=list)

    def manage(self, *args: str, timeout: float = 180) -> str:
        return manage_ok(self.env, *args, timeout=timeout)

    def import_project(self, document: dict[str, Any], password: str) -> str:
        """``import_project`` with a project file, as an operator does, its secret from the environment."""
        path = self.directory / f"{document['name']}.json"
        path.write_text(json.dumps(document))
        return manage_ok({**self.env, "SUPPORT_PASSWORD": password}, "import_project", str(path), "--team", "Ops")

    def run_operation(self, project: str, operation: str = "Forward to helpdesk") -> subprocess.Popen[str]:
        """``run_operation`` through the workers, started in the background (it waits for the run)."""
        return subprocess.Popen([python(), "manage.py", "run_operation", operation, "--project", project,
                                 "--team", "Ops", "--wait", "150"], cwd=ROOT, env=self.env,
                                stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)

    def worker(self, name: str, **kwargs: Any) -> Worker:
        worker = Worker(self.directory / f"{name}.log", self.queue, self.env, python=python(), pool="prefork",
                        **kwargs)
        self.started.append(worker)
        return worker

    def service(self, name: str, *args: str, **env: str) -> Service:
        service = Service(self.directory / f"{name}.log", [python(), "-m", *args], {**self.env, **env})
        self.started.append(service)
        return service

    def gunicorn(self) -> tuple[Service, int]:
        port = free_port()
        server = self.service("gunicorn", "gunicorn", "designer.wsgi", "--bind", f"127.0.0.1:{port}",
                              "--workers", "2", "--access-logfile", "-")
        server.wait_for("Booting worker")
        return server, port

    def beat(self) -> Service:
        return self.service("beat", "celery", "-A", "designer", "beat", "--loglevel", "INFO",
                            "--schedule", str(self.directory / "beat-schedule"))

    def runs(self, project: str) -> list[dict[str, Any]]:
        rows = query(self.database_url, """
            SELECT r.id, r.status, r.trigger, r.started_at, r.finished_at, r.worker, r.sent_count, r.message
            FROM designer_run r JOIN designer_operation o ON o.id = r.operation_id
            JOIN designer_project p ON p.id = o.project_id WHERE p.name = %s ORDER BY r.id""", project)
        keys = ("id", "status", "trigger", "started_at", "finished_at", "worker", "sent_count", "message")
        return [dict(zip(keys, row, strict=True)) for row in rows]

    def wait_runs(self, project: str, predicate: Any, timeout: float, what: str) -> list[dict[str, Any]]:
        deadline = time.monotonic() + timeout
        while not predicate(runs := self.runs(project)):
            if time.monotonic() > deadline:
                logs = "\n".join(f"--- {p.log.name}\n{p.output()[-2500:]}" for p in self.started)
                pytest.fail(f"{what}: runs of {project} are {runs}\n{logs}")
            time.sleep(0.5)
        return runs

    def stop(self) -> None:
        for process in reversed(self.started):
            process.stop()
        self.started.clear()
