"""Direct delivery (``relay: direct``): MX lookup on the loopback DNS server, then SMTP."""

from __future__ import annotations

import asyncio
from collections import Counter
from collections.abc import Iterator

import pytest

from dispatcher.delivery import send_campaign
from dispatcher.smtp.client import Timeouts
from dispatcher.smtp.mx import MXResolver
from dispatcher.smtp.relay import DIRECT
from dispatcher.store import Store
from tests.support.badrelay import BadRelay
from tests.support.dnsserver import DNSServer
from tests.test_delivery_engine import T0, seed, states


@pytest.fixture
def dns_server() -> Iterator[DNSServer]:
    with DNSServer() as server:
        yield server


def test_direct_mode_follows_mx_and_classifies_dns_failures(store: Store,
                                                            dns_server: DNSServer) -> None:
    dns_server.mx("ok.test", (20, "backup.ok.test"), (10, "dead.ok.test"))
    dns_server.a("dead.ok.test", "127.0.0.2")  # nothing listens there: the backup MX is used
    dns_server.a("backup.ok.test", "127.0.0.1")
    dns_server.null_mx("nomail.test")
    dns_server.a("bare.test", "127.0.0.1")  # no MX: the domain's own address (RFC 5321 §5.1)
    dns_server.mx("gmail.com", (5, "gmail-smtp-in.l.google.com"))
    dns_server.a("gmail-smtp-in.l.google.com", "127.0.0.1")
    emails = ["a@ok.test", "b@ok.test", "c@nomail.test", "d@missing.test", "e@bare.test",
              "f@gmail.com"]
    cid, renderer = seed(store, emails)
    with BadRelay() as relay:
        summary = asyncio.run(asyncio.wait_for(send_campaign(
            store, cid, renderer, DIRECT, mx=MXResolver(dns_server.resolver()),
            direct_port=relay.port, timeouts=Timeouts.all(3), clock=lambda: T0), 60))
        assert relay.recipients() == Counter({"a@ok.test": 1, "b@ok.test": 1, "e@bare.test": 1})
    assert summary.outcomes == Counter(sent=3, bounced=2, deferred=1)
    got = states(store, cid)
    assert got["c@nomail.test"][0] == got["d@missing.test"][0] == "bounced"
    # Google's shape requires TLS; this loopback "Gmail" offers none, so it waits for a retry.
    assert got["f@gmail.com"][0] == "deferred"
