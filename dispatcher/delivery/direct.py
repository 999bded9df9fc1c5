"""Direct delivery (``relay: direct``): no smarthost, each domain's own MX servers.

Messages are grouped per recipient domain; each domain gets up to its
destination shape's connections (``core/shaping.py``: per MX group, e.g. all
Google-hosted domains together), paced per MX group in the store so every
worker respects one rate, with adaptive backoff when the destination says
"slow down". MX hosts are tried in preference order; STARTTLS is
opportunistic (RFC 7435: encrypt when offered, do not insist on a valid
certificate) except where the destination requires TLS (Google).
"""

from __future__ import annotations

import asyncio
from collections import defaultdict
from typing import TYPE_CHECKING

from dispatcher.core.rates import Limits
from dispatcher.core.shaping import Shaper
from dispatcher.delivery.feed import Feed
from dispatcher.delivery.pool import Relay
from dispatcher.delivery.run import Job, Run
from dispatcher.delivery.session import session
from dispatcher.errors import SMTPConnectError
from dispatcher.smtp.client import SMTPClient
from dispatcher.smtp.mx import MXError, MXResolver
from dispatcher.smtp.relay import RelayURL

if TYPE_CHECKING:
    from dispatcher.delivery.render_pool import RenderPool


class _MXClient(SMTPClient):
    """Connects to the first MX host of the domain that answers (RFC 5321 §5.1)."""

    def __init__(self, mx: MXResolver, domain: str, port: int, tls_required: bool,
                 **kw: object) -> None:
        super().__init__(domain, port, starttls="required" if tls_required else "opportunistic",
                         verify_tls=tls_required, **kw)  # type: ignore[arg-type]
        self.mx, self.domain = mx, domain

    async def connect(self) -> None:
        route = await self.mx.aroute(self.domain)
        errors: list[str] = []
        for host in route.hosts():
            addresses = await asyncio.to_thread(self.mx.addresses, host)
            for address in addresses:
                self.host, self.server_hostname = address, host
                try:
                    await super().connect()
                    return
                except SMTPConnectError as exc:
                    errors.append(str(exc))
        raise SMTPConnectError(f"{self.domain}: no MX host answered: {'; '.join(errors)}")


async def run_direct(run: Run, render_pool: RenderPool | None, mx: MXResolver, shaper: Shaper,
                     *, port: int, connections: int) -> None:
    queues: dict[str, list[Job]] = defaultdict(list)
    lanes: dict[str, Relay] = {}
    tasks: dict[str, list[asyncio.Task[None]]] = defaultdict(list)
    groups: dict[str, str] = {}

    def group_of(domain: str) -> str:
        if domain not in groups:
            try:
                hosts = [h for _, h in mx.route(domain).records]
            except MXError:
                hosts = []
            groups[domain] = shaper.group(domain, hosts)
        return groups[domain]

    def lane(domain: str) -> Relay:
        if domain not in lanes:
            shape = shaper.shape(group_of(domain))
            url = RelayURL(host=domain, port=port, limits=Limits(per_second=shape.per_second))
            lanes[domain] = Relay(url, url.limits, min(shape.connections, connections),
                                  shape.per_connection, key=f"dest:{group_of(domain)}",
                                  tls_required=shape.tls_required)
        return lanes[domain]

    def take(relay: Relay) -> Job | None:
        queue = queues[relay.url.host]
        if not queue:
            return None
        feed.taken()
        return queue.pop()

    def requeue(job: Job, relay: Relay) -> None:
        run.finish(run.outcome(job, None, f"{relay.url.host}: {relay.last_error}",
                               relay=relay.name))

    def connect(relay: Relay) -> SMTPClient:
        return _MXClient(mx, relay.url.host, relay.url.port,
                         relay.tls_required, helo=run.helo,
                         timeouts=run.timeouts)

    def enqueue(job: Job) -> None:
        domain = job.message.recipient.rsplit("@", 1)[-1].lower()
        relay = lane(domain)
        queues[domain].append(job)
        live = [t for t in tasks[domain] if not t.done()]
        if len(live) < relay.connections and len(queues[domain]) > len(live):
            def idle(d: str = domain) -> bool:
                return not queues[d]

            live.append(asyncio.create_task(session(run, relay, take, requeue, idle, connect)))
        tasks[domain] = live

    def backlog() -> int:
        return sum(len(q) for q in queues.values())

    run.summary.in_flight_window = run.batch + connections
    run.recorder.bound(run.batch - connections)
    feed = Feed(run, enqueue, backlog, room=1000, pool=render_pool)
    await feed.produce()
    while any(not t.done() for ts in tasks.values() for t in ts):
        await asyncio.gather(*(t for ts in list(tasks.values()) for t in ts))
    if run.halted:
        await run.halt(feed.unsent)
