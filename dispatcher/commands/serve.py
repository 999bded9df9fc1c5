"""``dispatcher serve``: the daemon that starts scheduled campaigns and sends running ones."""

from __future__ import annotations

import asyncio
from datetime import date, timedelta
from typing import Annotated

import typer

from dispatcher.commands.common import state
from dispatcher.commands.schedule import scheduler_config
from dispatcher.errors import ConfigError
from dispatcher.scheduler import logs
from dispatcher.scheduler.daemon import Daemon
from dispatcher.scheduler.service import serve as run_service
from dispatcher.scheduler.services import SideServices


def warmup_keys(items: list[str]) -> dict[str, date]:
    """``news.example.com=2026-11-20`` options as warm-up keys and their first days."""
    keys: dict[str, date] = {}
    for item in items:
        name, _, first = item.partition("=")
        try:
            keys[name.strip().lower()] = date.fromisoformat(first.strip())
        except ValueError:
            name = ""
        if not name.strip():
            raise ConfigError(f"--warmup {item!r} must look like news.example.com=2026-11-20")
    return keys


def serve(
    ctx: typer.Context,
    log_json: Annotated[bool, typer.Option(
        "--log-json", help="One JSON object per log line (for journald, Loki, ...).")] = False,
    grace: Annotated[float | None, typer.Option(
        "--grace", min=0, help="Minutes a missed start may be late and still run "
        "(default 60).")] = None,
    tick: Annotated[float | None, typer.Option(
        "--tick", min=0.05, help="Seconds between scheduling rounds (default 1).")] = None,
    web: Annotated[str | None, typer.Option(
        "--web", help="Serve unsubscribe and tracking on HOST:PORT (e.g. 127.0.0.1:8080).")]
    = None,
    inbound: Annotated[str | None, typer.Option(
        "--inbound", help="Receive returned mail by SMTP on HOST:PORT.")] = None,
    bounces: Annotated[str | None, typer.Option(
        "--bounces", help="Poll this source for returned mail at each housekeeping round: "
        "a maildir or mbox path, imaps://user:pass@host/INBOX or pop3s://...")] = None,
    warmup: Annotated[list[str] | None, typer.Option(
        "--warmup", help="Warm up a sending domain (or relay, with [scheduler.warmup] per = "
        "'relay'): DOMAIN=FIRST-DAY, e.g. news.example.com=2026-11-20; repeatable. Day 0 "
        "allows 500, doubling daily to the ceiling.")] = None,
    drain: Annotated[float | None, typer.Option(
        "--drain", min=0, help="Seconds to let sends finish on SIGTERM before giving "
        "the rest back to the queue (default 20).")] = None,
) -> None:
    """Run until SIGTERM/SIGINT: start scheduled campaigns, send, retry deferrals, tidy up.

    Housekeeping (every 30 s) gives expired leases back, rolls up the dashboard's
    statistics and applies returned mail; --web and --inbound run beside it.
    """
    st = state(ctx)
    config = scheduler_config(st.workspace)
    changes: dict[str, object] = {}
    if grace is not None:
        changes["grace"] = timedelta(minutes=grace)
    if tick is not None:
        changes["tick_seconds"] = tick
    if drain is not None:
        changes["drain_seconds"] = drain
    if warmup:
        keys = {**config.warmup.keys, **warmup_keys(warmup)}
        changes["warmup"] = config.warmup.model_copy(update={"keys": keys})
    config = config.model_copy(update=changes)
    logs.setup(json_lines=log_json)
    daemon = Daemon(st.store, st.workspace, config)
    services = SideServices(st.store, st.workspace, web=web, inbound=inbound, bounces=bounces)
    asyncio.run(run_service(daemon, services))


def register(app: typer.Typer) -> None:
    app.command("serve")(serve)
