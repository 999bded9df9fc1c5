"""``--check-mx``: does each address's domain accept mail? (dnspython)

Apart from :mod:`.addresses` because dnspython's resolver, with asyncio, took
~75 ms to import: every list command paid it, and only ``--check-mx`` uses it.
"""

from __future__ import annotations

import asyncio
from collections.abc import Iterable

import dns.asyncresolver
import dns.exception
import dns.resolver


class MXChecker:
    """Does a domain accept mail? MX, else A/AAAA (RFC 5321 §5.1), null MX refused (RFC 7505).

    Answers are cached per domain for the life of the checker; lookups run
    ``concurrency`` at a time so a million-row file does not flood the resolver.
    """

    def __init__(self, resolver: dns.resolver.Resolver | None = None, *,
                 concurrency: int = 20, timeout: float = 5.0) -> None:
        self._resolver = dns.asyncresolver.Resolver(configure=resolver is None)
        if resolver is not None:
            self._resolver.nameservers = list(resolver.nameservers)
            self._resolver.port = resolver.port
        self._resolver.lifetime = timeout
        self._resolver.timeout = timeout
        self.concurrency = concurrency
        self.cache: dict[str, str | None] = {}

    async def _one(self, domain: str, gate: asyncio.Semaphore) -> None:
        async with gate:
            self.cache[domain] = await self._lookup(domain)

    async def _lookup(self, domain: str) -> str | None:
        try:
            ascii_domain = domain.encode("idna").decode("ascii")
        except UnicodeError:
            ascii_domain = domain
        try:
            answer = await self._resolver.resolve(ascii_domain, "MX")
            hosts = [r for r in answer if str(r.exchange) != "."]
            return None if hosts else "domain does not accept mail (null MX)"
        except dns.resolver.NXDOMAIN:
            return "domain does not exist"
        except dns.resolver.NoAnswer:
            pass
        except (dns.resolver.NoNameservers, dns.exception.Timeout) as exc:
            # A failing resolver says nothing about the address: keep it.
            del exc
            return None
        for rdtype in ("A", "AAAA"):
            try:
                await self._resolver.resolve(ascii_domain, rdtype)
                return None
            except (dns.resolver.NXDOMAIN, dns.resolver.NoAnswer):
                continue
            except (dns.resolver.NoNameservers, dns.exception.Timeout):
                return None
        return "domain has no MX or address record"

    def check(self, domains: Iterable[str]) -> dict[str, str | None]:
        """Reason each domain cannot receive mail (``None`` when it can), resolving new ones."""
        wanted = set(domains)
        missing = [d for d in wanted if d not in self.cache]
        if missing:
            asyncio.run(self._resolve_all(missing))
        return {d: self.cache[d] for d in wanted}

    async def _resolve_all(self, domains: list[str]) -> None:
        gate = asyncio.Semaphore(self.concurrency)
        await asyncio.gather(*(self._one(d, gate) for d in domains))
