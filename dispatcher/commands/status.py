"""``dispatcher status``: the dashboard's numbers as plain text or JSON, for scripts and CI."""

from __future__ import annotations

import json
from typing import Annotated, Any

import typer
from rich import box
from rich.table import Table

from dispatcher.commands.common import console, state
from dispatcher.errors import NotFoundError
from dispatcher.store import stats
from dispatcher.store.models import utcnow

COLUMNS = ("total", "sent", "deferred", "bounced", "failed", "unsubscribed", "complained")
# Short headers, so the table fits 80 columns; --json has the full names.
HEADERS = {"deferred": "defer", "bounced": "bnc", "failed": "fail", "unsubscribed": "unsub",
           "complained": "cmpl"}


def _campaign_json(row: stats.CampaignRow) -> dict[str, Any]:
    return {
        "id": row.id, "name": row.name, "status": row.status, "relay": row.relay,
        "scheduled_at": row.scheduled_at.isoformat() if row.scheduled_at else None,
        **row.counts(), "progress": round(row.progress, 4), "rate": round(row.rate, 3),
        "eta_seconds": int(row.eta.total_seconds()) if row.eta is not None else None,
    }


def _relay_json(relay: stats.RelayHealth) -> dict[str, Any]:
    return {"relay": relay.relay, "health": relay.health, "rate": round(relay.rate, 3),
            "rate_limit": relay.rate_limit, "connections": relay.connections,
            "sent": relay.sent, "errors": relay.errors, "last_error": relay.last_error}


def status(
    ctx: typer.Context,
    as_json: Annotated[bool, typer.Option("--json", help="Print JSON for scripts.")] = False,
    campaign: Annotated[str | None, typer.Option(
        "--campaign", "-c", help="Only this campaign (by name).")] = None,
) -> None:
    """Show every campaign's delivery counts, progress, rate and ETA, and relay health."""
    store = state(ctx).store
    now = utcnow()
    stats.rollup(store, now)
    rows = stats.campaigns(store, now)
    if campaign is not None:
        rows = [r for r in rows if r.name == campaign]
        if not rows:
            raise NotFoundError(f"no campaign named {campaign!r} in the store")
    relays = stats.relay_health(store, now)
    if as_json:
        print(json.dumps({"at": now.isoformat(), "campaigns": [_campaign_json(r) for r in rows],
                          "relays": [_relay_json(r) for r in relays]}, indent=2))
        return
    table = Table(box=box.SIMPLE_HEAD, show_edge=False, pad_edge=False, padding=(0, 1),
                  collapse_padding=True)
    table.add_column("campaign", overflow="fold", min_width=8)
    table.add_column("status", no_wrap=True)
    # A narrow terminal drops the feedback columns rather than fold campaign names.
    columns = COLUMNS if console.width >= 100 else COLUMNS[:5]
    for key in columns:
        table.add_column(HEADERS.get(key, key), justify="right", no_wrap=True)
    for key in ("%", "rate", "eta"):
        table.add_column(key, justify="right", no_wrap=True)
    for row in rows:
        eta = str(row.eta).removeprefix("0:") if row.eta is not None else "-"
        rate = f"{row.rate:.1f}/s" if row.rate else "-"
        table.add_row(row.name, row.status, *(str(getattr(row, k)) for k in columns),
                      f"{int(row.progress * 100)}%", rate, eta)
    console.print(table)
    for relay in relays:
        error = f", last error: {relay.last_error}" if relay.last_error else ""
        console.print(f"relay {relay.relay}: {relay.health}, {relay.rate:.1f}/s, "
                      f"{relay.sent} sent, {relay.errors} errors{error}", highlight=False,
                      markup=False)


def register(app: typer.Typer) -> None:
    app.command("status")(status)
