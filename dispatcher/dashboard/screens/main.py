"""The main screen: campaigns, throughput, relays, domains and the event feed at a glance."""

from __future__ import annotations

from typing import ClassVar

from textual.app import ComposeResult
from textual.binding import Binding, BindingType
from textual.containers import Horizontal
from textual.screen import Screen
from textual.widgets import DataTable, Footer, Header

from dispatcher.dashboard.messages import OpenCampaign, Steer
from dispatcher.dashboard.source import Overview
from dispatcher.dashboard.widgets.campaign_table import CampaignTable
from dispatcher.dashboard.widgets.domains import DomainTable
from dispatcher.dashboard.widgets.event_feed import EventFeed
from dispatcher.dashboard.widgets.relays import RelayTable
from dispatcher.dashboard.widgets.throughput import ThroughputChart

STEERING = [
    Binding("p", "steer('pause')", "Pause"),
    Binding("r", "steer('resume')", "Resume"),
    Binding("c", "steer('cancel')", "Cancel"),
    Binding("f", "steer('retry_failed')", "Retry failed"),
    Binding("s", "steer('schedule')", "Schedule"),
    Binding("u", "steer('unschedule')", "Unschedule"),
]


class MainScreen(Screen[None]):
    BINDINGS: ClassVar[list[BindingType]] = [
        Binding("enter", "open", "Details", show=False), *STEERING]

    def compose(self) -> ComposeResult:
        yield Header()
        yield CampaignTable(id="campaigns")
        with Horizontal(id="middle"):
            yield ThroughputChart(id="throughput")
            yield RelayTable(id="relays")
        with Horizontal(id="bottom"):
            yield DomainTable(id="domains")
            yield EventFeed(id="events")
        yield Footer()

    def on_mount(self) -> None:
        self.query_one(CampaignTable).border_title = "Campaigns"
        self.query_one(CampaignTable).focus()

    async def show(self, overview: Overview) -> None:
        self.query_one(CampaignTable).show(overview.campaigns, overview.at)
        await self.query_one(ThroughputChart).show(overview.throughput)
        self.query_one(RelayTable).show(overview.relays, overview.at)
        self.query_one(DomainTable).show(overview.domains)
        self.query_one(EventFeed).show(overview.events, overview.names, overview.at)

    @property
    def campaign_id(self) -> int | None:
        return self.query_one(CampaignTable).campaign_id

    def on_data_table_row_selected(self, event: DataTable.RowSelected) -> None:
        if isinstance(event.data_table, CampaignTable):
            self.action_open()

    def action_open(self) -> None:
        if self.campaign_id is not None:
            self.post_message(OpenCampaign(self.campaign_id))

    def action_steer(self, action: str) -> None:
        if self.campaign_id is None:
            self.notify("no campaign selected", severity="warning")
            return
        self.post_message(Steer(self.campaign_id, action))
