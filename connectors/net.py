"""The outbound-connection guard (SPEC §9): every socket a connector opens comes from here.

A connection's host is typed by a user, so without a guard the server could be pointed at
loopback, private, link-local or cloud-metadata addresses to probe what only it can reach. The
host is resolved once, every resolved address is checked against the deny-list (less the
networks MAILWRIGHT_ALLOW_NETWORKS opens), and the socket connects to those very addresses: a
second lookup could answer differently (DNS rebinding).
"""

from __future__ import annotations

import ipaddress
import re
import socket
import threading
import time
from collections.abc import Sequence
from typing import NamedTuple, Self

from connectors.base import ConnectorError
from connectors.conf import setting

_HOST_LABEL = re.compile(r"^(?!-)[A-Za-z0-9_-]{1,63}(?<!-)$")
IPNetwork = ipaddress.IPv4Network | ipaddress.IPv6Network
IPAddress = ipaddress.IPv4Address | ipaddress.IPv6Address

# What production refuses to connect to, each with the words a refusal uses. Specific entries come
# first so a refusal names the most telling one (the metadata address rather than its /10).
# settings.py starts from this list; MAILWRIGHT_ALLOW_NETWORKS opens named networks again.
DENY_REASONS: dict[str, str] = {
    "169.254.169.254/32": "a cloud metadata",
    "fd00:ec2::254/128": "a cloud metadata",
    "100.100.100.200/32": "a cloud metadata",
    "168.63.129.16/32": "a cloud platform (Azure wire server)",
    "127.0.0.0/8": "a loopback",
    "::1/128": "a loopback",
    "0.0.0.0/8": "a \"this network\"",
    "::/128": "the unspecified (reaches this machine)",
    "10.0.0.0/8": "a private (RFC 1918)",
    "172.16.0.0/12": "a private (RFC 1918)",
    "192.168.0.0/16": "a private (RFC 1918)",
    "100.64.0.0/10": "a carrier-grade NAT (shared)",
    "169.254.0.0/16": "a link-local",
    "fe80::/10": "a link-local",
    "fc00::/7": "a unique-local",
    "64:ff9b::/96": "a NAT64",
    "64:ff9b:1::/48": "a NAT64",
}
DEFAULT_DENY_NETWORKS: tuple[str, ...] = tuple(DENY_REASONS)
# The networks `make run` (DEBUG) and the test suite open, so local servers can be tried.
LOOPBACK_NETWORKS: tuple[str, ...] = ("127.0.0.0/8", "::1/128")


# What a timeout shrinks to once a deadline has passed: the next read fails at once.
_MIN_TIMEOUT = 0.01


class ResolveTimeout(TimeoutError):
    """The DNS lookup itself overran (told apart from a connect timeout in messages)."""


class Address(NamedTuple):
    """One checked address a host resolved to, ready for ``socket.connect``."""

    family: int
    sockaddr: tuple

    @property
    def ip(self) -> str:
        return str(self.sockaddr[0])

    def __str__(self) -> str:
        return self.ip


def denied_networks() -> list[IPNetwork]:
    """The deny-list: ``settings.MAILWRIGHT_DENY_NETWORKS`` when Django is configured, else the default."""
    cidrs = setting("MAILWRIGHT_DENY_NETWORKS", DEFAULT_DENY_NETWORKS)
    return [ipaddress.ip_network(cidr, strict=False) for cidr in cidrs]


def allowed_networks() -> list[IPNetwork]:
    """Networks opened despite the deny-list: ``settings.MAILWRIGHT_ALLOW_NETWORKS`` (none outside Django)."""
    return [ipaddress.ip_network(cidr, strict=False) for cidr in setting("MAILWRIGHT_ALLOW_NETWORKS", ())]


def denied_by(
    ip: str, networks: Sequence[IPNetwork] | None = None, allowed: Sequence[IPNetwork] | None = None
) -> IPNetwork | None:
    """The deny-listed network that contains ``ip`` and is not opened again, or None when allowed.

    An allowed network wins over a denied one that is as broad or broader: allowing 10.1.2.0/24
    opens it inside the denied 10.0.0.0/8, but allowing 169.254.0.0/16 does not open the metadata
    address 169.254.169.254/32, which has to be named itself.
    """
    address = ipaddress.ip_address(ip.split("%", 1)[0])  # drop an IPv6 zone id ("fe80::1%eth0")
    candidates: list[IPAddress] = [address]
    if isinstance(address, ipaddress.IPv6Address):
        candidates += _embedded_ipv4(address)
    denied = denied_networks() if networks is None else networks
    opened = allowed_networks() if allowed is None else allowed
    for candidate in candidates:
        for network in denied:
            if candidate.version != network.version or candidate not in network:
                continue
            if not any(
                candidate.version == allow.version and candidate in allow and allow.prefixlen >= network.prefixlen
                for allow in opened
            ):
                return network
    return None


def _embedded_ipv4(address: ipaddress.IPv6Address) -> list[ipaddress.IPv4Address]:
    """The IPv4 addresses an IPv6 address carries, each judged as well: ::ffff:10.0.0.5 reaches the
    IPv4 address on a dual-stack socket, and 6to4 (2002::/16), Teredo (2001::/32) and the old
    IPv4-compatible form (::a.b.c.d) lead to the IPv4 address written inside them."""
    embedded = [address.ipv4_mapped, address.sixtofour, *(address.teredo or ())]
    if int(address) >> 32 == 0 and int(address) > 1:  # ::a.b.c.d (:: and ::1 are denied themselves)
        embedded.append(ipaddress.IPv4Address(int(address)))
    return [ip for ip in embedded if ip is not None]


def refusal_reason(network: IPNetwork) -> str:
    """What kind of address ``network`` holds, in the words of a refusal ("a private (RFC 1918)")."""
    return DENY_REASONS.get(str(network), "a deny-listed")


def is_valid_hostname(value: str) -> bool:
    """A DNS name or an IP literal; no scheme, port or spaces."""
    if not value or len(value) > 253:
        return False
    if ":" in value:  # IPv6 literal
        try:
            ipaddress.IPv6Address(value.strip("[]"))
        except ValueError:
            return False
        return True
    return all(_HOST_LABEL.match(label) for label in value.rstrip(".").split("."))


def resolve(host: str, port: int, timeout: float) -> list[Address]:
    """Look ``host`` up (bounded by ``timeout``) and return its addresses, all checked.

    Raises the resolver's own ``socket.gaierror`` or ``ResolveTimeout`` (callers translate them), and
    a permanent ``ConnectorError`` when any address is deny-listed: a name that points even partly
    at a blocked network is not one to talk to.
    """
    addresses: list[Address] = []
    for family, _type, _proto, _canonname, sockaddr in _getaddrinfo(host, port, timeout):
        address = Address(family, tuple(sockaddr))
        if address not in addresses:
            addresses.append(address)
    if not addresses:
        raise socket.gaierror(socket.EAI_NONAME, f"no addresses for {host}")
    _refuse_denied(host, addresses)
    return addresses


def set_timeout(sock: socket.socket, seconds: float | None) -> None:
    """``sock.settimeout(seconds)`` unless it is set already: the call lets go of the GIL (an
    fcntl), and a run's thread then waits behind its sender threads to get it back."""
    if sock.gettimeout() != seconds:
        sock.settimeout(seconds)


def connect(
    host: str,
    port: int,
    timeout: float,
    deadline: Deadline | None = None,
    *,
    addresses: Sequence[Address] | None = None,
) -> socket.socket:
    """A TCP socket to ``host:port``, connected to a checked address and nothing else.

    ``addresses`` lets a caller that already called ``resolve`` (to show the addresses) reuse that
    answer instead of asking DNS again; they are checked again all the same. The whole call,
    lookup included, takes at most ``timeout`` seconds (and ends at ``deadline``, if given); when
    a host has several addresses the time left is shared between the ones not tried yet, so one
    black-holed address cannot eat the budget of the next. The socket is returned in blocking
    mode with ``timeout`` set; callers set their read timeout. Raises the last ``OSError``.
    """
    until = time.monotonic() + timeout
    if deadline is not None:
        until = min(until, deadline.at)
    if addresses is None:
        addresses = resolve(host, port, _left(until))
    else:
        _refuse_denied(host, addresses)
    last_error: OSError = TimeoutError(f"timed out connecting to {host}:{port}")
    for index, address in enumerate(addresses):
        share = _left(until) / (len(addresses) - index)
        sock = socket.socket(address.family, socket.SOCK_STREAM)
        try:
            sock.settimeout(share)
            sock.connect(address.sockaddr)
        except OSError as exc:
            sock.close()
            last_error = exc
            continue
        sock.settimeout(timeout)
        # Mail protocols are a dialogue of short commands and replies: Nagle's algorithm would hold
        # the tail of each write back until the peer's delayed acknowledgement (up to 40 ms).
        sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        if deadline is not None:
            deadline.watch(sock)
        return sock
    raise last_error


class Deadline:
    """An overall time limit for a series of socket operations.

    Socket timeouts bound each read, not a server that trickles one byte just before each one
    expires. ``watch``-ed sockets are shut down when the time is up, which wakes any blocked read,
    so work under a ``Deadline`` really ends on time. Use it as a context manager.
    """

    def __init__(self, seconds: float) -> None:
        self.seconds = seconds
        self.at = time.monotonic() + seconds
        self._sockets: list[socket.socket] = []
        self._lock = threading.Lock()
        self._timer: threading.Timer | None = None

    def __enter__(self) -> Self:
        self._timer = threading.Timer(max(self.remaining(), 0), self._expire)
        self._timer.daemon = True
        self._timer.start()
        return self

    def __exit__(self, *exc_info: object) -> None:
        if self._timer is not None:
            self._timer.cancel()
        with self._lock:
            self._sockets.clear()

    @property
    def expired(self) -> bool:
        return self.remaining() <= 0

    def remaining(self) -> float:
        return self.at - time.monotonic()

    def cap(self, timeout: float) -> float:
        """``timeout`` shortened to the time left (never zero: a zero timeout means non-blocking)."""
        return max(min(timeout, self.remaining()), _MIN_TIMEOUT)

    def watch(self, sock: socket.socket) -> None:
        """Shut ``sock`` down when the deadline passes (also a TLS socket wrapped around an earlier one)."""
        with self._lock:
            self._sockets.append(sock)

    def _expire(self) -> None:
        with self._lock:
            for sock in self._sockets:
                try:
                    # The plain socket method, even on an SSLSocket: no TLS close_notify from
                    # this thread, just wake the reader in the other one.
                    socket.socket.shutdown(sock, socket.SHUT_RDWR)
                except OSError:
                    pass  # already closed, or wrapped by a TLS socket that is watched too


def _left(until: float) -> float:
    left = until - time.monotonic()
    if left <= 0:
        raise TimeoutError("timed out")
    return left


def _refuse_denied(host: str, addresses: Sequence[Address]) -> None:
    """Refuse before any socket exists. The message names the kind of network, not the address:
    a user probing internal names learns no more than that the policy refused them."""
    networks, opened = denied_networks(), allowed_networks()
    for address in addresses:
        network = denied_by(address.ip, networks, opened)
        if network is not None:
            raise ConnectorError(
                f"refused by the outbound policy, no connection attempted: {host} resolves to "
                f"{refusal_reason(network)} address ({network} is on the outbound deny-list; "
                "an administrator can open a network with MAILWRIGHT_ALLOW_NETWORKS)",
                permanent=True,
            )


def _getaddrinfo(host: str, port: int, timeout: float) -> list[tuple]:
    """``socket.getaddrinfo`` with a time limit (the C resolver has none of its own).

    The lookup runs in a daemon thread; when it overruns we stop waiting and leave the thread to
    finish in the background, which costs one idle thread rather than a hung request.
    """
    outcome: dict[str, object] = {}

    def lookup() -> None:
        try:
            outcome["infos"] = socket.getaddrinfo(host, port, type=socket.SOCK_STREAM)
        except Exception as exc:  # noqa: BLE001 - handed to the waiting thread, which raises it
            outcome["error"] = exc

    thread = threading.Thread(target=lookup, name=f"resolve {host}", daemon=True)
    thread.start()
    thread.join(timeout)
    if thread.is_alive():
        raise ResolveTimeout(f"looking up {host} took longer than {timeout:g} s")
    if "error" in outcome:
        raise outcome["error"]  # type: ignore[misc]
    return list(outcome["infos"])  # type: ignore[call-overload]
