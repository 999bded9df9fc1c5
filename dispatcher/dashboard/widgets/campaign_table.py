"""The campaigns table: status, progress bar, outcome counts, current rate and ETA."""

from __future__ import annotations

from datetime import datetime

from rich.text import Text
from textual.widgets import DataTable

from dispatcher.dashboard.widgets.format import (
    STATUS_STYLES,
    bar,
    count,
    duration,
    plain,
    rate,
    styled,
)
from dispatcher.dashboard.widgets.format import when as at_time
from dispatcher.store.stats import CampaignRow

# (label, key, shown in narrow terminals too)
COLUMNS = (
    ("Campaign", "name", True), ("Status", "status", True), ("Scheduled", "scheduled", False),
    ("Progress", "progress", True), ("Total", "total", False), ("Sent", "sent", True),
    ("Defer", "deferred", True), ("Bounce", "bounced", True), ("Fail", "failed", True),
    ("Unsub", "unsubscribed", False), ("Compl", "complained", False), ("Rate", "rate", True),
    ("ETA", "eta", True),
)
WIDE = 120  # terminal columns from which every column is shown


class CampaignTable(DataTable[Text | str]):
    """One row per campaign, keyed by campaign id so the cursor stays put across refreshes."""

    def __init__(self, *, id: str | None = None) -> None:
        super().__init__(id=id, cursor_type="row", zebra_stripes=True)
        self._wide: bool | None = None

    @property
    def campaign_id(self) -> int | None:
        if not self.row_count:
            return None
        key = self.coordinate_to_cell_key(self.cursor_coordinate).row_key.value
        return int(key) if key is not None else None

    def _cells(self, row: CampaignRow, now: datetime, wide: bool) -> list[Text | str]:
        values: dict[str, Text | str] = {
            "name": plain(row.name), "status": styled(row.status, STATUS_STYLES),
            "scheduled": at_time(row.scheduled_at, now),
            "progress": bar(row.progress, 10 if wide else 6),
            "rate": rate(row.rate), "eta": duration(row.eta),
        }
        cells: list[Text | str] = []
        for _, key, narrow in COLUMNS:
            if not (wide or narrow):
                continue
            value = values.get(key)
            if value is None:
                number = getattr(row, key)
                value = Text(count(number), justify="right",
                             style="red" if key in ("bounced", "failed") and number else "")
            cells.append(value)
        return cells

    def show(self, rows: list[CampaignRow], now: datetime) -> None:
        wide = self.app.size.width >= WIDE
        selected = self.campaign_id
        if wide != self._wide:
            self.clear(columns=True)
            for label, key, narrow in COLUMNS:
                if wide or narrow:
                    self.add_column(label, key=key)
            self._wide = wide
        else:
            self.clear()
        for row in rows:
            self.add_row(*self._cells(row, now, wide), key=str(row.id))
        if selected is not None and str(selected) in self.rows:
            self.move_cursor(row=self.get_row_index(str(selected)))
