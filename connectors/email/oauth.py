"""Microsoft 365 OAuth2 tokens for Email connections: MSAL behind our outbound guard.

Tokens come from MSAL's ``ConfidentialClientApplication`` for three grants: client credentials
(app-only), resource-owner password, and authorization code (the browser sign-in, PKCE and
state handled by MSAL). The IMAP and SMTP logins turn a token into SASL XOAUTH2 (``auth.py``).

Network. MSAL speaks HTTP through ``oauth_http.GuardedHTTP``, a requests-like client whose sockets come
from ``connectors.net``: the authority host is resolved once, checked against the deny-list,
each connect is bounded by the connection's connect timeout and each read by its read timeout,
and one ``Deadline`` of connect + read seconds bounds a whole token acquisition (discovery and
token request together). The identity provider's certificate is checked against the system
trust store (Python's default, which honours ``SSL_CERT_FILE``/``SSL_CERT_DIR``): a connection's
custom CA is for its own IMAP and SMTP servers, not for Microsoft's sign-in service.

Caching and refresh. MSAL's token cache is serialised into the connection's ``TokenStore``
(the designer encrypts it per connection), tagged with a fingerprint of the settings it was
made for, so changing the tenant, client or grant starts afresh. Every IMAP or SMTP login asks
for a token: MSAL returns the cached access token while it has more than five minutes left and
otherwise gets a new one (client credentials again, or the refresh token for the delegated
grants; the password grant falls back to the password). The engine logs in once per run per
server and again after a dropped connection, so a long run gets a fresh token whenever it
needs one. The OpenID configuration is cached per process for an hour so that a cached token
does not depend on the identity provider answering.

Tokens only ever live in ``AccessToken.value``, in the SASL string and in the store's text;
no message, log line or ``repr`` shows them.
"""

from __future__ import annotations

import contextlib
import hashlib
import json
import logging
import warnings
from collections.abc import Iterator, Mapping
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

import msal

from connectors import net
from connectors.base import ConnectorError, TokenStore
from connectors.email import aadsts
from connectors.email.oauth_http import GuardedHTTP

if TYPE_CHECKING:  # config.py imports auth.py, which imports this module
    from connectors.email.config import EmailConfig

logger = logging.getLogger(__name__)

GRANTS: tuple[tuple[str, str], ...] = (
    ("client_credentials", "Client credentials (app-only)"),
    ("password", "Username and password (resource-owner password)"),
    ("authorization_code", "Sign in with Microsoft in the browser"),
)
DEFAULT_AUTHORITY = "login.microsoftonline.com"
# The Exchange Online host whose tokens each Microsoft cloud issues (the scopes' resource).
# Another authority (a test identity provider, a proxy) gets the IMAP host, else the SMTP host.
RESOURCES = {
    "login.microsoftonline.com": "outlook.office365.com",
    "login.microsoft.com": "outlook.office365.com",
    "login.windows.net": "outlook.office365.com",
    "login.microsoftonline.us": "outlook.office365.us",
    "login.partner.microsoftonline.cn": "partner.outlook.cn",
    "login.chinacloudapi.cn": "partner.outlook.cn",
}
_CACHE_FORMAT = 1


def split_authority(value: str) -> tuple[str, int]:
    """``"login.microsoftonline.com"`` → (host, 443); ``"127.0.0.1:8443"`` and ``"[::1]:8443"`` keep their port.

    Raises ``ValueError`` for a port that is not a number in 1-65535.
    """
    value = value.strip()
    if value.startswith("["):
        host, _, rest = value[1:].partition("]")
        port_text = rest[1:] if rest.startswith(":") else ""
    elif value.count(":") == 1:
        host, port_text = value.split(":")
    else:
        host, port_text = value, ""
    port = int(port_text) if port_text else 443
    if not 1 <= port <= 65535:
        raise ValueError(port)
    return host, port


@dataclass(frozen=True)
class OAuthSettings:
    """What the token requests of one Email connection need, derived from its ``auth`` settings."""

    grant: str
    tenant_id: str
    client_id: str
    mailbox: str
    authority: str
    username: str
    resource: str
    imap: bool
    smtp: bool
    # Where the tokens are sent ("host:port" of IMAP and SMTP): a cache is used only for these servers.
    servers: tuple[str, ...] = ()

    @classmethod
    def of(cls, config: EmailConfig) -> OAuthSettings:
        auth = config.auth
        authority = auth.get("authority") or DEFAULT_AUTHORITY
        server = config.imap or config.smtp
        fallback = server.host if server is not None else RESOURCES[DEFAULT_AUTHORITY]
        return cls(
            grant=auth.get("grant") or "client_credentials",
            tenant_id=auth.get("tenant_id", ""),
            client_id=auth.get("client_id", ""),
            mailbox=auth.get("mailbox", ""),
            authority=authority,
            username=auth.get("username", ""),
            resource=RESOURCES.get(split_authority(authority)[0].lower(), fallback),
            imap=config.imap is not None,
            smtp=config.smtp is not None,
            servers=tuple(f"{s.host.lower().rstrip('.')}:{s.port}" for s in (config.imap, config.smtp) if s),
        )

    @property
    def host(self) -> str:
        return split_authority(self.authority)[0]

    @property
    def port(self) -> int:
        return split_authority(self.authority)[1]

    @property
    def authority_url(self) -> str:
        return f"https://{self.authority}/{self.tenant_id}"

    @property
    def scopes(self) -> list[str]:
        """App-only: ``.default`` (the permissions granted to the app); delegated: only what this connection uses.

        MSAL adds ``offline_access`` (the refresh token), ``openid`` and ``profile`` itself.
        """
        base = f"https://{self.resource}"
        if self.grant == "client_credentials":
            return [f"{base}/.default"]
        wanted = [f"{base}/IMAP.AccessAsUser.All"] if self.imap else []
        return wanted + ([f"{base}/SMTP.Send"] if self.smtp else [])

    @property
    def fingerprint(self) -> str:
        """Tokens cached for other settings (tenant, client, grant, user) or other servers are not these
        settings' tokens: a repointed IMAP or SMTP host never receives a token cached for the old one."""
        user = self.username.lower() if self.grant == "password" else ""
        parts = [self.grant, self.authority.lower(), self.tenant_id.lower(), self.client_id.lower(), user,
                 *self.servers]
        return hashlib.sha256(json.dumps(parts).encode()).hexdigest()


@dataclass(frozen=True)
class AccessToken:
    value: str = field(repr=False)
    expires_in: int
    reused: bool  # from the cache rather than newly issued
    authority: str

    def describe(self, mailbox: str) -> str:
        """The Test line: "token for x@contoso.com from login.microsoftonline.com (newly issued), expires in 59 min"."""
        origin = "reused from the encrypted cache" if self.reused else "newly issued"
        minutes = max(self.expires_in, 0) // 60
        expiry = f"{minutes} min" if minutes else f"{max(self.expires_in, 0)} s"
        return f"token for {mailbox} from {self.authority} ({origin}), expires in {expiry}"


def xoauth2(user: str, token: str) -> str:
    """The SASL XOAUTH2 initial client response (before base64, which the protocol libraries add)."""
    return f"user={user}\x01auth=Bearer {token}\x01\x01"


# Tokens ------------------------------------------------------------------------------------------


def access_token(
    config: EmailConfig, secrets: Mapping[str, str], *, deadline: net.Deadline | None = None
) -> AccessToken:
    """A token for the connection's mailbox, from the cache while valid, else from the identity provider.

    Raises a ``ConnectorError`` starting with "OAuth token:" that says what to fix.
    """
    settings = OAuthSettings.of(config)
    with _application(config, secrets, deadline) as (app, cached):
        result = _acquire(app, cached, settings, secrets)
    if "access_token" not in result:
        raise aadsts.explain(result)
    return AccessToken(
        value=result["access_token"],
        expires_in=int(result.get("expires_in") or 0),
        reused=result.get("token_source") == "cache",
        authority=settings.authority,
    )


def forget_access_token(config: EmailConfig, secrets: Mapping[str, str]) -> None:
    """Drop the cached access tokens (a server refused one): the next login gets a new one. No network."""
    settings = OAuthSettings.of(config)
    store = _store(secrets)
    cached = _CachedTokens.load(store, settings.fingerprint)
    for token in list(cached.cache.search(msal.TokenCache.CredentialType.ACCESS_TOKEN)):
        cached.cache.remove_at(token)
    cached.save(store)


def signed_in_as(config: EmailConfig, secrets: Mapping[str, str]) -> str:
    """Who signed in with Microsoft for this connection ("" if nobody yet, or for other settings). No network."""
    settings = OAuthSettings.of(config)
    return _CachedTokens.load(_store(secrets), settings.fingerprint).username


def begin_sign_in(config: EmailConfig, secrets: Mapping[str, str], redirect_uri: str) -> dict[str, Any]:
    """Start the browser sign-in: MSAL's flow (state, PKCE verifier, nonce and the ``auth_uri`` to send the user to).

    The caller keeps the flow server-side (the session) until the identity provider redirects back.
    """
    settings = OAuthSettings.of(config)
    with _application(config, secrets, None) as (app, _cached), warnings.catch_warnings():
        # The code comes back in the query, not by form_post as MSAL recommends: a cross-site POST
        # would not carry the (SameSite=Lax) session cookie that holds this flow. PKCE protects the code.
        warnings.filterwarnings("ignore", message="response_mode='form_post' is recommended")
        return app.initiate_auth_code_flow(settings.scopes, redirect_uri=redirect_uri, login_hint=settings.mailbox,
                                           response_mode="query")


def finish_sign_in(
    config: EmailConfig, secrets: Mapping[str, str], flow: Mapping[str, Any], response: Mapping[str, str]
) -> str:
    """Redeem the code of the redirect back (MSAL checks state and PKCE); store the tokens; return who signed in."""
    settings = OAuthSettings.of(config)
    with _application(config, secrets, None) as (app, cached):
        try:
            result = app.acquire_token_by_auth_code_flow(dict(flow), dict(response), scopes=settings.scopes)
        except ValueError:  # MSAL's state check
            raise ConnectorError(
                "Sign-in: the answer does not belong to this sign-in (state mismatch); start again", permanent=True
            ) from None
        if "access_token" not in result:
            raise aadsts.explain(result, prefix="Sign-in")
        claims = result.get("id_token_claims") or {}
        username = str(claims.get("preferred_username") or claims.get("upn") or claims.get("email") or "")
        account = next((a for a in app.get_accounts() if username and a.get("username") == username), None)
        cached.account = (account or {}).get("home_account_id", "")
        cached.username = username or "an unnamed account"
        cached.changed = True
    return cached.username


def _acquire(
    app: msal.ConfidentialClientApplication, cached: _CachedTokens, settings: OAuthSettings, secrets: Mapping[str, str]
) -> dict[str, Any]:
    scopes = settings.scopes
    if settings.grant == "client_credentials":
        return app.acquire_token_for_client(scopes=scopes)  # looks in the cache first
    accounts = app.get_accounts()
    if settings.grant == "password":
        account = next((a for a in accounts if a.get("username", "").lower() == settings.username.lower()), None)
    else:  # the account that signed in (the only one, unless its id token named nobody)
        account = next((a for a in accounts if a.get("home_account_id") == cached.account),
                       accounts[0] if accounts and not cached.account else None)
    result = app.acquire_token_silent_with_error(scopes, account) if account else None
    if result and "access_token" in result:
        return result
    if settings.grant == "password":
        # No usable refresh token (first use, or it expired): the stored password gets a new grant.
        return app.acquire_token_by_username_password(settings.username, secrets.get("password", ""), scopes)
    if result:
        return result  # e.g. AADSTS70008: the sign-in expired
    raise ConnectorError(
        "OAuth token: nobody has signed in with Microsoft for this connection yet: "
        "press “Sign in with Microsoft” on the connection page",
        permanent=True,
    )


@contextlib.contextmanager
def _application(
    config: EmailConfig, secrets: Mapping[str, str], deadline: net.Deadline | None
) -> Iterator[tuple[msal.ConfidentialClientApplication, _CachedTokens]]:
    """MSAL's application for this connection, with its cache loaded; the cache is saved back if it changed."""
    settings = OAuthSettings.of(config)
    store = _store(secrets)
    cached = _CachedTokens.load(store, settings.fingerprint)
    budget = config.connect_timeout + config.read_timeout
    if deadline is not None:
        budget = min(budget, max(deadline.remaining(), 0.0))
    with net.Deadline(budget) as own:
        http = GuardedHTTP(settings, config.connect_timeout, config.read_timeout, own)
        try:
            app = msal.ConfidentialClientApplication(
                settings.client_id,
                client_credential=secrets.get("client_secret", ""),
                authority=settings.authority_url,
                # Instance discovery asks login.microsoftonline.com about the authority: the configured
                # host is trusted as given, which is what lets sovereign clouds and tests work.
                instance_discovery=False,
                token_cache=cached.cache,
                http_client=http,
                app_name="Mailwright",
            )
        except ConnectorError:
            raise
        except (ValueError, KeyError, TypeError):  # MSAL's "Unable to get authority configuration"
            raise http.discovery_error(settings) from None
        try:
            yield app, cached
        except (ConnectorError, GeneratorExit):
            raise
        except Exception as exc:  # noqa: BLE001 - an answer MSAL could not read must still read as words
            logger.warning("MSAL failed on an answer from %s: %s", settings.authority, type(exc).__name__)
            raise ConnectorError(
                f"OAuth token: the identity provider at {settings.authority} gave an answer that could not be read "
                f"({type(exc).__name__})"
            ) from None
        finally:
            if cached.cache.has_state_changed or cached.changed:
                cached.save(store)


def _store(secrets: Mapping[str, str]) -> TokenStore | None:
    return getattr(secrets, "token_store", None)


class _CachedTokens:
    """MSAL's serialised cache plus who signed in, as one JSON text in the connection's ``TokenStore``."""

    def __init__(self, fingerprint: str) -> None:
        self.fingerprint = fingerprint
        self.cache = msal.SerializableTokenCache()
        self.account = ""  # MSAL's home_account_id of the browser sign-in
        self.username = ""
        self.changed = False

    @classmethod
    def load(cls, store: TokenStore | None, fingerprint: str) -> _CachedTokens:
        cached = cls(fingerprint)
        text = store.load() if store is not None else ""
        try:
            data = json.loads(text) if text else {}
        except ValueError:
            data = {}
        if isinstance(data, dict) and data.get("fingerprint") == fingerprint:
            with contextlib.suppress(ValueError, TypeError):
                cached.cache.deserialize(data.get("msal") or None)
            cached.account = str(data.get("account") or "")
            cached.username = str(data.get("username") or "")
        return cached

    def save(self, store: TokenStore | None) -> None:
        if store is None:
            return
        store.save(json.dumps({
            "format": _CACHE_FORMAT,
            "fingerprint": self.fingerprint,
            "account": self.account,
            "username": self.username,
            "msal": self.cache.serialize(),
        }))
