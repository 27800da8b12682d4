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
    base.update({"MAILWRIGHT_DATA_DIR": str(tmp_path), "MAILWRIGHT_KEY_DIR": str(tmp_path / "keys"),
                 "DJANGO_SETTINGS_MODULE": "designer.settings"}, **env)
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


def test_a_key_left_in_the_data_folder_is_moved_to_the_key_folder(tmp_path):
    key = Fernet.generate_key().decode()
    (tmp_path / "secret_key").write_text("local-" + "q" * 50)
    (tmp_path / "encryption.key").write_text(key)

    first = _manage(tmp_path, "check", DEBUG="0")
    second = _manage(tmp_path, "check", DEBUG="0")

    assert first.returncode == 0, first.stderr
    assert f"moved {tmp_path / 'encryption.key'} to {tmp_path / 'keys' / 'encryption.key'}" in first.stderr
    assert "outside the data folder" in first.stderr
    assert not (tmp_path / "encryption.key").exists() and not (tmp_path / "secret_key").exists()
    assert (tmp_path / "keys" / "encryption.key").read_text() == key
    assert (tmp_path / "keys" / "encryption.key").stat().st_mode & 0o077 == 0
    assert second.returncode == 0 and "moved" not in second.stderr  # once


def test_a_new_local_installation_keeps_its_keys_outside_the_data_folder(tmp_path):
    result = _manage(tmp_path, "setup_local", DEBUG="1", MAILWRIGHT_DEMO="0")

    assert result.returncode == 0, result.stderr
    assert (tmp_path / "keys" / "encryption.key").exists() and (tmp_path / "keys" / "secret_key").exists()
    assert not (tmp_path / "encryption.key").exists() and not (tmp_path / "secret_key").exists()


def test_a_key_that_cannot_be_moved_is_still_read(tmp_path, monkeypatch, capsys):
    from designer import keyfiles

    (tmp_path / "encryption.key").write_text("k")
    monkeypatch.setattr(keyfiles.shutil, "move", lambda *a: (_ for _ in ()).throw(PermissionError(13, "denied")))

    assert keyfiles.locate("encryption.key", tmp_path / "keys", tmp_path) == tmp_path / "encryption.key"
    assert "could not move" in capsys.readouterr().err


_POLICY = ("from connectors.net import denied_by; "
           "print(*[denied_by(ip) is not None for ip in ('127.0.0.1', '::1', '10.1.2.3', '10.1.3.1', '::')])")


def _production(**env):
    return {"DEBUG": "0", "SECRET_KEY": "k" * 60, "MAILWRIGHT_ENCRYPTION_KEYS": Fernet.generate_key().decode(),
            **env}


def test_production_settings_deny_loopback_and_open_only_the_named_networks(tmp_path):
    denied = _manage(tmp_path, "shell", "--no-imports", "-c", _POLICY, **_production())
    assert denied.stdout.split() == ["True"] * 5, denied.stderr
    relay = _manage(tmp_path, "shell", "--no-imports", "-c", _POLICY,
                    **_production(MAILWRIGHT_ALLOW_NETWORKS="10.1.2.0/24"))
    assert relay.stdout.split() == ["True", "True", "False", "True", "True"], relay.stderr


def test_debug_opens_loopback_for_the_demo_and_nothing_else(tmp_path):
    result = _manage(tmp_path, "shell", "--no-imports", "-c", _POLICY, DEBUG="1")
    assert result.stdout.split() == ["False", "False", "True", "True", "True"], result.stderr


def test_it_refuses_to_start_with_a_network_that_is_not_one(tmp_path):
    result = _manage(tmp_path, "check", **_production(MAILWRIGHT_ALLOW_NETWORKS="10.1.2"))
    assert result.returncode != 0
    assert "'10.1.2' is not a network" in result.stderr


def _broker_check(tmp_path, **env):
    return _manage(tmp_path, "check", DEBUG="0", SECRET_KEY="k" * 60, ALLOWED_HOSTS="example.com",
                   MAILWRIGHT_ENCRYPTION_KEYS=Fernet.generate_key().decode(), **env)


def test_it_refuses_a_redis_visibility_timeout_below_the_longest_run(tmp_path):
    # 6 h was the old default: a 24 h operation's task would be handed to a second worker after 6 h.
    result = _broker_check(tmp_path, CELERY_BROKER_URL="redis://127.0.0.1:6379/9", CELERY_VISIBILITY_TIMEOUT="21600")
    assert result.returncode != 0
    assert ("Redis' visibility timeout (21600 s) must exceed the longest a run may hold its task: 24 h 1 min 30 s "
            "(MAILWRIGHT_MAX_OPERATION_MINUTES=1440 plus 90 s of time limit)") in result.stderr
    assert "CELERY_VISIBILITY_TIMEOUT above 86490" in result.stderr


def test_the_redis_default_and_a_lower_operation_cap_are_accepted(tmp_path):
    assert _broker_check(tmp_path, CELERY_BROKER_URL="redis://127.0.0.1:6379/9").returncode == 0
    lowered = _broker_check(tmp_path, CELERY_BROKER_URL="redis://127.0.0.1:6379/9", CELERY_VISIBILITY_TIMEOUT="21600",
                            MAILWRIGHT_MAX_OPERATION_MINUTES="300")
    assert lowered.returncode == 0, lowered.stderr


def test_it_refuses_rabbitmqs_default_consumer_timeout_until_it_is_raised(tmp_path):
    url = "amqp://guest:guest@127.0.0.1:5672//"
    refused = _broker_check(tmp_path, CELERY_BROKER_URL=url)
    assert refused.returncode != 0
    assert "RabbitMQ's consumer_timeout (1800000 ms = 30 min, as RABBITMQ_CONSUMER_TIMEOUT declares)" in refused.stderr
    assert "raise consumer_timeout in rabbitmq.conf above 86490000" in refused.stderr
    raised = _broker_check(tmp_path, CELERY_BROKER_URL=url, RABBITMQ_CONSUMER_TIMEOUT="90000000")
    assert raised.returncode == 0, raised.stderr
    capped = _broker_check(tmp_path, CELERY_BROKER_URL=url, MAILWRIGHT_MAX_OPERATION_MINUTES="25")
    assert capped.returncode == 0, capped.stderr
