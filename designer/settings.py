"""Django settings for Mailwright, read from the environment (see README and .env.example)."""

from __future__ import annotations

import ipaddress
import json
import secrets
from collections.abc import Callable
from datetime import timedelta
from pathlib import Path

import dj_database_url
from cryptography.fernet import Fernet
from csp.constants import NONCE, NONE, SELF, UNSAFE_INLINE
from django.core.exceptions import ImproperlyConfigured

from connectors.net import DEFAULT_DENY_NETWORKS, LOOPBACK_NETWORKS
from designer import brokers
from designer.env import envbool, envint, envlist, envstr
from designer.keyfiles import locate, write_new

BASE_DIR = Path(__file__).resolve().parent.parent
DATA_DIR = Path(envstr("MAILWRIGHT_DATA_DIR", str(BASE_DIR / "data")))

DEBUG = envbool("DEBUG", False)


# A local installation (`make run`) keeps its signing key and encryption key in files, so the
# management commands work there without exporting anything; production sets both in the
# environment. The files live in a key folder apart from the data folder (a copy of the database
# must not carry its key); one found in the data folder, where older versions kept it, is moved.
KEY_DIR = Path(envstr("MAILWRIGHT_KEY_DIR", str(BASE_DIR / "keys")))


def _local_file(path: Path, make: Callable[[], str]) -> str:
    """Read (creating on first use) a development-only value kept in the key folder."""
    if not path.exists():
        write_new(path, make())
    return path.read_text().strip()


SECRET_KEY_FILE = locate("secret_key", KEY_DIR, DATA_DIR)
SECRET_KEY = envstr("SECRET_KEY")
if not SECRET_KEY:
    if DEBUG:
        SECRET_KEY = _local_file(SECRET_KEY_FILE, lambda: secrets.token_urlsafe(50))
    elif SECRET_KEY_FILE.exists():
        SECRET_KEY = SECRET_KEY_FILE.read_text().strip()
    else:
        raise ImproperlyConfigured(
            "SECRET_KEY must be set when DEBUG is off (any long random string), "
            "or run `make run` once to create a local installation (its keys go to MAILWRIGHT_KEY_DIR)."
        )

ALLOWED_HOSTS = envlist("ALLOWED_HOSTS", ["localhost", "127.0.0.1", "[::1]"] if DEBUG else [])
CSRF_TRUSTED_ORIGINS = envlist("CSRF_TRUSTED_ORIGINS", [])

# Fernet keys, newest first: the first encrypts, all of them decrypt (rotation).
MAILWRIGHT_ENCRYPTION_KEYS = envlist("MAILWRIGHT_ENCRYPTION_KEYS", [])
ENCRYPTION_KEY_FILE = KEY_DIR / "encryption.key"
if not MAILWRIGHT_ENCRYPTION_KEYS:
    ENCRYPTION_KEY_FILE = locate("encryption.key", KEY_DIR, DATA_DIR)
if not MAILWRIGHT_ENCRYPTION_KEYS and ENCRYPTION_KEY_FILE.exists():
    MAILWRIGHT_ENCRYPTION_KEYS = [ENCRYPTION_KEY_FILE.read_text().strip()]
if not MAILWRIGHT_ENCRYPTION_KEYS and not DEBUG:
    raise ImproperlyConfigured(
        "MAILWRIGHT_ENCRYPTION_KEYS is not set: Mailwright refuses to start without a key to encrypt "
        "connection secrets. Make one with: python -c 'from cryptography.fernet import Fernet; "
        "print(Fernet.generate_key().decode())' (or run `make run` once for a local installation)"
    )
for _position, _key in enumerate(MAILWRIGHT_ENCRYPTION_KEYS, start=1):
    try:
        Fernet(_key)
    except (ValueError, TypeError):
        raise ImproperlyConfigured(
            f"MAILWRIGHT_ENCRYPTION_KEYS: key number {_position} is not a Fernet key "
            "(32 url-safe base64-encoded bytes)"
        ) from None

# Outbound connections of connections are refused to these networks (checked after DNS, for every
# address a name resolves to) unless MAILWRIGHT_ALLOW_NETWORKS names them: an internal relay. `make
# run` (DEBUG) opens loopback as well, so its demo mailbox on this machine can be reached.
MAILWRIGHT_DENY_NETWORKS = envlist("MAILWRIGHT_DENY_NETWORKS", list(DEFAULT_DENY_NETWORKS))
MAILWRIGHT_ALLOW_NETWORKS = envlist("MAILWRIGHT_ALLOW_NETWORKS", [])
if DEBUG:
    MAILWRIGHT_ALLOW_NETWORKS += [n for n in LOOPBACK_NETWORKS if n not in MAILWRIGHT_ALLOW_NETWORKS]
for _cidr in MAILWRIGHT_DENY_NETWORKS + MAILWRIGHT_ALLOW_NETWORKS:
    try:
        ipaddress.ip_network(_cidr, strict=False)
    except ValueError:
        raise ImproperlyConfigured(
            f"MAILWRIGHT_DENY_NETWORKS / MAILWRIGHT_ALLOW_NETWORKS: {_cidr!r} is not a network (e.g. 10.1.2.0/24)"
        ) from None
# Who may start a team in the browser: "staff" (is_staff users) or "anyone" logged in. The management
# commands (import_project, add_member) always may.
MAILWRIGHT_TEAM_CREATION = envstr("MAILWRIGHT_TEAM_CREATION", "staff").lower()
if MAILWRIGHT_TEAM_CREATION not in ("staff", "anyone"):
    raise ImproperlyConfigured(
        f"MAILWRIGHT_TEAM_CREATION must be staff or anyone, not {MAILWRIGHT_TEAM_CREATION!r}"
    )
# Identity providers besides Microsoft's own clouds that a Microsoft 365 connection may name (host names).
MAILWRIGHT_MICROSOFT_AUTHORITIES = envlist("MAILWRIGHT_MICROSOFT_AUTHORITIES", [])
# RFC 5321 4.5.3.2.6 gives a server 10 minutes to answer the end of a message's data.
MAILWRIGHT_SMTP_DATA_REPLY_TIMEOUT = envint("MAILWRIGHT_SMTP_DATA_REPLY_TIMEOUT", 600)
# Structure limits of a message read from a source: past them it is skipped with the reason.
MAILWRIGHT_MAX_PARTS = envint("MAILWRIGHT_MAX_PARTS", 1000)
MAILWRIGHT_MAX_HEADERS = envint("MAILWRIGHT_MAX_HEADERS", 1000)
MAILWRIGHT_MAX_ATTACHMENTS = envint("MAILWRIGHT_MAX_ATTACHMENTS", 500)
# A run's leases live this long unless its heartbeat renews them (every third of it): how soon a lost
# worker's run is taken over by its redelivered copy.
MAILWRIGHT_LEASE_SECONDS = envint("MAILWRIGHT_LEASE_SECONDS", 300)
# The longest timeout an operation may have; the broker's redelivery time must exceed it (designer/brokers.py).
MAILWRIGHT_MAX_OPERATION_MINUTES = envint("MAILWRIGHT_MAX_OPERATION_MINUTES", 24 * 60)
if MAILWRIGHT_MAX_OPERATION_MINUTES < 1:
    raise ImproperlyConfigured("MAILWRIGHT_MAX_OPERATION_MINUTES must be at least 1")
# How long the Test button waits for a worker to pick a check up before saying none is running.
MAILWRIGHT_CHECK_PICKUP_SECONDS = envint("MAILWRIGHT_CHECK_PICKUP_SECONDS", 15)

# The connector packages this installation offers; importing one registers it.
MAILWRIGHT_CONNECTORS = ["connectors.email"]

INSTALLED_APPS = [
    "django.contrib.admin",
    "django.contrib.auth",
    "django.contrib.contenttypes",
    "django.contrib.sessions",
    "django.contrib.messages",
    "whitenoise.runserver_nostatic",
    "django.contrib.staticfiles",
    "django_htmx",
    "template_partials",
    "django_celery_beat",
    "axes",
    "csp",
    "designer",
]

MIDDLEWARE = [
    "django.middleware.security.SecurityMiddleware",
    "whitenoise.middleware.WhiteNoiseMiddleware",
    "django.contrib.sessions.middleware.SessionMiddleware",
    "django.middleware.common.CommonMiddleware",
    "django.middleware.csrf.CsrfViewMiddleware",
    "django.contrib.auth.middleware.AuthenticationMiddleware",
    "django.contrib.messages.middleware.MessageMiddleware",
    "django.middleware.clickjacking.XFrameOptionsMiddleware",
    "csp.middleware.CSPMiddleware",
    "django_htmx.middleware.HtmxMiddleware",
    "django.contrib.auth.middleware.LoginRequiredMiddleware",
    # Last, as django-axes asks: it turns a lockout raised during authentication into its page.
    "axes.middleware.AxesMiddleware",
]

ROOT_URLCONF = "designer.urls"
WSGI_APPLICATION = "designer.wsgi.application"

TEMPLATES = [
    {
        "BACKEND": "django.template.backends.django.DjangoTemplates",
        "DIRS": [BASE_DIR / "templates"],
        "APP_DIRS": True,
        "OPTIONS": {
            "builtins": ["template_partials.templatetags.partials"],
            "context_processors": [
                "django.template.context_processors.request",
                "django.contrib.auth.context_processors.auth",
                "django.contrib.messages.context_processors.messages",
            ],
        },
    },
]

DATABASES = {
    "default": dj_database_url.parse(
        envstr("DATABASE_URL", f"sqlite:///{DATA_DIR / 'mailwright.sqlite3'}"),
        conn_max_age=envint("DATABASE_CONN_MAX_AGE", 60),
    )
}
if DATABASES["default"]["ENGINE"].endswith("sqlite3"):
    # A web process and a worker share the file: wait on locks instead of failing at once. (WAL mode
    # was tried and dropped: a worker killed mid-write left the shared-memory index unusable for the
    # other processes, "disk I/O error"; the rollback journal recovers cleanly.) The journal is kept
    # between transactions, its header zeroed, rather than created and deleted at each one: a run
    # commits every few messages, and a file created and unlinked each time costs more than the writes.
    DATABASES["default"].setdefault("OPTIONS", {}).update(
        {"timeout": 20, "transaction_mode": "IMMEDIATE", "init_command": "PRAGMA journal_mode=PERSIST"})
DEFAULT_AUTO_FIELD = "django.db.models.BigAutoField"

AUTH_PASSWORD_VALIDATORS = [
    {"NAME": "django.contrib.auth.password_validation.UserAttributeSimilarityValidator"},
    {"NAME": "django.contrib.auth.password_validation.MinimumLengthValidator"},
    {"NAME": "django.contrib.auth.password_validation.CommonPasswordValidator"},
    {"NAME": "django.contrib.auth.password_validation.NumericPasswordValidator"},
]
# Login throttling (django-axes) on the login page and /admin/: after MAILWRIGHT_LOGIN_FAILURE_LIMIT
# failures for one username, or from one address, within MAILWRIGHT_LOGIN_COOLOFF_MINUTES, further
# attempts are refused until that many minutes have passed. Both counted separately, so guessing many
# passwords for one user and one password for many users are both stopped. The address is the
# connecting one (REMOTE_ADDR): behind a reverse proxy it must pass the client's address there.
AUTHENTICATION_BACKENDS = [
    "axes.backends.AxesStandaloneBackend",
    "django.contrib.auth.backends.ModelBackend",
]
AXES_FAILURE_LIMIT = envint("MAILWRIGHT_LOGIN_FAILURE_LIMIT", 10)
AXES_COOLOFF_TIME = timedelta(minutes=envint("MAILWRIGHT_LOGIN_COOLOFF_MINUTES", 15))
AXES_LOCKOUT_PARAMETERS = ["username", "ip_address"]
# A locked-out attacker who keeps trying must not keep the real user locked out for ever.
AXES_RESET_COOL_OFF_ON_FAILURE_DURING_LOCKOUT = False
AXES_RESET_ON_SUCCESS = True
AXES_LOCKOUT_CALLABLE = "designer.teams.lockout.locked_out"
AXES_VERBOSE = False

LOGIN_URL = "login"
LOGIN_REDIRECT_URL = "home"
LOGOUT_REDIRECT_URL = "login"

LANGUAGE_CODE = "en-us"
TIME_ZONE = envstr("TIME_ZONE", "UTC")
USE_I18N = True
USE_TZ = True

STATIC_URL = "static/"
STATICFILES_DIRS = [BASE_DIR / "static"]
STATIC_ROOT = Path(envstr("STATIC_ROOT", str(DATA_DIR / "static")))
STATIC_ROOT.mkdir(parents=True, exist_ok=True)
STORAGES = {
    "default": {"BACKEND": "django.core.files.storage.FileSystemStorage"},
    "staticfiles": {
        "BACKEND": "django.contrib.staticfiles.storage.StaticFilesStorage"
        if DEBUG
        else "whitenoise.storage.CompressedManifestStaticFilesStorage"
    },
}

# Content-Security-Policy on every page (django-csp 4): scripts and styles only from our static files, so
# injected markup cannot run script. Style *attributes* stay allowed: the sanitised email preview
# (a sandboxed srcdoc iframe, which inherits this policy) is mostly inline styles, and its own
# meta CSP (designer/preview.py) already forbids it every fetch; data: images are what it may show.
# No form-action: "Sign in with Microsoft" posts here and is redirected to the identity provider.
CONTENT_SECURITY_POLICY = {
    "DIRECTIVES": {
        "default-src": [SELF],
        "script-src": [SELF],
        # The nonce is for the connection form's <style> of field rules (generated, never user input).
        "style-src": [SELF, NONCE],
        "style-src-attr": [UNSAFE_INLINE],
        "img-src": [SELF, "data:"],
        "object-src": [NONE],
        "base-uri": [SELF],
        "frame-ancestors": [NONE],
    },
}

# Hardened cookies and transport outside development; behind a TLS proxy set
# MAILWRIGHT_PROXY_SSL_HEADER=1 so Django trusts X-Forwarded-Proto.
SESSION_COOKIE_HTTPONLY = True
SESSION_COOKIE_SAMESITE = "Lax"
CSRF_COOKIE_SAMESITE = "Lax"
X_FRAME_OPTIONS = "DENY"
SECURE_CONTENT_TYPE_NOSNIFF = True
SECURE_REFERRER_POLICY = "same-origin"
if not DEBUG:
    SESSION_COOKIE_SECURE = envbool("SESSION_COOKIE_SECURE", True)
    CSRF_COOKIE_SECURE = envbool("CSRF_COOKIE_SECURE", True)
    SECURE_SSL_REDIRECT = envbool("SECURE_SSL_REDIRECT", True)
    SECURE_HSTS_SECONDS = envint("SECURE_HSTS_SECONDS", 31536000)
    SECURE_HSTS_INCLUDE_SUBDOMAINS = envbool("SECURE_HSTS_INCLUDE_SUBDOMAINS", True)
    SECURE_HSTS_PRELOAD = envbool("SECURE_HSTS_PRELOAD", True)
if envbool("MAILWRIGHT_PROXY_SSL_HEADER", False):
    SECURE_PROXY_SSL_HEADER = ("HTTP_X_FORWARDED_PROTO", "https")

# Celery. The default broker is kombu's filesystem transport in the data directory: it needs no
# server, yet a separate worker process reads the same folder, which is what `make run` wants.
BROKER_DIR = DATA_DIR / "broker"
CELERY_BROKER_URL = envstr("CELERY_BROKER_URL", "filesystem://")
CELERY_BROKER_TRANSPORT_OPTIONS: dict[str, object] = {}
if CELERY_BROKER_URL.startswith("filesystem://"):
    CELERY_BROKER_TRANSPORT_OPTIONS = {
        "data_folder_in": str(BROKER_DIR / "queue"),
        "data_folder_out": str(BROKER_DIR / "queue"),
        "processed_folder": str(BROKER_DIR / "processed"),
        "control_folder": str(BROKER_DIR / "control"),
        "store_processed": False,
    }
    for _folder in ("queue", "processed", "control"):
        (BROKER_DIR / _folder).mkdir(parents=True, exist_ok=True)
elif brokers.is_redis(CELERY_BROKER_URL):
    # Redis must not hand a run's task to a second worker while the first still runs it (designer/brokers.py).
    CELERY_BROKER_TRANSPORT_OPTIONS = {"visibility_timeout": envint(
        "CELERY_VISIBILITY_TIMEOUT", brokers.default_visibility_timeout(MAILWRIGHT_MAX_OPERATION_MINUTES))}
try:
    CELERY_BROKER_TRANSPORT_OPTIONS.update(json.loads(envstr("CELERY_BROKER_TRANSPORT_OPTIONS", "{}")))
except (ValueError, TypeError):
    raise ImproperlyConfigured(
        'CELERY_BROKER_TRANSPORT_OPTIONS must be a JSON object of kombu transport options, e.g. {"max_retries": 3}'
    ) from None
# RabbitMQ's equivalent is on the server (its consumer_timeout, 30 min by default), so the operator
# declares here what the server has; the test suite alone may run below the longest hold on purpose.
RABBITMQ_CONSUMER_TIMEOUT = envint("RABBITMQ_CONSUMER_TIMEOUT", brokers.RABBITMQ_DEFAULT_CONSUMER_TIMEOUT_MS)
if not envbool("MAILWRIGHT_UNSAFE_REDELIVERY", False):
    brokers.check_redelivery(CELERY_BROKER_URL, CELERY_BROKER_TRANSPORT_OPTIONS, MAILWRIGHT_MAX_OPERATION_MINUTES,
                             RABBITMQ_CONSUMER_TIMEOUT)
# Several installations can share one broker, each on a queue of its own.
CELERY_TASK_DEFAULT_QUEUE = envstr("CELERY_TASK_DEFAULT_QUEUE", "celery")
CELERY_TASK_ALWAYS_EAGER = envbool("CELERY_TASK_ALWAYS_EAGER", False)
CELERY_TASK_SERIALIZER = "json"
CELERY_ACCEPT_CONTENT = ["json"]
CELERY_TASK_IGNORE_RESULT = True
CELERY_TASK_ACKS_LATE = True
CELERY_TASK_REJECT_ON_WORKER_LOST = True
CELERY_WORKER_PREFETCH_MULTIPLIER = 1
CELERY_BROKER_CONNECTION_RETRY_ON_STARTUP = True
CELERY_WORKER_HIJACK_ROOT_LOGGER = False

# django-celery-beat keeps schedules in the database, so operations' schedules change without a restart.
CELERY_BEAT_SCHEDULER = "django_celery_beat.schedulers:DatabaseScheduler"
CELERY_BEAT_SCHEDULE = {
    "purge-old-runs": {"task": "designer.tasks.purge_old_runs", "schedule": 3600.0},
    "reap-stale-runs": {"task": "designer.tasks.reap_stale_runs", "schedule": 300.0},
    "watch-stalled-sources": {"task": "designer.tasks.watch_stalled_sources", "schedule": 60.0},
}
MAILWRIGHT_RUN_RETENTION_DAYS = envint("MAILWRIGHT_RUN_RETENTION_DAYS", 30)

LOG_LEVEL = envstr("LOG_LEVEL", "INFO")
LOGGING = {
    "version": 1,
    "disable_existing_loggers": False,
    "formatters": {"plain": {"format": "%(asctime)s %(levelname)s %(name)s: %(message)s"}},
    "handlers": {"console": {"class": "logging.StreamHandler", "formatter": "plain"}},
    "root": {"handlers": ["console"], "level": LOG_LEVEL},
    # kombu warns on every connection that the filesystem broker URL names no host: it needs none.
    # axes logs every failed login at INFO; its WARNINGs (failures, lockouts) are the ones to keep.
    "loggers": {
        "imapclient": {"level": "WARNING"},
        "kombu.connection": {"level": "ERROR"},
        "axes": {"level": "WARNING"},
    },
}
