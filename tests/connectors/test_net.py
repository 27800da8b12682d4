"""The outbound-connection guard: deny-list, one DNS answer, deadlines. No network is touched."""

from __future__ import annotations

import ipaddress
import socket
import threading
import time
from collections.abc import Iterator
from types import SimpleNamespace

import pytest

from connectors import net
from connectors.base import ConnectorError

DEFAULT = [ipaddress.ip_network(cidr) for cidr in net.DEFAULT_DENY_NETWORKS]


def _info(ip: str, port: int = 993) -> tuple:
    if ":" in ip:
        return (socket.AF_INET6, socket.SOCK_STREAM, 6, "", (ip, port, 0, 0))
    return (socket.AF_INET, socket.SOCK_STREAM, 6, "", (ip, port))


class FakeResolver:
    """Stands in for socket.getaddrinfo: answers from a list of answers, one per call."""

    def __init__(self, *answers: list[str]) -> None:
        self.answers = list(answers)
        self.calls: list[str] = []

    def __call__(self, host: str, port: int, *args: object, **kwargs: object) -> list[tuple]:
        self.calls.append(host)
        answer = self.answers[min(len(self.calls), len(self.answers)) - 1]
        return [_info(ip, port) for ip in answer]


class FakeSocket:
    """Records where it was asked to connect; refuses the addresses in ``refuse``."""

    connected: list[tuple] = []
    refuse: set[str] = set()

    def __init__(self, family: int, kind: int) -> None:
        self.family = family
        self.timeout: float | None = None
        self.options: dict[tuple[int, int], int] = {}
        self.closed = False

    def settimeout(self, value: float | None) -> None:
        self.timeout = value

    def connect(self, sockaddr: tuple) -> None:
        if sockaddr[0] in self.refuse:
            raise ConnectionRefusedError(111, "Connection refused")
        FakeSocket.connected.append(sockaddr)

    def setsockopt(self, level: int, option: int, value: int) -> None:
        self.options[(level, option)] = value

    def close(self) -> None:
        self.closed = True


@pytest.fixture(autouse=True)
def default_deny_list(monkeypatch: pytest.MonkeyPatch) -> None:
    # The default list, whether or not Django settings are loaded in this run.
    monkeypatch.setattr("django.conf.settings", SimpleNamespace(configured=False))


def _allow(monkeypatch: pytest.MonkeyPatch, *cidrs: str) -> None:
    monkeypatch.setattr("django.conf.settings", SimpleNamespace(configured=True, MAILWRIGHT_ALLOW_NETWORKS=list(cidrs)))


@pytest.fixture
def fake_sockets(monkeypatch: pytest.MonkeyPatch) -> Iterator[type[FakeSocket]]:
    FakeSocket.connected = []
    FakeSocket.refuse = set()
    monkeypatch.setattr(net.socket, "socket", FakeSocket)
    yield FakeSocket


@pytest.mark.parametrize(
    "ip",
    [
        "169.254.169.254", "169.254.0.1", "fe80::1", "fe80::1%eth0", "100.100.100.200", "fd00:ec2::254",
        "168.63.129.16", "0.0.0.0", "::", "127.0.0.1", "127.8.9.10", "::1", "10.0.0.5", "172.16.0.1",
        "192.168.1.10", "100.64.0.1", "fc00::1", "fd12:3456::1", "64:ff9b::a00:1", "64:ff9b:1::1",
        "::ffff:127.0.0.1", "::ffff:10.0.0.5", "::ffff:169.254.169.254", "::ffff:0.0.0.0",
    ],
)
def test_it_denies_internal_and_metadata_addresses_by_default(ip: str) -> None:
    assert net.denied_by(ip) is not None


@pytest.mark.parametrize(
    "ip", ["203.0.113.7", "8.8.8.8", "172.32.0.1", "100.128.0.1", "2001:db8::1", "::ffff:203.0.113.7"]
)
def test_it_allows_public_addresses(ip: str) -> None:
    assert net.denied_by(ip) is None


def test_it_checks_an_ipv4_mapped_ipv6_address_as_ipv4() -> None:
    assert net.denied_by("::ffff:169.254.169.254") == ipaddress.ip_network("169.254.169.254/32")
    assert net.denied_by("::ffff:127.0.0.1") == ipaddress.ip_network("127.0.0.0/8")


@pytest.mark.parametrize(("ip", "network"), [
    ("2002:a9fe:a9fe::1", "169.254.169.254/32"),  # 6to4 of the metadata address
    ("2002:7f00:1::", "127.0.0.0/8"),  # 6to4 of loopback
    ("2001:0:4136:e378:8000:63bf:f5ff:fffa", "10.0.0.0/8"),  # Teredo, client 10.0.0.5 (stored inverted)
    ("::10.0.0.5", "10.0.0.0/8"),  # IPv4-compatible (deprecated, still parsed)
])
def test_it_judges_the_ipv4_address_inside_6to4_teredo_and_compatible_addresses(ip: str, network: str) -> None:
    assert net.denied_by(ip) == ipaddress.ip_network(network)


def test_it_refuses_a_host_that_resolves_to_a_6to4_address_of_a_private_one(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(socket, "getaddrinfo", FakeResolver(["2002:c0a8:0101::1"]))

    with pytest.raises(ConnectorError, match="tunnel.example.com resolves to a private"):
        net.resolve("tunnel.example.com", 993, timeout=5)


def test_allowed_networks_win_over_broader_denied_ones(monkeypatch: pytest.MonkeyPatch) -> None:
    _allow(monkeypatch, "10.1.2.0/24", "127.0.0.0/8")

    assert net.denied_by("10.1.2.3") is None
    assert net.denied_by("::ffff:10.1.2.3") is None
    assert net.denied_by("127.0.0.1") is None
    assert net.denied_by("10.1.3.1") == ipaddress.ip_network("10.0.0.0/8")
    # NAT64 reaches 10.1.2.3 through a translator: the policy judges the address it is given.
    assert net.denied_by("64:ff9b::a01:203") == ipaddress.ip_network("64:ff9b::/96")


def test_a_broad_allowed_network_does_not_open_a_narrower_denied_one(monkeypatch: pytest.MonkeyPatch) -> None:
    _allow(monkeypatch, "0.0.0.0/0", "169.254.0.0/16")

    assert net.denied_by("169.254.169.254") == ipaddress.ip_network("169.254.169.254/32")
    assert net.denied_by("169.254.1.1") is None
    assert net.denied_by("10.0.0.5") == ipaddress.ip_network("10.0.0.0/8")


@pytest.mark.parametrize(
    ("ip", "words"),
    [
        ("10.0.0.5", "a private (RFC 1918) address"),
        ("127.0.0.1", "a loopback address"),
        ("::", "the unspecified (reaches this machine) address"),
        ("::ffff:127.0.0.1", "a loopback address"),
        ("64:ff9b::a00:1", "a NAT64 address"),
        ("168.63.129.16", "a cloud platform (Azure wire server) address"),
    ],
)
def test_it_refuses_before_creating_any_socket(
    monkeypatch: pytest.MonkeyPatch, fake_sockets: type[FakeSocket], ip: str, words: str
) -> None:
    created: list[int] = []

    class Counting(FakeSocket):
        def __init__(self, family: int, kind: int) -> None:
            created.append(family)
            super().__init__(family, kind)

    monkeypatch.setattr(net.socket, "socket", Counting)
    monkeypatch.setattr(socket, "getaddrinfo", FakeResolver([ip]))

    with pytest.raises(ConnectorError) as caught:
        net.connect("internal.example.com", 993, timeout=5)

    message = str(caught.value)
    assert message.startswith("refused by the outbound policy, no connection attempted: internal.example.com")
    assert words in message
    assert f"resolves to {ip}" not in message  # the kind of network is named, not the address
    assert caught.value.permanent
    assert created == [] and fake_sockets.connected == []


def test_a_name_resolving_to_a_private_address_is_refused_with_no_socket(
    monkeypatch: pytest.MonkeyPatch, fake_sockets: type[FakeSocket]
) -> None:
    monkeypatch.setattr(socket, "getaddrinfo", FakeResolver(["10.0.0.5"]))

    with pytest.raises(ConnectorError, match="resolves to a private"):
        net.connect("relay.corp.example", 25, timeout=5)

    assert fake_sockets.connected == []


def test_an_allowed_network_is_connected_to(monkeypatch: pytest.MonkeyPatch, fake_sockets: type[FakeSocket]) -> None:
    _allow(monkeypatch, "10.1.2.0/24")
    monkeypatch.setattr(socket, "getaddrinfo", FakeResolver(["10.1.2.3"]))

    net.connect("relay.corp.example", 25, timeout=5)

    assert fake_sockets.connected == [("10.1.2.3", 25)]


def test_every_address_a_name_resolves_to_is_checked(
    monkeypatch: pytest.MonkeyPatch, fake_sockets: type[FakeSocket]
) -> None:
    monkeypatch.setattr(socket, "getaddrinfo", FakeResolver(["203.0.113.7", "2001:db8::7", "::ffff:192.168.0.1"]))

    with pytest.raises(ConnectorError, match="private"):
        net.connect("mixed.example.com", 25, timeout=5)

    assert fake_sockets.connected == []


def test_it_reads_the_deny_list_from_django_settings(monkeypatch: pytest.MonkeyPatch) -> None:
    fake = SimpleNamespace(configured=True, MAILWRIGHT_DENY_NETWORKS=["10.0.0.0/8"])
    monkeypatch.setattr("django.conf.settings", fake)

    assert net.denied_networks() == [ipaddress.ip_network("10.0.0.0/8")]
    assert net.denied_by("10.1.2.3") is not None
    assert net.denied_by("169.254.169.254") is None


def test_it_uses_the_default_list_when_settings_do_not_name_one(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr("django.conf.settings", SimpleNamespace(configured=True))

    assert net.denied_networks() == DEFAULT


def test_it_refuses_a_host_that_resolves_to_the_metadata_address(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(socket, "getaddrinfo", FakeResolver(["169.254.169.254"]))

    with pytest.raises(ConnectorError) as caught:
        net.resolve("metadata.example.com", 993, timeout=5)

    assert str(caught.value) == (
        "refused by the outbound policy, no connection attempted: metadata.example.com resolves to a cloud "
        "metadata address (169.254.169.254/32 is on the outbound deny-list; an administrator can open a network "
        "with MAILWRIGHT_ALLOW_NETWORKS)"
    )
    assert caught.value.permanent


def test_it_refuses_a_host_that_resolves_to_an_ipv4_mapped_metadata_address(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(socket, "getaddrinfo", FakeResolver(["::ffff:169.254.169.254"]))

    with pytest.raises(ConnectorError, match="sneaky.example.com resolves to a cloud metadata address"):
        net.resolve("sneaky.example.com", 993, timeout=5)


def test_it_refuses_a_host_when_any_of_its_addresses_is_denied(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(socket, "getaddrinfo", FakeResolver(["203.0.113.7", "169.254.169.254"]))

    with pytest.raises(ConnectorError, match="resolves to a cloud metadata address"):
        net.resolve("mixed.example.com", 993, timeout=5)


def test_it_returns_every_allowed_address_once(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(socket, "getaddrinfo", FakeResolver(["203.0.113.7", "2001:db8::7", "203.0.113.7"]))

    addresses = net.resolve("mail.example.com", 993, timeout=5)

    assert [a.ip for a in addresses] == ["203.0.113.7", "2001:db8::7"]
    assert addresses[1].family == socket.AF_INET6


def test_it_passes_dns_errors_through_for_the_caller_to_explain(monkeypatch: pytest.MonkeyPatch) -> None:
    def fail(*args: object, **kwargs: object) -> list[tuple]:
        raise socket.gaierror(socket.EAI_NONAME, "Name or service not known")

    monkeypatch.setattr(socket, "getaddrinfo", fail)

    with pytest.raises(socket.gaierror):
        net.resolve("nowhere.invalid", 993, timeout=5)


def test_it_stops_waiting_for_a_dns_lookup_that_hangs(monkeypatch: pytest.MonkeyPatch) -> None:
    release = threading.Event()

    def hang(*args: object, **kwargs: object) -> list[tuple]:
        release.wait(10)
        return [_info("203.0.113.7")]

    monkeypatch.setattr(socket, "getaddrinfo", hang)
    started = time.monotonic()
    try:
        with pytest.raises(net.ResolveTimeout):
            net.resolve("slow.example.com", 993, timeout=0.2)
    finally:
        release.set()
    assert time.monotonic() - started < 2


def test_it_connects_to_the_checked_address_without_asking_dns_again(
    monkeypatch: pytest.MonkeyPatch, fake_sockets: type[FakeSocket]
) -> None:
    # A rebinding name: harmless on the first lookup, the metadata address on any later one.
    resolver = FakeResolver(["203.0.113.7"], ["169.254.169.254"])
    monkeypatch.setattr(socket, "getaddrinfo", resolver)

    sock = net.connect("rebind.example.com", 993, timeout=5)

    assert resolver.calls == ["rebind.example.com"]
    assert fake_sockets.connected == [("203.0.113.7", 993)]
    assert sock.timeout == 5


def test_it_reuses_given_addresses_but_still_checks_them(
    monkeypatch: pytest.MonkeyPatch, fake_sockets: type[FakeSocket]
) -> None:
    resolver = FakeResolver(["169.254.169.254"])
    monkeypatch.setattr(socket, "getaddrinfo", resolver)
    good = net.Address(socket.AF_INET, ("203.0.113.7", 993))
    bad = net.Address(socket.AF_INET, ("169.254.169.254", 993))

    net.connect("mail.example.com", 993, timeout=5, addresses=[good])
    with pytest.raises(ConnectorError, match="refused by the outbound policy"):
        net.connect("mail.example.com", 993, timeout=5, addresses=[bad])

    assert resolver.calls == []
    assert fake_sockets.connected == [("203.0.113.7", 993)]


def test_it_tries_the_next_address_when_one_refuses(
    monkeypatch: pytest.MonkeyPatch, fake_sockets: type[FakeSocket]
) -> None:
    monkeypatch.setattr(socket, "getaddrinfo", FakeResolver(["2001:db8::7", "203.0.113.7"]))
    fake_sockets.refuse = {"2001:db8::7"}

    net.connect("mail.example.com", 587, timeout=5)

    assert fake_sockets.connected == [("203.0.113.7", 587)]


def test_it_raises_the_last_error_when_every_address_fails(
    monkeypatch: pytest.MonkeyPatch, fake_sockets: type[FakeSocket]
) -> None:
    monkeypatch.setattr(socket, "getaddrinfo", FakeResolver(["2001:db8::7", "203.0.113.7"]))
    fake_sockets.refuse = {"2001:db8::7", "203.0.113.7"}

    with pytest.raises(ConnectionRefusedError):
        net.connect("mail.example.com", 587, timeout=5)


def test_it_shares_the_connect_timeout_between_the_addresses(
    monkeypatch: pytest.MonkeyPatch, fake_sockets: type[FakeSocket]
) -> None:
    timeouts: list[float] = []

    class Recording(FakeSocket):
        def connect(self, sockaddr: tuple) -> None:
            timeouts.append(self.timeout or 0)
            raise TimeoutError("timed out")

    monkeypatch.setattr(net.socket, "socket", Recording)
    monkeypatch.setattr(socket, "getaddrinfo", FakeResolver(["2001:db8::7", "203.0.113.7"]))

    with pytest.raises(TimeoutError):
        net.connect("mail.example.com", 587, timeout=4)

    assert 1.5 < timeouts[0] <= 2  # half of the time for the first of two addresses
    assert timeouts[1] <= 4


def test_it_caps_timeouts_to_what_is_left_of_a_deadline() -> None:
    deadline = net.Deadline(0.5)

    assert deadline.cap(30) <= 0.5
    assert deadline.cap(0.1) == 0.1
    assert not deadline.expired


def test_it_never_turns_an_expired_deadline_into_a_non_blocking_timeout() -> None:
    deadline = net.Deadline(0)

    assert deadline.expired
    assert deadline.cap(30) > 0


def test_it_shuts_watched_sockets_down_when_the_deadline_passes() -> None:
    ours, theirs = socket.socketpair()  # a local pair: a peer that never says anything
    try:
        ours.settimeout(10)
        started = time.monotonic()
        with net.Deadline(0.3) as deadline:
            deadline.watch(ours)
            assert ours.recv(1) == b""  # woken by the shutdown, not by the 10 s timeout
        assert time.monotonic() - started < 3
    finally:
        ours.close()
        theirs.close()
