"""A local identity provider shaped like Microsoft Entra ID, for the OAuth tests.

``IdentityProvider`` serves HTTPS on 127.0.0.1 (a free port) with the rig's certificate, under
``/<tenant>/``, what MSAL and Dovecot need:

* ``GET  /<tenant>/v2.0/.well-known/openid-configuration`` — the OpenID configuration;
* ``POST /<tenant>/oauth2/v2.0/token`` — grants ``client_credentials``, ``password``,
  ``authorization_code`` (PKCE S256 checked) and ``refresh_token``, answering errors the way Entra
  does (``error``, ``error_description`` "AADSTS…: …", ``error_codes``);
* ``GET  /<tenant>/oauth2/v2.0/authorize`` — approves at once and redirects back with a code
  (the browser sign-in journey), or with ``error=consent_required``;
* ``GET  /common/userrealm/<user>`` — "Managed", so MSAL's password grant goes straight on;
* ``POST /introspect`` (``token=…``) — what Dovecot's oauth2 passdb asks: ``{"active": true,
  "username": …}`` for a live token.

Tokens are opaque random strings (the issued ones are listed, for the secret canary). Switches
make it refuse the client secret (AADSTS7000215), require consent (65001) or MFA (50076), expire
refresh tokens (70008), issue short-lived tokens, or revoke every access token early.

Clients trust it through ``SSL_CERT_FILE`` = the rig's CA (the product verifies the identity
provider against the system trust store); tests set it with ``monkeypatch``.
"""

from __future__ import annotations

import base64
import hashlib
import json
import secrets
import ssl
import threading
import time
import uuid
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any
from urllib.parse import parse_qs, urlencode, urlsplit

from .certs import TestCerts
from .dovecot import free_port

TENANT = "7d1c2b3a-0000-4000-8000-00000000abcd"
CLIENT_ID = "0a1b2c3d-4e5f-4a6b-8c7d-9e0f1a2b3c4d"
CLIENT_SECRET = "idp-client-secret-Qx7"


@dataclass
class _Issued:
    username: str  # the mailbox user a token gives access to (what introspection reports)
    expires_at: float
    active: bool = True


@dataclass
class Grant:
    """One token request the identity provider answered (for assertions)."""

    grant_type: str
    scope: str
    ok: bool


@dataclass
class _Switches:
    refuse_secret: bool = False
    require_consent: bool = False
    require_mfa: bool = False
    expire_refresh_tokens: bool = False
    token_lifetime: int = 3600


def _b64url(data: bytes) -> str:
    return base64.urlsafe_b64encode(data).rstrip(b"=").decode()


def _aadsts(error: str, code: int, text: str) -> dict[str, Any]:
    return {
        "error": error,
        "error_description": f"AADSTS{code}: {text} Trace ID: 00000000-0000-0000-0000-000000000000 "
                             "Correlation ID: 00000000-0000-0000-0000-000000000000",
        "error_codes": [code],
    }


@dataclass
class IdentityProvider:
    certs: TestCerts
    tenant: str = TENANT
    clients: dict[str, str] = field(default_factory=lambda: {CLIENT_ID: CLIENT_SECRET})
    users: dict[str, str] = field(default_factory=dict)  # password grant / browser sign-in: name -> password
    # Who a client-credentials token reaches (introspection answers it as the username).
    app_mailbox: str = "alice@contoso.test"
    host: str = "127.0.0.1"

    def __post_init__(self) -> None:
        self.port = free_port(self.host)
        self.switches = _Switches()
        self.grants: list[Grant] = []
        self._access: dict[str, _Issued] = {}
        self._refresh: dict[str, _Issued] = {}
        self._codes: dict[str, dict[str, str]] = {}
        self._lock = threading.Lock()
        self._server: ThreadingHTTPServer | None = None

    # ------------------------------------------------------------------ addresses

    @property
    def authority(self) -> str:
        """What a connection's ``authority`` setting holds for this provider."""
        return f"{self.host}:{self.port}"

    @property
    def introspection_url(self) -> str:
        return f"https://{self.host}:{self.port}/introspect"

    # ------------------------------------------------------------------ lifecycle

    def start(self) -> IdentityProvider:
        if self._server is not None:
            return self
        server = _TLSServer((self.host, self.port), _handler_for(self), self.certs.server_context())
        threading.Thread(target=server.serve_forever, name="identity provider", daemon=True).start()
        self._server = server
        return self

    def stop(self) -> None:
        server, self._server = self._server, None
        if server is not None:
            server.shutdown()
            server.server_close()

    def reset(self) -> None:
        """Switches off, records and tokens forgotten (between tests sharing one provider)."""
        with self._lock:
            self.switches = _Switches()
            self.grants.clear()
            self._access.clear()
            self._refresh.clear()
            self._codes.clear()

    # ------------------------------------------------------------------ switches and facts

    def revoke_access_tokens(self) -> None:
        """Every access token issued so far stops being valid (a token expiring early)."""
        with self._lock:
            for issued in self._access.values():
                issued.active = False

    def active_user(self, token: str) -> str | None:
        """The mailbox user a live access token reaches, else None (what IMAP and SMTP servers ask)."""
        with self._lock:
            issued = self._access.get(token)
            if issued is None or not issued.active or issued.expires_at < time.time():
                return None
            return issued.username

    def grant_types(self) -> list[str]:
        """The grant types of the successful token requests, in order."""
        with self._lock:
            return [g.grant_type for g in self.grants if g.ok]

    def issued_tokens(self) -> list[str]:
        """Every access and refresh token handed out (the secret canary looks for them)."""
        with self._lock:
            return [*self._access, *self._refresh]

    # ------------------------------------------------------------------ endpoints (server thread)

    def openid_configuration(self) -> dict[str, Any]:
        base = f"https://{self.host}:{self.port}/{self.tenant}"
        return {
            "issuer": f"{base}/v2.0",
            "authorization_endpoint": f"{base}/oauth2/v2.0/authorize",
            "token_endpoint": f"{base}/oauth2/v2.0/token",
            "jwks_uri": f"https://{self.host}:{self.port}/{self.tenant}/discovery/v2.0/keys",
            "response_types_supported": ["code", "id_token", "code id_token"],
            "subject_types_supported": ["pairwise"],
            "id_token_signing_alg_values_supported": ["RS256"],
            "scopes_supported": ["openid", "profile", "email", "offline_access"],
            "tenant_region_scope": "EU",
        }

    def token(self, form: dict[str, str]) -> tuple[int, dict[str, Any]]:
        grant_type = form.get("grant_type", "")
        status, body = self._token(grant_type, form)
        with self._lock:
            self.grants.append(Grant(grant_type, form.get("scope", ""), status == 200))
        return status, body

    def _token(self, grant_type: str, form: dict[str, str]) -> tuple[int, dict[str, Any]]:
        switches = self.switches
        client = form.get("client_id", "")
        if client not in self.clients:
            return 400, _aadsts("unauthorized_client", 700016,
                                f"Application with identifier '{client}' was not found in the directory.")
        if switches.refuse_secret or form.get("client_secret") != self.clients[client]:
            return 401, _aadsts("invalid_client", 7000215, "Invalid client secret provided.")
        scope = " ".join(s for s in form.get("scope", "").split() if s not in ("openid", "profile", "offline_access"))
        if grant_type == "client_credentials":
            if not scope.endswith("/.default"):
                return 400, _aadsts("invalid_scope", 1002012, "The provided value for scope is not valid.")
            return 200, self._issue(self.app_mailbox, scope, client, delegated=False)
        if switches.require_consent:
            return 400, _aadsts("invalid_grant", 65001, "The user or administrator has not consented to use "
                                                         f"the application with ID '{client}'.")
        if grant_type == "password":
            user = form.get("username", "")
            if user not in self.users:
                return 400, _aadsts("invalid_grant", 50034, "The user account does not exist in the directory.")
            if self.users[user] != form.get("password"):
                return 400, _aadsts("invalid_grant", 50126, "Error validating credentials due to invalid "
                                                            "username or password.")
            if switches.require_mfa:
                return 400, _aadsts("interaction_required", 50076, "Due to a configuration change made by your "
                                                                   "administrator, you must use multi-factor "
                                                                   "authentication.")
            return 200, self._issue(user, scope, client, delegated=True)
        if grant_type == "authorization_code":
            with self._lock:
                code = self._codes.pop(form.get("code", ""), None)
            verifier = form.get("code_verifier", "")
            challenge = _b64url(hashlib.sha256(verifier.encode()).digest())
            if code is None or code["redirect_uri"] != form.get("redirect_uri") or code["challenge"] != challenge:
                return 400, _aadsts("invalid_grant", 70000, "The provided authorization code is invalid or expired "
                                                            "(or the PKCE verifier does not match).")
            return 200, self._issue(code["user"], scope, client, delegated=True, nonce=code.get("nonce", ""))
        if grant_type == "refresh_token":
            with self._lock:
                issued = self._refresh.get(form.get("refresh_token", ""))
            if issued is None or switches.expire_refresh_tokens:
                return 400, _aadsts("invalid_grant", 70008, "The provided authorization code or refresh token has "
                                                            "expired due to inactivity.")
            return 200, self._issue(issued.username, scope, client, delegated=True)
        return 400, _aadsts("unsupported_grant_type", 70003, f"The grant type {grant_type!r} is not supported.")

    def authorize(self, query: dict[str, str]) -> str:
        """The Location to redirect the browser to: back to the client, approved or not."""
        back = query.get("redirect_uri", "")
        if self.switches.require_consent:
            answer = {"error": "consent_required", "state": query.get("state", ""),
                      "error_description": _aadsts("consent_required", 65001, "The user or administrator has not "
                                                   "consented to use the application.")["error_description"]}
            return f"{back}?{urlencode(answer)}"
        code = secrets.token_urlsafe(24)
        with self._lock:
            self._codes[code] = {
                "redirect_uri": back,
                "challenge": query.get("code_challenge", ""),
                "nonce": query.get("nonce", ""),
                "user": next(iter(self.users), self.app_mailbox),
            }
        return f"{back}?{urlencode({'code': code, 'state': query.get('state', ''), 'session_state': 'x'})}"

    def introspect(self, token: str) -> dict[str, Any]:
        user = self.active_user(token)
        return {"active": True, "username": user} if user else {"active": False}

    def _issue(self, user: str, scope: str, client: str, *, delegated: bool, nonce: str = "") -> dict[str, Any]:
        lifetime = self.switches.token_lifetime
        access = f"at-{secrets.token_urlsafe(24)}"
        with self._lock:
            self._access[access] = _Issued(user, time.time() + lifetime)
        body: dict[str, Any] = {"token_type": "Bearer", "expires_in": lifetime, "ext_expires_in": lifetime,
                                "access_token": access}
        if not delegated:
            return body
        refresh = f"rt-{secrets.token_urlsafe(32)}"
        with self._lock:
            self._refresh[refresh] = _Issued(user, time.time() + 90 * 86400)
        uid = str(uuid.uuid5(uuid.NAMESPACE_URL, user))
        now = int(time.time())
        claims = {"iss": f"https://{self.host}:{self.port}/{self.tenant}/v2.0", "sub": uid, "aud": client,
                  "tid": self.tenant, "oid": uid, "preferred_username": user, "name": user,
                  "iat": now, "nbf": now, "exp": now + 3600}
        if nonce:
            claims["nonce"] = nonce
        header = _b64url(json.dumps({"alg": "none", "typ": "JWT"}).encode())
        body.update({
            "scope": scope,
            "refresh_token": refresh,
            "id_token": f"{header}.{_b64url(json.dumps(claims).encode())}.",
            "client_info": _b64url(json.dumps({"uid": uid, "utid": self.tenant}).encode()),
        })
        return body

    def __enter__(self) -> IdentityProvider:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.stop()


def _handler_for(idp: IdentityProvider) -> type[BaseHTTPRequestHandler]:
    class Handler(BaseHTTPRequestHandler):
        protocol_version = "HTTP/1.1"

        def log_message(self, format: str, *args: Any) -> None:  # noqa: A002 - the base class's name
            """Quiet: request lines carry codes and tokens in their query strings."""

        def _send(self, status: int, body: dict[str, Any] | None = None, location: str = "") -> None:
            payload = json.dumps(body).encode() if body is not None else b""
            self.send_response(status)
            if location:
                self.send_header("Location", location)
            self.send_header("Content-Type", "application/json; charset=utf-8")
            self.send_header("Content-Length", str(len(payload)))
            self.end_headers()
            self.wfile.write(payload)

        def _form(self) -> dict[str, str]:
            length = int(self.headers.get("Content-Length") or 0)
            data = parse_qs(self.rfile.read(length).decode(), keep_blank_values=True)
            return {k: v[-1] for k, v in data.items()}

        def do_GET(self) -> None:  # noqa: N802 - http.server's name
            url = urlsplit(self.path)
            query = {k: v[-1] for k, v in parse_qs(url.query).items()}
            tenant_base = f"/{idp.tenant}"
            if url.path == f"{tenant_base}/v2.0/.well-known/openid-configuration":
                self._send(200, idp.openid_configuration())
            elif url.path.endswith("/v2.0/.well-known/openid-configuration"):
                self._send(400, _aadsts("invalid_tenant", 90002, f"Tenant '{url.path.split('/')[1]}' not found."))
            elif url.path == f"{tenant_base}/oauth2/v2.0/authorize":
                self._send(302, None, idp.authorize(query))
            elif url.path.startswith("/common/userrealm/"):
                self._send(200, {"ver": "1.0", "account_type": "Managed", "domain_name": "contoso.test"})
            elif url.path == "/introspect":
                self._send(200, idp.introspect(query.get("token", "")))
            else:
                self._send(404, {"error": "not_found"})

        def do_POST(self) -> None:  # noqa: N802 - http.server's name
            url = urlsplit(self.path)
            form = self._form()
            if url.path == f"/{idp.tenant}/oauth2/v2.0/token":
                self._send(*idp.token(form))
            elif url.path == "/introspect":
                self._send(200, idp.introspect(form.get("token", "")))
            else:
                self._send(404, {"error": "not_found"})

    return Handler


class _TLSServer(ThreadingHTTPServer):
    """TLS per connection, in the connection's own thread: a client that never finishes its
    handshake (a test of a stalled provider) must not block the accept loop."""

    daemon_threads = True

    def __init__(self, address: tuple[str, int], handler: type[BaseHTTPRequestHandler],
                 context: ssl.SSLContext) -> None:
        super().__init__(address, handler)
        self.context = context

    def finish_request(self, request: Any, client_address: Any) -> None:
        request.settimeout(10)
        try:
            tls = self.context.wrap_socket(request, server_side=True)
        except OSError:
            return
        try:
            self.RequestHandlerClass(tls, client_address, self)
        finally:
            tls.close()
