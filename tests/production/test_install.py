"""The product as deployed: a clean virtualenv of requirements.txt alone runs the web server, the
workers on every broker transport, and passes Django's deploy check with production settings."""

from __future__ import annotations

import subprocess
from pathlib import Path

import pytest

from tests.production.deployment import manage, production_env, python
from tests.production.venv import ROOT

pytestmark = pytest.mark.production


def test_every_broker_transport_and_the_wsgi_server_import_from_requirements_alone(tmp_path: Path) -> None:
    code = ("import django, kombu.transport.redis, kombu.transport.pyamqp, kombu.transport.filesystem, "
            "gunicorn.app.wsgiapp; django.setup(); import designer.wsgi, designer.celery; print('ok')")
    result = subprocess.run([python(), "-c", code], cwd=ROOT, capture_output=True, text=True, timeout=120,
                            env=production_env(tmp_path, DJANGO_SETTINGS_MODULE="designer.settings"))
    assert result.returncode == 0, result.stderr[-3000:]
    assert result.stdout.strip() == "ok"


def test_the_deploy_check_is_clean_from_requirements_alone(tmp_path: Path) -> None:
    result = manage(production_env(tmp_path), "check", "--deploy", "--fail-level", "WARNING")
    assert result.returncode == 0, result.stderr[-3000:]
    assert "no issues" in result.stdout


def test_a_malformed_broker_transport_options_stops_the_start_naming_the_variable(tmp_path: Path) -> None:
    env = production_env(tmp_path, CELERY_BROKER_TRANSPORT_OPTIONS='["visibility_timeout", 60]')
    result = manage(env, "check")
    assert result.returncode != 0
    assert "CELERY_BROKER_TRANSPORT_OPTIONS must be a JSON object" in result.stderr
    merged = ("from django.conf import settings; o = settings.CELERY_BROKER_TRANSPORT_OPTIONS; "
              "print(o['visibility_timeout'], o['unacked_restore_interval'])")
    env["CELERY_BROKER_TRANSPORT_OPTIONS"] = '{"unacked_restore_interval": 2}'
    assert manage(env, "shell", "--no-imports", "-c", merged).stdout.split() == ["90090", "2"]  # 24 h + 90 s + 1 h
