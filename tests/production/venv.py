"""A clean virtualenv of requirements.txt alone, cached by the file's hash.

The production suite runs gunicorn, the workers and beat from it, so a dependency production
needs but only the test tools bring (as ``packaging`` once was) fails the suite instead of a
deployment. Built once per version of requirements.txt (and Python): later runs reuse it.

``python -m tests.production.venv`` builds it ahead of the tests (``make test`` does), so the
download from the package index happens in the build step, not inside a test.
"""

from __future__ import annotations

import fcntl
import hashlib
import os
import shutil
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
REQUIREMENTS = ROOT / "requirements.txt"
COMPLETE = ".mailwright-complete"


def cache_dir() -> Path:
    return Path(os.environ.get("MAILWRIGHT_CACHE_DIR", Path.home() / ".cache" / "mailwright"))


def venv_path() -> Path:
    digest = hashlib.sha256(REQUIREMENTS.read_bytes())
    digest.update(sys.version.encode())
    return cache_dir() / f"venv-{digest.hexdigest()[:16]}"


def production_venv() -> Path:
    """The virtualenv's directory, built on first use; safe when several sessions ask at once."""
    path = venv_path()
    if (path / COMPLETE).exists():
        return path
    path.parent.mkdir(parents=True, exist_ok=True)
    with open(path.with_suffix(".lock"), "w") as lock:
        fcntl.flock(lock, fcntl.LOCK_EX)
        if not (path / COMPLETE).exists():
            _build(path)
    return path


def _build(path: Path) -> None:
    shutil.rmtree(path, ignore_errors=True)  # a build interrupted earlier
    # The base interpreter, not this (test) virtualenv's: nothing of ours may leak in.
    base = getattr(sys, "_base_executable", sys.executable)
    subprocess.run([base, "-m", "venv", str(path)], check=True)
    pip = [str(path / "bin" / "python"), "-m", "pip", "--disable-pip-version-check", "-q"]
    subprocess.run([*pip, "install", "-r", str(REQUIREMENTS)], check=True, env=_clean_env())
    subprocess.run([*pip, "check"], check=True, env=_clean_env())
    (path / COMPLETE).write_text(REQUIREMENTS.read_text())


def _clean_env() -> dict[str, str]:
    return {k: v for k, v in os.environ.items() if k not in ("PYTHONPATH", "VIRTUAL_ENV", "PYTHONHOME")}


if __name__ == "__main__":
    print(production_venv())
