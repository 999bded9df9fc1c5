"""One campaign in depth: counts by state, bounce reasons by domain, last SMTP errors,
A/B variants and the schedule."""

from __future__ import annotations

from datetime import datetime
from typing import ClassVar

from rich.text import Text
from textual.app import ComposeResult
from textual.binding import Binding, BindingType
from textual.containers import Grid
from textual.screen import Screen
from textual.widgets import DataTable, Footer, Header, Static

from dispatcher.dashboard.messages import Steer
from dispatcher.dashboard.screens.main import STEERING
from dispatcher.dashboard.widgets.event_feed import EventFeed
from dispatcher.dashboard.widgets.format import (
    STATUS_STYLES,
    bar,
    count,
    duration,
    percent,
    plain,
    rate,
    when,
)
from dispatcher.store.stats import CampaignDetail

COUNTED = ("sent", "opened", "clicked", "bounced", "unsubscribed")


def _table(id: str, title: str, *columns: str) -> DataTable[Text | str]:
    table: DataTable[Text | str] = DataTable(id=id, cursor_type="none", zebra_stripes=True)
    table.border_title = title
    for column in columns:
        table.add_column(column, key=column)
    return table


class CampaignDetailScreen(Screen[None]):
    BINDINGS: ClassVar[list[BindingType]] = [Binding("escape,backspace", "back", "Back"), *STEERING]

    def __init__(self, campaign_id: int) -> None:
        super().__init__()
        self.campaign_id = campaign_id

    def compose(self) -> ComposeResult:
        yield Header()
        yield Static(id="summary")
        with Grid(id="detail-grid"):
            yield _table("states", "By state", "State", "Count", "Share")
            yield _table("variants", "A/B variants", "Variant", "%", *(c.title() for c in COUNTED))
            yield _table("reasons", "Bounce reasons by domain", "Domain", "Reason", "Count")
            yield EventFeed(id="errors", title="Last SMTP errors")
        yield Footer()

    def show(self, detail: CampaignDetail | None, now: datetime) -> None:
        summary = self.query_one("#summary", Static)
        if detail is None:
            summary.update(f"campaign {self.campaign_id} no longer exists")
            return
        c = detail.campaign
        line = Text.assemble(
            (c.name, "bold"), "  ", (c.status, STATUS_STYLES.get(c.status, "")), "  ",
            bar(c.progress, 20), f"  {count(c.done)}/{count(c.total)} done",
            f"\nrate {rate(c.rate)}  ETA {duration(c.eta)}")
        limits = ", ".join(f"{k} {v}" for k, v in detail.rate_limits.items() if v is not None)
        schedule = ", ".join(f"{k} {v}" for k, v in detail.schedule.items() if v) or "-"
        summary.update(Text.assemble(
            line, f"  relay {c.relay or '-'}  limits {limits or '-'}",
            f"\nschedule {schedule}  started {when(c.started_at, now)}"
            f"  finished {when(c.finished_at, now)}"))
        states = self.query_one("#states", DataTable)
        states.clear()
        for state, n in {**detail.states, "unsubscribed": c.unsubscribed,
                         "complained": c.complained}.items():
            states.add_row(state, Text(count(n), justify="right"),
                           Text(percent(n / c.total) if c.total else "-", justify="right"))
        variants = self.query_one("#variants", DataTable)
        variants.clear()
        for v in detail.variants:
            variants.add_row(plain(v.name), "-" if v.percent is None else f"{v.percent:g}",
                             *(Text(count(v.counts.get(k, 0)), justify="right")
                               for k in COUNTED))
        reasons = self.query_one("#reasons", DataTable)
        reasons.clear()
        for domain, reason, n in detail.bounce_reasons:
            reasons.add_row(plain(domain), plain(reason), Text(count(n), justify="right"))
        self.query_one(EventFeed).show(detail.last_errors, {c.id: c.name}, now)

    def action_back(self) -> None:
        self.dismiss(None)

    def action_steer(self, action: str) -> None:
        self.post_message(Steer(self.campaign_id, action))
