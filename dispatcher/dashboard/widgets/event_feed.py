"""The newest noteworthy events: bounces with their reason, deferrals, unsubscribes, complaints."""

from __future__ import annotations

from datetime import datetime

from rich.text import Text
from textual.widgets import DataTable

from dispatcher.dashboard.widgets.format import KIND_STYLES, clip, styled, when
from dispatcher.store.stats import FeedRow


def describe(event: FeedRow) -> str:
    detail = event.detail
    parts = [str(p) for p in (event.code, event.status) if p and not detail.startswith(str(p))]
    return " ".join(p for p in (event.domain, *parts, detail) if p)


class EventFeed(DataTable[Text | str]):
    def __init__(self, *, id: str | None = None, title: str = "Events") -> None:
        super().__init__(id=id, cursor_type="none", zebra_stripes=True)
        self.border_title = title

    def on_mount(self) -> None:
        for label in ("Time", "Kind", "Campaign", "What"):
            self.add_column(label, key=label)

    def show(self, events: list[FeedRow], names: dict[int, str], now: datetime) -> None:
        self.clear()
        for e in events:
            name = names.get(e.campaign_id, "-") if e.campaign_id is not None else "-"
            self.add_row(when(e.at, now), styled(e.kind, KIND_STYLES), clip(name, 16),
                         clip(describe(e), 70), key=str(e.event_id))
