"""The product as deployed: a clean virtualenv of requirements.txt alone runs the web server, the
workers on every broker transport, and passes Django's deploy check with production settings."""

from __future__ import annotations

import os
import subprocess
from pathlib import Path

import pytest
from cryptography.fernet import Fernet

from tests.production.venv import ROOT, production_venv

pytestmark = pytest.mark.production


def _run(tmp_path: Path, *args: str, **env: str) -> subprocess.CompletedProcess[str]:
    environment = {
        **{k: v for k, v in os.environ.items() if not k.startswith(("DJANGO_", "PYTHON", "VIRTUAL_ENV"))},
        "DEBUG": "0", "SECRET_KEY": "a-long-random-production-secret-" + "z7Q" * 12,
        "ALLOWED_HOSTS": "mail.example.com", "MAILWRIGHT_ENCRYPTION_KEYS": Fernet.generate_key().decode(),
        "MAILWRIGHT_DATA_DIR": str(tmp_path), "MAILWRIGHT_KEY_DIR": str(tmp_path / "keys"),
        "DATABASE_URL": f"sqlite:///{tmp_path / 'db.sqlite3'}", "CELERY_BROKER_URL": "redis://127.0.0.1:6379/15",
        **env,
    }
    python = str(production_venv() / "bin" / "python")
    return subprocess.run([python, *args], cwd=ROOT, env=environment, capture_output=True, text=True, timeout=120)


def test_every_broker_transport_and_the_wsgi_server_import_from_requirements_alone(tmp_path: Path) -> None:
    code = ("import django, kombu.transport.redis, kombu.transport.pyamqp, kombu.transport.filesystem, "
            "gunicorn.app.wsgiapp; django.setup(); import designer.wsgi, designer.celery; print('ok')")
    result = _run(tmp_path, "-c", code, DJANGO_SETTINGS_MODULE="designer.settings")
    assert result.returncode == 0, result.stderr[-3000:]
    assert result.stdout.strip() == "ok"


def test_the_deploy_check_is_clean_from_requirements_alone(tmp_path: Path) -> None:
    result = _run(tmp_path, "manage.py", "check", "--deploy", "--fail-level", "WARNING")
    assert result.returncode == 0, result.stderr[-3000:]
    assert "no issues" in result.stdout
