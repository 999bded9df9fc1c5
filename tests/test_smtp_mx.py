"""MX lookup against the loopback DNS server: order, fallbacks, null MX, TTL cache."""

from __future__ import annotations

import random
from collections.abc import Iterator

import pytest

from dispatcher.smtp.mx import MXError, MXResolver
from tests.support.dnsserver import DNSServer


@pytest.fixture
def dns_server() -> Iterator[DNSServer]:
    with DNSServer() as server:
        yield server


class FakeClock:
    def __init__(self) -> None:
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now


def test_preference_order_with_equal_preferences_shuffled(dns_server: DNSServer) -> None:
    dns_server.mx("example.test", (20, "backup.example.test"), (10, "a.example.test"),
                  (10, "b.example.test"))
    route = MXResolver(dns_server.resolver()).route("Example.TEST.")
    assert route.records == ((10, "a.example.test"), (10, "b.example.test"),
                             (20, "backup.example.test"))
    orders = {tuple(route.hosts(random.Random(seed))) for seed in range(20)}
    assert orders == {("a.example.test", "b.example.test", "backup.example.test"),
                      ("b.example.test", "a.example.test", "backup.example.test")}


def test_implicit_mx_from_a_and_aaaa(dns_server: DNSServer) -> None:
    dns_server.a("bare.test", "127.0.0.5").aaaa("bare.test", "::1")
    mx = MXResolver(dns_server.resolver())
    route = mx.route("bare.test")
    assert route.implicit and route.hosts() == ["bare.test"]
    assert mx.addresses("bare.test") == ("127.0.0.5", "::1")


def test_null_mx_nxdomain_and_servfail(dns_server: DNSServer) -> None:
    dns_server.null_mx("nomail.test").add("empty.test", "TXT", '"x"').fail("broken.test")
    mx = MXResolver(dns_server.resolver(lifetime=1))
    with pytest.raises(MXError, match="null MX") as null:
        mx.route("nomail.test")
    assert (null.value.permanent, null.value.status) == (True, "5.1.10")
    with pytest.raises(MXError, match="does not exist") as nx:
        mx.route("missing.test")
    assert nx.value.permanent and nx.value.status == "5.1.2"
    with pytest.raises(MXError, match="neither MX nor address") as empty:
        mx.route("empty.test")
    assert empty.value.permanent
    with pytest.raises(MXError, match="failed") as fail:
        mx.route("broken.test")
    assert (fail.value.permanent, fail.value.status) == (False, "4.4.3")


def test_cache_honours_ttl_and_remembers_failures_briefly(dns_server: DNSServer) -> None:
    dns_server.mx("cached.test", (10, "mx.cached.test"), ttl=30)
    clock = FakeClock()
    mx = MXResolver(dns_server.resolver(), clock=clock)
    for _ in range(5):
        mx.route("cached.test")
    assert dns_server.count("cached.test", "MX") == 1
    clock.now += 29
    mx.route("cached.test")
    assert dns_server.count("cached.test", "MX") == 1
    clock.now += 2
    mx.route("cached.test")
    assert dns_server.count("cached.test", "MX") == 2
    for _ in range(3):
        with pytest.raises(MXError):
            mx.route("gone.test")
    assert dns_server.count("gone.test", "MX") == 1
