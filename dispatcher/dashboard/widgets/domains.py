"""Top receiving domains: sent, deferred, bounce rate and whether they are pushing back."""

from __future__ import annotations

from rich.text import Text
from textual.widgets import DataTable

from dispatcher.dashboard.widgets.format import count, percent, plain
from dispatcher.store.stats import DomainRow


class DomainTable(DataTable[Text | str]):
    def __init__(self, *, id: str | None = None) -> None:
        super().__init__(id=id, cursor_type="none", zebra_stripes=True)
        self.border_title = "Domains"

    def on_mount(self) -> None:
        for label in ("Domain", "Sent", "Defer", "Bounce", "Backoff"):
            self.add_column(label, key=label)

    def show(self, domains: list[DomainRow]) -> None:
        self.clear()
        for d in domains:
            bounce = Text(percent(d.bounce_rate), justify="right",
                          style="red" if d.bounce_rate >= 0.05 else "")
            backoff = Text("backoff", style="yellow") if d.backoff else Text("-", style="dim")
            self.add_row(plain(d.domain), Text(count(d.sent), justify="right"),
                         Text(count(d.deferred), justify="right"), bounce, backoff, key=d.domain)
