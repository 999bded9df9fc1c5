"""``dispatcher worker``: drain every running campaign's queue; run several, anywhere.

Workers on one machine or many share the store (PostgreSQL for more than one
machine): claims use ``FOR UPDATE SKIP LOCKED``, relay and destination limits
are counted in the store, so N workers together keep one rate. Running two
workers on a 2-core machine is also how sending uses both cores.
"""

from __future__ import annotations

import asyncio
import functools
import signal
import time
from datetime import UTC, datetime, timedelta
from typing import Annotated

import sqlalchemy as sa
import typer

from dispatcher.commands.common import console, state
from dispatcher.commands.send import auto_render_processes, campaign_limits
from dispatcher.core.campaign import Campaign as CampaignDefinition
from dispatcher.delivery import campaign_counts, send_campaign
from dispatcher.delivery.queue import OPEN_STATES
from dispatcher.render import Renderer
from dispatcher.smtp.relay import choose_relays, open_relays
from dispatcher.store.database import Store
from dispatcher.store.tables import campaign_t, delivery_t


def due_campaigns(store: Store, now: datetime) -> list[tuple[int, str, dict[str, object]]]:
    """Running campaigns with a delivery to try now (or a claim whose lease ran out)."""
    due = sa.exists().where(
        delivery_t.c.campaign_id == campaign_t.c.id, delivery_t.c.state.in_(OPEN_STATES),
        sa.or_(delivery_t.c.next_attempt_at.is_(None), delivery_t.c.next_attempt_at <= now),
        sa.or_(delivery_t.c.state != "claimed", delivery_t.c.lease_expires_at < now))
    with store.engine.connect() as conn:
        rows = conn.execute(sa.select(campaign_t.c.id, campaign_t.c.name, campaign_t.c.definition)
                            .where(campaign_t.c.status == "running", due)
                            .order_by(campaign_t.c.id)).all()
    return [(int(r.id), str(r.name), dict(r.definition)) for r in rows]


def worker(
    ctx: typer.Context,
    once: Annotated[bool, typer.Option("--once", help="Stop when nothing is due.")] = False,
    poll: Annotated[float, typer.Option("--poll", min=0.1, help="Seconds between looks "
                                        "for work when idle.")] = 2.0,
    connections: Annotated[int | None, typer.Option("--connections", "-c", min=1)] = None,
    render_processes: Annotated[int | None, typer.Option(
        "--render-processes", min=0, help="Processes that render while this one sends "
        "(0: render in this process; default: as dispatcher send chooses).")] = None,
    lease: Annotated[float, typer.Option("--lease", min=1)] = 300.0,
    batch: Annotated[int, typer.Option("--batch", min=1)] = 200,
) -> None:
    """Send queued deliveries of running campaigns until stopped (Ctrl-C, SIGTERM)."""
    st = state(ctx)
    ws, store = st.workspace, st.store
    stop = False

    def request_stop(*_: object) -> None:
        nonlocal stop
        stop = True

    signal.signal(signal.SIGTERM, request_stop)
    while not stop:
        work = due_campaigns(store, datetime.now(UTC))
        for cid, name, data in work:
            definition = CampaignDefinition.model_validate(data)
            choices = choose_relays(None, definition.relay_pool, ws.config.relays)
            factory = functools.partial(Renderer, definition, root=ws.root,
                                        sending=ws.config.sending, secret=store.secret(),
                                        campaign_id=cid)
            processes = render_processes
            if processes is None:
                (counts,) = campaign_counts(store, cid)
                processes = auto_render_processes(counts["queued"] + counts["deferred"])
            with open_relays(choices, ws.outbox) as urls:
                summary = asyncio.run(send_campaign(
                    store, cid, factory(), urls,
                    connections=connections or definition.rate.connections
                    or choices[0].max_connections,
                    per_connection=definition.rate.per_connection
                    or choices[0].max_messages_per_connection,
                    batch=batch, lease=timedelta(seconds=lease),
                    limits=campaign_limits(definition), render_processes=processes,
                    render_factory=factory))
            console.print(f"{name}: " + ", ".join(
                f"{k} {v}" for k, v in sorted(summary.outcomes.items())) or f"{name}: nothing")
            if stop:
                break
        if not work:
            if once:
                return
            time.sleep(poll)


def register(app: typer.Typer) -> None:
    app.command("worker")(worker)
