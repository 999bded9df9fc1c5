"""Where mail for a domain goes (direct delivery): MX lookup with dnspython.

RFC 5321 §5.1: try the MX hosts in preference order (equal preferences in
random order); with no MX record, the domain's own A/AAAA is an implicit MX
of preference 0. RFC 7505: a single MX "0 ." (null MX) means the domain
accepts no mail, a permanent failure (``5.1.10``). Answers are cached for
their TTL (and failures briefly), so a campaign to 100,000 gmail.com
addresses asks once, not 100,000 times.
"""

from __future__ import annotations

import asyncio
import random
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass

import dns.exception
import dns.name
import dns.resolver

from dispatcher.errors import DeliveryError

NEGATIVE_TTL = 60.0  # seconds to remember "no such domain" or a DNS failure
MIN_TTL, MAX_TTL = 5.0, 86400.0


class MXError(DeliveryError):
    """No host to deliver to: ``permanent`` for NXDOMAIN or null MX, else retry later."""

    def __init__(self, message: str, *, permanent: bool, status: str, **kw: str) -> None:
        super().__init__(message, **kw)  # type: ignore[arg-type]
        self.permanent = permanent
        self.status = status  # RFC 3463: 5.1.2 bad destination, 5.1.10 null MX, 4.4.3 DNS


@dataclass(frozen=True)
class Route:
    domain: str
    records: tuple[tuple[int, str], ...]  # (preference, host), lowest preference first
    implicit: bool = False  # no MX record: the domain itself (RFC 5321 §5.1)

    def hosts(self, rng: random.Random | None = None) -> list[str]:
        """The hosts in the order to try them; equal preferences shuffled (RFC 5321 §5.1)."""
        pick = rng or random
        return [host for _, _, host in sorted((p, pick.random(), h) for p, h in self.records)]


class MXResolver:
    """Cached MX and address lookups; ``resolver`` defaults to the system's."""

    def __init__(self, resolver: dns.resolver.Resolver | None = None, *,
                 clock: Callable[[], float] = time.monotonic) -> None:
        self.resolver = resolver or dns.resolver.Resolver()
        self.clock = clock
        self._routes: dict[str, tuple[float, Route | MXError]] = {}
        self._addresses: dict[str, tuple[float, tuple[str, ...]]] = {}
        self._lock = threading.Lock()

    def route(self, domain: str) -> Route:
        """The hosts for ``domain``, best first; raises :class:`MXError` when there are none."""
        key = domain.lower().rstrip(".")
        with self._lock:
            hit = self._routes.get(key)
        if hit is not None and hit[0] > self.clock():
            if isinstance(hit[1], MXError):
                raise hit[1]
            return hit[1]
        try:
            route, ttl = self._lookup(key)
        except MXError as exc:
            with self._lock:
                self._routes[key] = (self.clock() + NEGATIVE_TTL, exc)
            raise
        with self._lock:
            self._routes[key] = (self.clock() + min(max(ttl, MIN_TTL), MAX_TTL), route)
        return route

    async def aroute(self, domain: str) -> Route:
        """:meth:`route` off the event loop (dnspython's resolver blocks)."""
        key = domain.lower().rstrip(".")
        with self._lock:
            hit = self._routes.get(key)
        if hit is not None and hit[0] > self.clock() and isinstance(hit[1], Route):
            return hit[1]
        return await asyncio.to_thread(self.route, key)

    def _lookup(self, domain: str) -> tuple[Route, float]:
        try:
            answer = self.resolver.resolve(domain, "MX")
        except dns.resolver.NXDOMAIN as exc:
            raise MXError(f"domain {domain} does not exist", permanent=True,
                          status="5.1.2") from exc
        except dns.resolver.NoAnswer:
            return self._implicit(domain)
        except (dns.resolver.NoNameservers, dns.exception.Timeout) as exc:
            raise MXError(f"DNS lookup of {domain} failed: {exc}", permanent=False,
                          status="4.4.3") from exc
        records = sorted((r.preference, r.exchange.to_text(omit_final_dot=True).lower())
                         for r in answer)
        if any(host in ("", ".") for _, host in records):
            # RFC 7505 §3: a null MX is the only record; either way it means no mail.
            raise MXError(f"domain {domain} accepts no mail (null MX, RFC 7505)",
                          permanent=True, status="5.1.10")
        ttl = float(answer.rrset.ttl) if answer.rrset is not None else NEGATIVE_TTL
        return Route(domain, tuple(records)), ttl

    def _implicit(self, domain: str) -> tuple[Route, float]:
        addresses, ttl = self._resolve_addresses(domain)
        if not addresses:
            raise MXError(f"domain {domain} has neither MX nor address records",
                          permanent=True, status="5.1.2")
        return Route(domain, ((0, domain),), implicit=True), ttl

    def addresses(self, host: str) -> tuple[str, ...]:
        """IPv4 then IPv6 addresses of ``host`` (cached for their TTL)."""
        key = host.lower().rstrip(".")
        with self._lock:
            hit = self._addresses.get(key)
        if hit is not None and hit[0] > self.clock():
            return hit[1]
        found, ttl = self._resolve_addresses(key)
        with self._lock:
            self._addresses[key] = (self.clock() + min(max(ttl, MIN_TTL), MAX_TTL), found)
        return found

    def _resolve_addresses(self, host: str) -> tuple[tuple[str, ...], float]:
        found: list[str] = []
        ttls: list[float] = []
        for rdtype in ("A", "AAAA"):
            try:
                answer = self.resolver.resolve(host, rdtype)
            except dns.resolver.NXDOMAIN as exc:
                raise MXError(f"host {host} does not exist", permanent=True,
                              status="5.1.2") from exc
            except dns.resolver.NoAnswer:
                continue
            except (dns.resolver.NoNameservers, dns.exception.Timeout) as exc:
                raise MXError(f"DNS lookup of {host} failed: {exc}", permanent=False,
                              status="4.4.3") from exc
            found.extend(r.address for r in answer)
            if answer.rrset is not None:
                ttls.append(float(answer.rrset.ttl))
        return tuple(found), min(ttls, default=NEGATIVE_TTL)
