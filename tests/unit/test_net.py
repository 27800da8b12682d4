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


@pytest.fixture
def fake_sockets(monkeypatch: pytest.MonkeyPatch) -> Iterator[type[FakeSocket]]:
    FakeSocket.connected = []
    FakeSocket.refuse = set()
    monkeypatch.setattr(net.socket, "socket", FakeSocket)
    yield FakeSocket


@pytest.mark.parametrize(
    "ip",
    ["169.254.169.254", "169.254.0.1", "fe80::1", "fe80::1%eth0", "100.100.100.200", "fd00:ec2::254", "0.0.0.0"],
)
def test_it_denies_link_local_and_metadata_addresses_by_default(ip: str) -> None:
    assert net.denied_by(ip) is not None


@pytest.mark.parametrize("ip", ["127.0.0.1", "::1", "10.0.0.5", "192.168.1.10", "100.100.100.201", "2001:db8::1"])
def test_it_allows_ordinary_addresses(ip: str) -> None:
    assert net.denied_by(ip) is None


def test_it_checks_an_ipv4_mapped_ipv6_address_as_ipv4() -> None:
    assert net.denied_by("::ffff:169.254.169.254") == ipaddress.ip_network("169.254.0.0/16")
    assert net.denied_by("::ffff:127.0.0.1") is None


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
        "metadata.example.com resolves to 169.254.169.254, which is blocked by the outbound deny-list "
        "(169.254.0.0/16)"
    )
    assert caught.value.permanent


def test_it_refuses_a_host_that_resolves_to_an_ipv4_mapped_metadata_address(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(socket, "getaddrinfo", FakeResolver(["::ffff:169.254.169.254"]))

    with pytest.raises(ConnectorError, match="resolves to ::ffff:169.254.169.254, which is blocked"):
        net.resolve("sneaky.example.com", 993, timeout=5)


def test_it_refuses_a_host_when_any_of_its_addresses_is_denied(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(socket, "getaddrinfo", FakeResolver(["203.0.113.7", "169.254.169.254"]))

    with pytest.raises(ConnectorError, match="resolves to 169.254.169.254"):
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
    with pytest.raises(ConnectorError, match="blocked by the outbound deny-list"):
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
