"""Microsoft 365 OAuth2 tokens for Email connections: MSAL behind our outbound guard.

Tokens come from MSAL's ``ConfidentialClientApplication`` for three grants: client credentials
(app-only), resource-owner password, and authorization code (the browser sign-in, PKCE and
state handled by MSAL). The IMAP and SMTP logins turn a token into SASL XOAUTH2 (``auth.py``).

Network. MSAL speaks HTTP through ``GuardedHTTP``, a requests-like client whose sockets come
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
import http.client
import json
import logging
import socket
import ssl
import threading
import time
import warnings
from collections.abc import Iterator, Mapping
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any
from urllib.parse import urlencode, urlsplit

import msal

from connectors import net
from connectors.base import ConnectorError, TokenStore
from connectors.email import aadsts

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
MAX_RESPONSE_BYTES = 1_048_576
DISCOVERY_TTL = 3600.0
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
        """Tokens cached for other settings (tenant, client, grant, user) are not these settings' tokens."""
        user = self.username.lower() if self.grant == "password" else ""
        parts = [self.grant, self.authority.lower(), self.tenant_id.lower(), self.client_id.lower(), user]
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


# HTTP for MSAL -----------------------------------------------------------------------------------


class HTTPStatusError(Exception):
    def __init__(self, status_code: int) -> None:
        super().__init__(f"HTTP {status_code}")
        self.status_code = status_code


@dataclass(frozen=True)
class Response:
    """What MSAL reads of an HTTP response (``requests.Response``'s shape)."""

    status_code: int
    text: str
    headers: dict[str, str]

    def raise_for_status(self) -> None:
        if self.status_code >= 400:
            raise HTTPStatusError(self.status_code)


_discovery_cache: dict[str, tuple[float, Response]] = {}
_discovery_lock = threading.Lock()


class GuardedHTTP:
    """The ``http_client`` MSAL gets: HTTPS only, through the outbound guard, bounded by one ``Deadline``.

    MSAL builds one URL from the authority's bare host name (the user-realm lookup of the password
    grant), dropping a configured port; requests for the authority host therefore go to its port.
    Failures are raised as ``ConnectorError`` (MSAL lets those through untouched).
    """

    def __init__(self, settings: OAuthSettings, connect_timeout: float, read_timeout: float,
                 deadline: net.Deadline) -> None:
        self.settings = settings
        self.connect_timeout = connect_timeout
        self.read_timeout = read_timeout
        self.deadline = deadline
        self.last: Response | None = None
        self._context = ssl.create_default_context()

    def get(self, url: str, params: Mapping[str, Any] | None = None, headers: Mapping[str, Any] | None = None,
            **kwargs: Any) -> Response:
        return self._request("GET", url, params, None, headers)

    def post(self, url: str, params: Mapping[str, Any] | None = None, data: Any = None,
             headers: Mapping[str, Any] | None = None, **kwargs: Any) -> Response:
        return self._request("POST", url, params, data, headers)

    def close(self) -> None:
        """Nothing is kept open between requests."""

    def discovery_error(self, settings: OAuthSettings) -> ConnectorError:
        """Why MSAL could not use the OpenID configuration (an unknown tenant, most of the time)."""
        body = _json(self.last.text) if self.last is not None else {}
        if body.get("error"):
            return aadsts.explain(body)
        status = f" (HTTP {self.last.status_code})" if self.last is not None else ""
        return ConnectorError(
            f"OAuth token: the identity provider at {settings.authority} has no OpenID configuration for tenant "
            f"{settings.tenant_id}{status}: check the tenant id and the authority host",
            permanent=True,
        )

    def _request(self, method: str, url: str, params: Mapping[str, Any] | None, data: Any,
                 headers: Mapping[str, Any] | None) -> Response:
        parts = urlsplit(url)
        if parts.scheme != "https" or not parts.hostname:
            raise ConnectorError(f"OAuth token: refusing to send a token request to {parts.scheme}://… (HTTPS only)",
                                 permanent=True)
        host = parts.hostname
        port = parts.port or (self.settings.port if host == self.settings.host.lower() else 443)
        query = "&".join(q for q in (parts.query, urlencode(params or {}, doseq=True)) if q)
        target = (parts.path or "/") + (f"?{query}" if query else "")
        cacheable = method == "GET" and parts.path.endswith("/.well-known/openid-configuration")
        key = f"{host}:{port}{target}"
        if cacheable:
            with _discovery_lock:
                hit = _discovery_cache.get(key)
            if hit is not None and hit[0] > time.monotonic():
                return hit[1]
        body, sent_headers = _body(data, headers)
        response = self._exchange(method, host, port, target, body, sent_headers)
        self.last = response
        if cacheable and response.status_code == 200:
            with _discovery_lock:
                _discovery_cache[key] = (time.monotonic() + DISCOVERY_TTL, response)
        return response

    def _exchange(self, method: str, host: str, port: int, target: str, body: bytes | None,
                  headers: dict[str, str]) -> Response:
        where = f"[{host}]:{port}" if ":" in host else f"{host}:{port}"
        connection = _GuardedHTTPSConnection(host, port, self)
        try:
            connection.request(method, target, body=body, headers=headers)
            reply = connection.getresponse()
            raw = reply.read(MAX_RESPONSE_BYTES + 1)
        except ConnectorError as exc:  # the deny-list
            raise ConnectorError(f"OAuth token: {exc.message}", permanent=exc.permanent) from None
        except Exception as exc:  # noqa: BLE001 - every transport failure becomes words
            waited = self.read_timeout if connection.sock is not None else self.connect_timeout
            raise self._unreachable(exc, host, where, waited) from None
        finally:
            connection.close()
        if len(raw) > MAX_RESPONSE_BYTES:
            raise ConnectorError(f"OAuth token: the answer of the identity provider at {where} is larger than 1 MB")
        return Response(reply.status, raw.decode("utf-8", "replace"), {k.lower(): v for k, v in reply.getheaders()})

    def _unreachable(self, exc: BaseException, host: str, where: str, waited: float) -> ConnectorError:
        if self.deadline.expired:
            return ConnectorError(
                f"OAuth token: the identity provider at {where} did not answer within {self.deadline.seconds:g} s "
                "(the time limit of a token request: connect + read timeout)"
            )
        if isinstance(exc, TimeoutError):
            return ConnectorError(f"OAuth token: timed out after {waited:g} s waiting for the identity provider "
                                  f"at {where}")
        if isinstance(exc, net.ResolveTimeout):
            return ConnectorError(f"OAuth token: timed out looking up {host}")
        if isinstance(exc, socket.gaierror):
            permanent = exc.errno != socket.EAI_AGAIN
            return ConnectorError(
                f"OAuth token: the authority host {host} was not found (check the authority)", permanent=permanent
            )
        if isinstance(exc, ssl.SSLCertVerificationError):
            why = exc.verify_message or exc.reason or "verification failed"
            return ConnectorError(
                f"OAuth token: the certificate of the identity provider at {where} is not trusted ({why}); "
                "it is checked against the system's certificate authorities",
                permanent=True,
            )
        if isinstance(exc, ssl.SSLError):
            return ConnectorError(f"OAuth token: TLS with the identity provider at {where} failed: {exc.reason}")
        if isinstance(exc, ConnectionRefusedError):
            return ConnectorError(
                f"OAuth token: connection refused by the identity provider at {where} "
                "(is the authority host right? is the service up?)"
            )
        if isinstance(exc, OSError) and exc.strerror:
            return ConnectorError(f"OAuth token: cannot reach the identity provider at {where}: {exc.strerror}")
        if isinstance(exc, (http.client.HTTPException, OSError)):
            return ConnectorError(f"OAuth token: the identity provider at {where} closed the connection")
        logger.warning("token request to %s failed: %s", where, type(exc).__name__)
        return ConnectorError(f"OAuth token: the request to the identity provider at {where} failed "
                              f"({type(exc).__name__})")


class _GuardedHTTPSConnection(http.client.HTTPSConnection):
    """``http.client``'s HTTPS connection with its socket from ``net.connect`` and reads capped by the deadline."""

    def __init__(self, host: str, port: int, client: GuardedHTTP) -> None:
        super().__init__(host, port, timeout=client.connect_timeout, context=client._context)
        self._client = client

    def connect(self) -> None:
        client = self._client
        sock = net.connect(self.host, self.port, client.connect_timeout, client.deadline)
        self.sock = sock  # connected: from here on, waiting is reading
        try:
            sock.settimeout(client.deadline.cap(client.read_timeout))
            self.sock = self._context.wrap_socket(sock, server_hostname=self.host)
        except BaseException:
            sock.close()
            raise
        client.deadline.watch(self.sock)


def _body(data: Any, headers: Mapping[str, Any] | None) -> tuple[bytes | None, dict[str, str]]:
    sent = {k: str(v) for k, v in (headers or {}).items() if v is not None}
    if data is None:
        return None, sent
    if isinstance(data, Mapping):
        sent.setdefault("Content-Type", "application/x-www-form-urlencoded")
        return urlencode({k: v for k, v in data.items() if v is not None}, doseq=True).encode(), sent
    return (data if isinstance(data, bytes) else str(data).encode()), sent


def _json(text: str) -> dict[str, Any]:
    try:
        value = json.loads(text)
    except ValueError:
        return {}
    return value if isinstance(value, dict) else {}
