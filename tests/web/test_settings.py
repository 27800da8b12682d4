"""The app's start-up rules, checked in fresh processes with a production-like environment."""

import os
import subprocess
import sys
from pathlib import Path

from cryptography.fernet import Fernet

ROOT = Path(__file__).resolve().parents[2]


def _manage(tmp_path, *args, **env):
    base = {k: v for k, v in os.environ.items()
            if not k.startswith(("MAILWRIGHT_", "DJANGO_", "SECRET_KEY", "DEBUG", "CELERY_", "DATABASE_URL"))}
    base.update({"MAILWRIGHT_DATA_DIR": str(tmp_path), "DJANGO_SETTINGS_MODULE": "designer.settings"}, **env)
    return subprocess.run([sys.executable, "manage.py", *args], cwd=ROOT, env=base, capture_output=True, text=True,
                          timeout=60)


def test_it_refuses_to_start_without_an_encryption_key(tmp_path):
    result = _manage(tmp_path, "check", DEBUG="0", SECRET_KEY="k" * 60, ALLOWED_HOSTS="example.com")
    assert result.returncode != 0
    assert "MAILWRIGHT_ENCRYPTION_KEYS is not set" in result.stderr


def test_it_refuses_a_malformed_key(tmp_path):
    result = _manage(tmp_path, "check", DEBUG="0", SECRET_KEY="k" * 60, MAILWRIGHT_ENCRYPTION_KEYS="nope")
    assert result.returncode != 0
    assert "key number 1 is not a Fernet key" in result.stderr


def test_it_passes_the_deploy_check_with_production_settings(tmp_path):
    result = _manage(tmp_path, "check", "--deploy", "--fail-level", "WARNING", DEBUG="0",
                     SECRET_KEY="a-long-random-production-secret-" + "z7Q" * 12, ALLOWED_HOSTS="mail.example.com",
                     MAILWRIGHT_ENCRYPTION_KEYS=Fernet.generate_key().decode())
    assert result.returncode == 0, result.stderr
    assert "no issues" in result.stdout


def test_it_rejects_a_non_boolean_debug(tmp_path):
    result = _manage(tmp_path, "check", DEBUG="maybe")
    assert result.returncode != 0
    assert "DEBUG must be true or false" in result.stderr


def test_it_uses_a_local_installations_keys_without_debug(tmp_path):
    (tmp_path / "secret_key").write_text("local-" + "q" * 50)
    (tmp_path / "encryption.key").write_text(Fernet.generate_key().decode())
    result = _manage(tmp_path, "check", DEBUG="0")
    assert result.returncode == 0, result.stderr
