"""``dispatcher schedule FILE``, ``dispatcher schedules``, ``dispatcher unschedule NAME``."""

from __future__ import annotations

from datetime import datetime
from pathlib import Path
from typing import Annotated

import typer
from rich.table import Table

from dispatcher.campaigns.loader import locate
from dispatcher.commands.common import console, load, state
from dispatcher.core.schedule import (
    ScheduleError,
    SchedulerConfig,
    parse_at,
    start_decision,
    zone,
)
from dispatcher.errors import CampaignError, ConfigError
from dispatcher.render import Renderer
from dispatcher.scheduler import records
from dispatcher.scheduler.cron import cron_trigger
from dispatcher.scheduler.daemon import utcnow
from dispatcher.smtp.relay import choose_relays


def scheduler_config(ws: object) -> SchedulerConfig:
    """``[scheduler]`` of dispatcher.toml once the workspace config carries it, else defaults."""
    value = getattr(getattr(ws, "config", None), "scheduler", None)
    if value is None:
        return SchedulerConfig()
    return SchedulerConfig.model_validate(value, from_attributes=True)


def _when(at: datetime, tz: str) -> str:
    local = at.astimezone(zone(tz))
    return f"{at:%Y-%m-%d %H:%M} UTC ({local:%a %Y-%m-%d %H:%M} {tz})"


def schedule(
    ctx: typer.Context,
    file: Annotated[Path, typer.Argument(help="Campaign YAML file.", dir_okay=False)],
    at: Annotated[str | None, typer.Option(
        "--at", help="When: '2026-12-01T09:00 Europe/Berlin' or an ISO time with offset; "
        "overrides the campaign's schedule.")] = None,
    relay: Annotated[str | None, typer.Option(
        "--relay", "-r", help="As for `send`: a relay URL, a relay name from dispatcher.toml, "
        "or 'capture'.")] = None,
) -> None:
    """Schedule a campaign; `dispatcher serve` sends it at its time."""
    st, campaign, path = load(ctx, file)
    ws, store = st.workspace, st.store
    config = scheduler_config(ws)
    plan = campaign.schedule
    tz = (plan.timezone if plan else None) or config.default_timezone
    # A bad relay fails now, not at 9:00.
    display = ",".join(c.display for c in choose_relays(relay, campaign.relay_pool,
                                                        ws.config.relays))
    # Compile the templates now, so a broken one is reported before anyone goes home.
    Renderer(campaign, root=ws.root, sending=ws.config.sending, secret=store.secret(),
             campaign_id=0)
    now = utcnow()
    definition = campaign.model_dump(mode="json", by_alias=True)
    try:
        if at is None and plan is not None and plan.cron:
            try:
                trigger = cron_trigger(plan.cron, tz)
            except ScheduleError as exc:
                line, column = locate(path, ("schedule", "cron"))
                raise CampaignError(str(exc), path=str(path), line=line, column=column
                                    ) from None
            records.save_schedule(store, records.NewSchedule(
                campaign.name, "cron", definition, str(path), relay or "", cron=plan.cron,
                timezone=tz), now=now)
            first = trigger.get_next_fire_time(None, now.astimezone(zone(tz)))
            console.print(f"scheduled {campaign.name} ({plan.cron!r} in {tz}); first run "
                          f"{_when(first.astimezone(now.tzinfo), tz) if first else 'never'}")
            return
        if at is not None:
            when = parse_at(at, default_zone=tz)
        elif plan is not None and plan.at is not None:
            when = plan.at.astimezone(now.tzinfo)
        elif plan is not None and plan.local_time:
            when = now
        else:
            raise ConfigError(f"{path}: no time given: use --at, or schedule: {{at: ...}}, "
                              f"cron or local_time in the campaign")
    except ScheduleError as exc:
        raise ConfigError(f"--at: {exc}" if at is not None else str(exc)) from None
    try:
        when.astimezone(zone(tz))
    except OverflowError:
        # A moment that exists in UTC but not on the campaign's calendar (year 1, 9999).
        raise ConfigError(f"{'--at' if at is not None else 'schedule.at'}: {when:%Y-%m-%d %H:%M} "
                          f"UTC is out of range in {tz}") from None
    if start_decision(when, now, grace=config.grace) == "missed":
        message = f"{_when(when, tz)} is more than {config.grace} in the past"
        if at is not None:
            raise ConfigError(f"--at: {message}")
        line, column = locate(path, ("schedule", "at"))
        raise CampaignError(f"schedule.at: {message}", path=str(path), line=line, column=column)
    records.save_schedule(store, records.NewSchedule(
        campaign.name, "at", definition, str(path), relay or "", at=when, timezone=tz,
        display=display), now=now)
    extra = f", each recipient at {plan.local_time} their time" if plan and plan.local_time \
        else ""
    console.print(f"scheduled {campaign.name} for {_when(when, tz)}{extra}")


def schedules(ctx: typer.Context) -> None:
    """List the schedules: one-off ones with their campaign's state, recurring ones."""
    rows = records.schedules(state(ctx).store)
    table = Table(title="schedules")
    for column in ("name", "when", "status", "relay"):
        table.add_column(column)
    for row in rows:
        if row["kind"] == "cron":
            last = row["last_run_at"]
            when = f"cron {row['cron']!r} {row['timezone']}" + (
                f", last {last:%Y-%m-%d %H:%M} UTC" if last else "")
        else:
            when = _when(row["at"], row["timezone"]) if row["at"] else "-"
        table.add_row(row["name"], when, row["status"], row["relay"] or "(campaign's)")
    console.print(table)


def unschedule(
    ctx: typer.Context,
    name: Annotated[str, typer.Argument(help="The campaign name the schedule was made for.")],
) -> None:
    """Remove a schedule; a campaign that has not started is dropped with it."""
    records.remove_schedule(state(ctx).store, name)
    console.print(f"unscheduled {name}")


def register(app: typer.Typer) -> None:
    app.command("schedule")(schedule)
    app.command("schedules")(schedules)
    app.command("unschedule")(unschedule)
