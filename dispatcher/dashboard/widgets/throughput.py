"""Live throughput: one sparkline per relay, messages per second over the last minutes."""

from __future__ import annotations

from rich.text import Text
from textual.app import ComposeResult
from textual.containers import Vertical
from textual.widget import Widget
from textual.widgets import Label, Sparkline

from dispatcher.dashboard.widgets.format import rate
from dispatcher.store.stats import BUCKET_SECONDS, Throughput

MAX_RELAYS = 4


class ThroughputChart(Vertical):
    """Redrawn on every refresh; a relay gets a sparkline when it first sends."""

    def __init__(self, *, id: str | None = None) -> None:
        super().__init__(id=id)
        self.border_title = "Throughput"
        self._relays: list[str] = []

    def compose(self) -> ComposeResult:
        yield Label("no sends in the last minutes", id="throughput-empty")

    def series(self, relay: str) -> list[float]:
        """The numbers drawn for ``relay`` (what tests look at)."""
        return list(self.query_one(f"#spark-{self._relays.index(relay)}", Sparkline).data or [])

    async def show(self, data: Throughput) -> None:
        relays = [r for r, values in data.per_relay.items() if any(values)][:MAX_RELAYS]
        minutes = len(data.buckets) * BUCKET_SECONDS // 60
        self.border_subtitle = f"msg/s, last {minutes} min"
        if relays != self._relays:
            await self.remove_children()
            widgets: list[Widget] = []
            for i in range(len(relays)):
                widgets += [Label(id=f"spark-label-{i}", classes="spark-label"),
                            Sparkline([], id=f"spark-{i}", summary_function=max)]
            if not relays:
                widgets.append(Label("no sends in the last minutes", id="throughput-empty"))
            await self.mount_all(widgets)
            self._relays = relays
        for i, relay in enumerate(relays):
            values = data.per_relay[relay]
            now = values[-1] if values else 0.0
            self.query_one(f"#spark-label-{i}", Label).update(Text.assemble(
                relay, "  ", (rate(now), "bold"), f"  peak {rate(max(values, default=0.0))}"))
            self.query_one(f"#spark-{i}", Sparkline).data = values
