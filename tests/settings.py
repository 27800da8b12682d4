"""Settings for the test suite: production-like (DEBUG off) with throwaway keys and paths."""

import os
import tempfile

os.environ.setdefault("SECRET_KEY", "tests-only-secret-key-" + "x" * 40)
# A fixed test key; never used outside the suite.
os.environ.setdefault("MAILWRIGHT_ENCRYPTION_KEYS", "dGVzdHMtb25seS1rZXktMDAwMDAwMDAwMDAwMDAwMDA=")
os.environ.setdefault("MAILWRIGHT_DATA_DIR", tempfile.mkdtemp(prefix="mailwright-tests-"))
os.environ.setdefault("MAILWRIGHT_KEY_DIR", tempfile.mkdtemp(prefix="mailwright-tests-keys-"))
os.environ.setdefault("CELERY_TASK_ALWAYS_EAGER", "1")
os.environ.setdefault("ALLOWED_HOSTS", "testserver,localhost,127.0.0.1")

from designer.settings import *  # noqa: E402,F403
from designer.settings import DATA_DIR, DATABASES, STORAGES  # noqa: E402

STORAGES["staticfiles"] = {"BACKEND": "django.contrib.staticfiles.storage.StaticFilesStorage"}
SECURE_SSL_REDIRECT = False
SESSION_COOKIE_SECURE = False
CSRF_COOKIE_SECURE = False
PASSWORD_HASHERS = ["django.contrib.auth.hashers.MD5PasswordHasher"]
# Test runs should not hide a missing-worker message behind a long wait.
MAILWRIGHT_CHECK_PICKUP_SECONDS = 2
# A file, not memory, so the secret canary can read the raw bytes and a worker process can share it.
if DATABASES["default"]["ENGINE"].endswith("sqlite3"):
    DATABASES["default"]["TEST"] = {"NAME": str(DATA_DIR / "test.sqlite3")}
# The suite's servers are on loopback: open it as `make run` does; every other default stays denied.
MAILWRIGHT_ALLOW_NETWORKS = ["127.0.0.0/8", "::1/128"]
# The suite's identity provider stands in for Microsoft's on loopback.
MAILWRIGHT_MICROSOFT_AUTHORITIES = ["127.0.0.1", "localhost"]
