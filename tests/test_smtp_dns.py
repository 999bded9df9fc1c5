"""The loopback DNS server other tests resolve against: real UDP and TCP, dnspython messages."""

from __future__ import annotations

from collections.abc import Iterator

import dns.message
import dns.query
import dns.rcode
import dns.resolver
import pytest

from tests.support.dnsserver import DNSServer


@pytest.fixture
def dns_server() -> Iterator[DNSServer]:
    with DNSServer() as server:
        yield server


def test_mx_a_aaaa_over_udp(dns_server: DNSServer) -> None:
    dns_server.mx("example.test", (20, "mx2.example.test"), (10, "mx1.example.test"), ttl=120)
    dns_server.a("mx1.example.test", "127.0.0.1").aaaa("mx1.example.test", "::1")
    resolver = dns_server.resolver()
    answer = resolver.resolve("example.test", "MX")
    assert sorted((r.preference, r.exchange.to_text()) for r in answer) == [
        (10, "mx1.example.test."), (20, "mx2.example.test.")]
    assert answer.rrset is not None and answer.rrset.ttl == 120
    assert [r.address for r in resolver.resolve("mx1.example.test", "A")] == ["127.0.0.1"]
    assert [r.address for r in resolver.resolve("MX1.example.test", "AAAA")] == ["::1"]
    assert dns_server.count("example.test", "MX") == 1
    assert dns_server.queries[0].transport == "udp"


def test_nxdomain_nodata_servfail_and_null_mx(dns_server: DNSServer) -> None:
    dns_server.a("host.test", "127.0.0.2").null_mx("nomail.test").fail("broken.test")
    resolver = dns_server.resolver(lifetime=1.0)
    with pytest.raises(dns.resolver.NXDOMAIN):
        resolver.resolve("missing.test", "A")
    with pytest.raises(dns.resolver.NoAnswer):
        resolver.resolve("host.test", "MX")
    with pytest.raises(dns.resolver.NoNameservers):
        resolver.resolve("broken.test", "A")
    [null] = resolver.resolve("nomail.test", "MX")
    assert (null.preference, null.exchange.to_text()) == (0, ".")


def test_long_dkim_key_is_split_and_truncation_falls_back_to_tcp(dns_server: DNSServer) -> None:
    key = "v=DKIM1; k=rsa; p=" + "A" * 700
    dns_server.dkim("example.test", "s1", key)
    answer = dns_server.resolver().resolve("s1._domainkey.example.test", "TXT")
    [record] = answer
    assert b"".join(record.strings).decode() == key
    assert all(len(s) <= 255 for s in record.strings)
    # 700+ bytes do not fit a 512-byte UDP answer: TC was set and the resolver used TCP.
    assert [q.transport for q in dns_server.queries] == ["udp", "tcp"]


def test_tcp_directly_and_cname(dns_server: DNSServer) -> None:
    dns_server.cname("www.example.test", "real.example.test").a("real.example.test", "127.0.0.9")
    query = dns.message.make_query("www.example.test", "A")
    response = dns.query.tcp(query, dns_server.host, port=dns_server.port, timeout=2)
    assert response.rcode() == dns.rcode.NOERROR
    assert [rr.to_text() for rrset in response.answer for rr in rrset] == [
        "real.example.test.", "127.0.0.9"]
