"""Relay health: state, rate against its limit, open connections, last error."""

from __future__ import annotations

from datetime import datetime

from rich.text import Text
from textual.widgets import DataTable

from dispatcher.dashboard.widgets.format import HEALTH_STYLES, clip, rate, styled, when
from dispatcher.store.stats import RelayHealth


class RelayTable(DataTable[Text | str]):
    def __init__(self, *, id: str | None = None) -> None:
        super().__init__(id=id, cursor_type="none", zebra_stripes=True)
        self.border_title = "Relays"

    def on_mount(self) -> None:
        for label in ("Relay", "Health", "Rate/limit", "Conn", "Last error"):
            self.add_column(label, key=label)

    def show(self, relays: list[RelayHealth], now: datetime) -> None:
        self.clear()
        for r in relays:
            limit = f" / {rate(r.rate_limit)}" if r.rate_limit else ""
            error = (Text.assemble(when(r.last_error_at, now), " ", clip(r.last_error, 40))
                     if r.last_error else "-")
            self.add_row(clip(r.relay, 28), styled(r.health, HEALTH_STYLES), rate(r.rate) + limit,
                         "-" if r.connections is None else str(r.connections), error,
                         key=r.relay)
