"""HTTP for MSAL: a requests-like client whose sockets come from the outbound guard (``connectors.net``),
HTTPS only, every request bounded by one ``Deadline``; see ``oauth.py`` for why."""

from __future__ import annotations

import http.client
import json
import logging
import socket
import ssl
import threading
import time
from collections.abc import Mapping
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any
from urllib.parse import urlencode, urlsplit

from connectors import net
from connectors.base import ConnectorError
from connectors.email import aadsts

if TYPE_CHECKING:
    from connectors.email.oauth import OAuthSettings

logger = logging.getLogger(__name__)

MAX_RESPONSE_BYTES = 1_048_576
DISCOVERY_TTL = 3600.0


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
