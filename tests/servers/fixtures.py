"""pytest plugin: real IMAP (Dovecot) and SMTP (aiosmtpd) servers on 127.0.0.1.

Load it with ``pytest_plugins = ["tests.servers.fixtures"]`` (tests/conftest.py) or
``pytest -p tests.servers.fixtures``.

Fixtures:

* ``tls_certs`` (session) — CA + localhost and wrong-host certificates (tests.servers.certs).
* ``dovecot`` (session) — one running :class:`Dovecot` with users ``alice`` and ``bob``.
* ``mailbox`` (function) — alice's :class:`Mailbox`, emptied before the test; also restarts
  Dovecot if an earlier test stopped it.
* ``dovecot_factory`` (function) — build extra Dovecot instances (e.g. ``disable_move=True``),
  started, stopped at teardown.
* ``smtp_server`` (function) — a started plain SMTP server without AUTH.
* ``smtp_factory`` (function) — build any :class:`SMTPServer` variant, started, stopped at
  teardown; ``certs`` defaults to ``tls_certs``.
* ``idp`` (function) — the session's :class:`IdentityProvider` with its switches reset, trusted
  by this test through ``SSL_CERT_FILE`` (monkeypatched); users: ``OAUTH_USER``.
* ``oauth_dovecot`` (session) — a second Dovecot whose oauth2 passdb asks ``idp`` about tokens
  (XOAUTH2), with the user ``OAUTH_USER`` (also a password user, for the mailbox helpers).

A missing Dovecot is an error, never a skip: a skipped integration suite looks green.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest

from .certs import TestCerts, generate_test_certs
from .dovecot import MISSING_DOVECOT_MESSAGE, Dovecot, Mailbox, dovecot_available
from .idp import IdentityProvider
from .smtp import Mode, SMTPServer

IMAP_USER = "alice"
IMAP_PASSWORD = "alice-imap-secret"
OTHER_IMAP_USER = "bob"
OTHER_IMAP_PASSWORD = "bob-imap-secret"
OAUTH_USER = "alice@contoso.test"
OAUTH_PASSWORD = "alice-entra-password"

DovecotFactory = Callable[..., Dovecot]
SMTPFactory = Callable[..., SMTPServer]

__all__ = [
    "DovecotFactory",
    "IMAP_PASSWORD",
    "IMAP_USER",
    "OAUTH_PASSWORD",
    "OAUTH_USER",
    "OTHER_IMAP_PASSWORD",
    "OTHER_IMAP_USER",
    "SMTPFactory",
    "dovecot",
    "dovecot_factory",
    "idp",
    "idp_server",
    "mailbox",
    "oauth_dovecot",
    "smtp_factory",
    "smtp_server",
    "tls_certs",
]


def _require_dovecot() -> None:
    if not dovecot_available():
        pytest.fail(MISSING_DOVECOT_MESSAGE, pytrace=False)


@pytest.fixture(scope="session")
def tls_certs(tmp_path_factory: pytest.TempPathFactory) -> TestCerts:
    return generate_test_certs(tmp_path_factory.mktemp("tls-certs"))


@pytest.fixture(scope="session")
def dovecot(tls_certs: TestCerts) -> Iterator[Dovecot]:
    _require_dovecot()
    # Dovecot gets its own mkdtemp dir rather than pytest's tmp_path: pytest's base temp dir
    # is 0700, which the unprivileged mail/auth processes could not traverse.
    server = Dovecot(certs=tls_certs)
    server.add_user(IMAP_USER, IMAP_PASSWORD)
    server.add_user(OTHER_IMAP_USER, OTHER_IMAP_PASSWORD)
    try:
        server.start()
        yield server
    finally:
        server.close()


@pytest.fixture
def mailbox(dovecot: Dovecot) -> Mailbox:
    dovecot.start()  # no-op when running; revives it after a test that stopped it
    box = dovecot.mailbox(IMAP_USER)
    box.reset()
    return box


@pytest.fixture
def dovecot_factory(tls_certs: TestCerts) -> Iterator[DovecotFactory]:
    _require_dovecot()
    servers: list[Dovecot] = []

    def make(users: dict[str, str] | None = None, **kwargs: Any) -> Dovecot:
        kwargs.setdefault("certs", tls_certs)
        server = Dovecot(**kwargs)
        servers.append(server)
        for name, password in (users or {IMAP_USER: IMAP_PASSWORD}).items():
            server.add_user(name, password)
        return server.start()

    yield make
    for server in servers:
        server.close()


@pytest.fixture
def smtp_server() -> Iterator[SMTPServer]:
    server = SMTPServer("plain").start()
    try:
        yield server
    finally:
        server.stop()


@pytest.fixture
def smtp_factory(tls_certs: TestCerts) -> Iterator[SMTPFactory]:
    servers: list[SMTPServer] = []

    def make(mode: Mode = "plain", auth: dict[str, str] | None = None, **kwargs: Any) -> SMTPServer:
        kwargs.setdefault("certs", tls_certs)
        server = SMTPServer(mode, auth, **kwargs)
        servers.append(server)
        return server.start()

    yield make
    for server in servers:
        server.stop()


@pytest.fixture(scope="session")
def idp_server(tls_certs: TestCerts) -> Iterator[IdentityProvider]:
    server = IdentityProvider(tls_certs, users={OAUTH_USER: OAUTH_PASSWORD}, app_mailbox=OAUTH_USER).start()
    try:
        yield server
    finally:
        server.stop()


@pytest.fixture
def idp(idp_server: IdentityProvider, tls_certs: TestCerts, monkeypatch: pytest.MonkeyPatch) -> IdentityProvider:
    # The product checks the identity provider against the system trust store, which OpenSSL
    # lets SSL_CERT_FILE replace; only for this test.
    monkeypatch.setenv("SSL_CERT_FILE", str(tls_certs.ca_path))
    idp_server.reset()
    return idp_server


@pytest.fixture(scope="session")
def oauth_dovecot(tls_certs: TestCerts, idp_server: IdentityProvider) -> Iterator[Dovecot]:
    _require_dovecot()
    server = Dovecot(certs=tls_certs, oauth2_introspection_url=idp_server.introspection_url)
    server.add_user(OAUTH_USER, OAUTH_PASSWORD)
    try:
        server.start()
        yield server
    finally:
        server.close()


def dovecot_log(server: Dovecot) -> str:
    """Dovecot's log, for an assertion message when a test fails on the IMAP side."""
    path: Path = server.log_path
    return path.read_text(errors="replace") if path.exists() else ""
