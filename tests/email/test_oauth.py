"""Microsoft 365 OAuth2 against a local identity provider, Dovecot's oauth2 passdb and aiosmtpd XOAUTH2.

The identity provider (tests.servers.idp) issues the tokens through the configured authority
(MSAL with instance discovery off); Dovecot asks it whether a token is live before letting
XOAUTH2 in, and the SMTP server asks it too: a token that works here really was presented.
"""

from __future__ import annotations

import dataclasses
import socket
import threading
import time
from collections.abc import Iterator
from typing import Any

import pytest

from connectors.base import CheckStep, ConnectorError, Secrets
from connectors.email.activities import parse_read_settings, parse_send_settings
from connectors.email.check import check_email_connection
from connectors.email.config import EmailConfig, parse_email_config
from connectors.email.imap import open_imap
from connectors.email.oauth import access_token
from connectors.email.smtp import open_smtp
from connectors.email.source import EmailSource
from connectors.email.target import EmailTarget
from tests.helpers import oauth_server_config
from tests.servers.dovecot import Dovecot, free_port
from tests.servers.fixtures import OAUTH_PASSWORD, OAUTH_USER, SMTPFactory
from tests.servers.idp import CLIENT_SECRET, IdentityProvider
from tests.servers.smtp import SMTPServer

MESSAGE = b"From: a@example.test\r\nTo: alice@contoso.test\r\nSubject: OAuth\r\n\r\nBody.\r\n"


class MemoryStore:
    """A ``TokenStore`` in memory (the designer's keeps it encrypted in the database)."""

    def __init__(self) -> None:
        self.value = ""
        self.saves = 0

    def load(self) -> str:
        return self.value

    def save(self, value: str) -> None:
        self.value = value
        self.saves += 1


@pytest.fixture
def smtp_oauth(smtp_factory: SMTPFactory, idp: IdentityProvider) -> SMTPServer:
    return smtp_factory("starttls", None, xoauth2=lambda user, token: idp.active_user(token) == user)


def _config(oauth_dovecot: Dovecot, smtp: SMTPServer, idp: IdentityProvider, grant: str = "client_credentials",
            **auth: Any) -> EmailConfig:
    return parse_email_config(oauth_server_config(oauth_dovecot, smtp, idp, grant, **auth))


def _secrets(grant: str = "client_credentials", **values: str) -> Secrets:
    base = {"client_secret": CLIENT_SECRET}
    if grant == "password":
        base["password"] = OAUTH_PASSWORD
    return Secrets({**base, **values}, token_store=MemoryStore())


def _steps(config: EmailConfig, secrets: Secrets) -> list[CheckStep]:
    return list(check_email_connection(config, secrets))


def _failed(steps: list[CheckStep]) -> list[CheckStep]:
    return [s for s in steps if not s.ok]


@pytest.mark.parametrize("grant", ["client_credentials", "password"])
def test_it_passes_every_test_step_with_xoauth2_for_each_direct_grant(grant, idp, oauth_dovecot, smtp_oauth):
    config = _config(oauth_dovecot, smtp_oauth, idp, grant)
    steps = _steps(config, _secrets(grant))
    assert not _failed(steps), steps
    names = [s.name for s in steps]
    assert names[0] == "OAuth token" and "IMAP login" in names and "SMTP login" in names
    assert f"token for {OAUTH_USER} from {idp.authority} (newly issued), expires in 60 min" == steps[0].detail
    assert idp.grant_types() == [grant]  # IMAP and SMTP logins reused the token of the Token step
    scope = idp.grants[0].scope
    if grant == "client_credentials":
        assert scope == "https://localhost/.default"
    else:
        assert "https://localhost/IMAP.AccessAsUser.All" in scope and "https://localhost/SMTP.Send" in scope


def test_it_reuses_a_cached_token_while_it_is_valid(idp, oauth_dovecot, smtp_oauth):
    config = _config(oauth_dovecot, smtp_oauth, idp)
    secrets = _secrets()
    first = access_token(config, secrets)
    second = access_token(config, secrets)
    assert (first.reused, second.reused) == (False, True)
    assert first.value == second.value
    with open_imap(config, secrets) as client, client.translating("select"):
        client.select_folder("INBOX")
    assert idp.grant_types() == ["client_credentials"]


def test_it_refreshes_an_expired_token_in_the_middle_of_a_run(idp, oauth_dovecot, smtp_oauth):
    """Two-second tokens: the source loses its connection after the first token died, logs in again with a
    token refreshed from the refresh token, and the target sends across the expiry the same way."""
    idp.switches.token_lifetime = 2
    oauth_dovecot.mailbox(OAUTH_USER).reset()
    for n in range(2):
        oauth_dovecot.append(OAUTH_USER, "INBOX", MESSAGE.replace(b"OAuth", b"OAuth %d" % n))
    config = _config(oauth_dovecot, smtp_oauth, idp, "password")
    secrets = _secrets("password")
    with EmailSource(config, secrets, parse_read_settings({"folder": "INBOX"})) as source:
        keys = source.candidates()
        assert len(keys) == 2
        time.sleep(2.2)  # the token of the first login is dead now (introspection says inactive)
        assert source._client is not None
        source._client.shutdown()  # the connection drops mid-run; the next command reconnects
        items = list(source.fetch(keys))
        assert [i.record["subject"] for i in items if i.record] == ["OAuth 0", "OAuth 1"]
    with EmailTarget(config, secrets, parse_send_settings({"defaults": {"from": OAUTH_USER}})) as target:
        target.write({"to": "bob@example.test", "subject": "one", "text": "x"})
        time.sleep(2.2)
        target._pool.close()  # as after a dropped connection: the next message connects again
        target.write({"to": "bob@example.test", "subject": "two", "text": "x"})
    assert [m.subject for m in smtp_oauth.messages] == ["one", "two"]
    assert {m.auth_user for m in smtp_oauth.messages} == {OAUTH_USER}
    grants = idp.grant_types()
    assert grants[0] == "password" and grants.count("refresh_token") >= 2, grants


def test_it_gets_a_new_token_when_the_server_refuses_a_cached_one(idp, oauth_dovecot, smtp_oauth):
    config = _config(oauth_dovecot, smtp_oauth, idp)
    secrets = _secrets()
    access_token(config, secrets)
    idp.revoke_access_tokens()  # valid for another hour as far as the cache knows
    with open_imap(config, secrets) as client, client.translating("select"):
        client.select_folder("INBOX")
    with open_smtp(config, secrets):
        pass
    assert idp.grant_types() == ["client_credentials", "client_credentials"]


def test_it_says_the_imap_server_refused_the_token(idp, oauth_dovecot, smtp_oauth):
    # A token for alice presented for another mailbox: the identity provider issues it, Dovecot refuses it.
    config = _config(oauth_dovecot, smtp_oauth, idp, mailbox="carol@contoso.test")
    steps = _steps(config, _secrets())
    assert steps[0].ok
    login = next(s for s in steps if s.name == "IMAP login")
    assert not login.ok
    assert login.detail.startswith(f"OAuth token refused by the IMAP server localhost:{oauth_dovecot.tls_port}: ")
    assert "carol@contoso.test" in login.detail
    smtp_login = next(s for s in steps if s.name == "SMTP login")
    assert smtp_login.detail.startswith("OAuth token refused by the SMTP server") and "535" in smtp_login.detail


def test_it_shows_a_refused_client_secret_in_words(idp, oauth_dovecot, smtp_oauth):
    idp.switches.refuse_secret = True
    steps = _steps(_config(oauth_dovecot, smtp_oauth, idp), _secrets(client_secret="not-the-secret"))
    token = steps[0]
    assert (token.name, token.ok) == ("OAuth token", False)
    assert token.detail.startswith("the client secret is wrong")
    assert token.detail.endswith("(AADSTS7000215)")
    assert "not-the-secret" not in token.detail
    logins = [s for s in steps if s.name.endswith("login")]
    assert [s.detail for s in logins] == ["not tried: the OAuth token step failed"] * 2
    assert all(s.ok for s in steps if s.name.endswith(("resolve", "connect")))


@pytest.mark.parametrize(("switch", "grant", "code", "words"), [
    ("require_consent", "password", 65001, "has not been granted consent"),
    ("require_mfa", "password", 50076, "multi-factor authentication is required"),
])
def test_it_maps_aadsts_errors_of_the_password_grant(switch, grant, code, words, idp, oauth_dovecot, smtp_oauth):
    setattr(idp.switches, switch, True)
    with pytest.raises(ConnectorError) as caught:
        access_token(_config(oauth_dovecot, smtp_oauth, idp, grant), _secrets(grant))
    assert words in caught.value.message and caught.value.message.endswith(f"(AADSTS{code})")
    assert caught.value.permanent


def test_it_says_wrong_password_and_unknown_tenant(idp, oauth_dovecot, smtp_oauth):
    with pytest.raises(ConnectorError, match=r"wrong username or password \(AADSTS50126\)"):
        access_token(_config(oauth_dovecot, smtp_oauth, idp, "password"), _secrets("password", password="nope"))
    with pytest.raises(ConnectorError, match=r"the tenant was not found.*\(AADSTS90002\)"):
        access_token(_config(oauth_dovecot, smtp_oauth, idp, tenant_id="fabrikam.onmicrosoft.com"), _secrets())


def test_it_asks_for_a_sign_in_before_the_browser_grant_has_one(idp, oauth_dovecot, smtp_oauth):
    with pytest.raises(ConnectorError, match="nobody has signed in with Microsoft for this connection yet"):
        access_token(_config(oauth_dovecot, smtp_oauth, idp, "authorization_code"), _secrets())


def test_it_fails_fast_naming_the_token_step_when_no_identity_provider_answers(idp, oauth_dovecot, smtp_oauth):
    config = _config(oauth_dovecot, smtp_oauth, idp, authority=f"127.0.0.1:{free_port()}")
    started = time.monotonic()
    steps = _steps(config, _secrets())
    assert time.monotonic() - started < 5
    assert steps[0].name == "OAuth token" and not steps[0].ok
    assert "connection refused by the identity provider at 127.0.0.1:" in steps[0].detail


@pytest.fixture
def black_hole() -> Iterator[int]:
    """A port that accepts connections and then never says anything."""
    listener = socket.create_server(("127.0.0.1", 0))
    accepted: list[socket.socket] = []
    stop = threading.Event()

    def accept() -> None:
        listener.settimeout(0.1)
        while not stop.is_set():
            try:
                accepted.append(listener.accept()[0])
            except OSError:
                continue

    thread = threading.Thread(target=accept, daemon=True)
    thread.start()
    yield listener.getsockname()[1]
    stop.set()
    thread.join()
    for sock in [*accepted, listener]:
        sock.close()


def test_it_bounds_the_token_step_by_the_connection_timeouts(idp, oauth_dovecot, smtp_oauth, black_hole):
    settings = oauth_server_config(oauth_dovecot, smtp_oauth, idp, authority=f"127.0.0.1:{black_hole}")
    settings["timeouts"] = {"connect": 1, "read": 1}
    config = parse_email_config(settings)
    started = time.monotonic()
    with pytest.raises(ConnectorError) as caught:
        access_token(config, _secrets())
    elapsed = time.monotonic() - started
    assert elapsed < 3, elapsed  # connect + read = 2 s for the whole acquisition
    assert caught.value.message == f"OAuth token: timed out after 1 s waiting for the identity provider at " \
                                   f"127.0.0.1:{black_hole}"


def test_it_refuses_an_authority_on_the_deny_list_without_connecting(idp, oauth_dovecot, smtp_oauth, settings):
    # Even an authority the operator allowed is still checked against the outbound policy.
    settings.MAILWRIGHT_MICROSOFT_AUTHORITIES = [*settings.MAILWRIGHT_MICROSOFT_AUTHORITIES, "169.254.169.254"]
    config = _config(oauth_dovecot, smtp_oauth, idp, authority="169.254.169.254")
    with pytest.raises(ConnectorError, match="refused by the outbound policy"):
        access_token(config, _secrets())


def test_it_does_not_use_a_cache_made_for_other_settings(idp, oauth_dovecot, smtp_oauth):
    secrets = _secrets()
    access_token(_config(oauth_dovecot, smtp_oauth, idp), secrets)
    other = _config(oauth_dovecot, smtp_oauth, idp, client_id="0a1b2c3d-4e5f-4a6b-8c7d-000000000000")
    with pytest.raises(ConnectorError, match=r"no application with this client id .*\(AADSTS700016\)"):
        access_token(other, secrets)


def test_a_token_cached_for_one_server_is_never_used_for_another(idp, oauth_dovecot, smtp_oauth):
    config = _config(oauth_dovecot, smtp_oauth, idp)
    secrets = _secrets()
    first = access_token(config, secrets)
    repointed = dataclasses.replace(config, smtp=dataclasses.replace(config.smtp, port=config.smtp.port + 1))

    second = access_token(repointed, secrets)

    assert (first.reused, second.reused) == (False, False)
    assert second.value != first.value
