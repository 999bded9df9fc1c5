"""The Textual app: screens, refresh loop, and the actions that steer campaigns."""

from __future__ import annotations

import asyncio
from datetime import UTC, datetime
from typing import ClassVar

from sqlalchemy.exc import SQLAlchemyError
from textual.app import App
from textual.binding import Binding, BindingType

from dispatcher.dashboard.actions import ACTIONS, Action
from dispatcher.dashboard.messages import OpenCampaign, Steer
from dispatcher.dashboard.screens.campaign_detail import CampaignDetailScreen
from dispatcher.dashboard.screens.confirm import ConfirmScreen
from dispatcher.dashboard.screens.help import HelpScreen
from dispatcher.dashboard.screens.main import MainScreen
from dispatcher.dashboard.source import DataSource, Overview
from dispatcher.errors import DispatcherError

THEMES = ("textual-dark", "textual-light")


class DashboardApp(App[None]):
    """Watch and steer every campaign; reads everything through ``source``."""

    CSS_PATH = "dashboard.tcss"
    TITLE = "dispatcher"
    ENABLE_COMMAND_PALETTE = False
    BINDINGS: ClassVar[list[BindingType]] = [
        Binding("question_mark", "help", "Help", key_display="?"),
        Binding("t", "toggle_theme", "Theme"),
        Binding("q", "quit", "Quit"),
    ]

    def __init__(self, source: DataSource, *, location: str = "", interval: float = 1.0,
                 theme: str = "textual-dark") -> None:
        super().__init__()
        self.source = source
        self.location = location
        self.interval = interval
        self.theme = theme
        self.overview: Overview | None = None
        self._loading = asyncio.Lock()

    def on_mount(self) -> None:
        self.push_screen(MainScreen())
        self.call_after_refresh(self.reload)
        if self.interval > 0:
            self.set_interval(self.interval, self._tick)

    async def _tick(self) -> None:
        # A slow store must not pile refreshes up: skip a tick while one is running.
        if not self._loading.locked():
            await self.reload()

    @property
    def main(self) -> MainScreen:
        return next(s for s in self.screen_stack if isinstance(s, MainScreen))

    async def reload(self) -> None:
        """Read the source (in a thread, so the UI never waits on the store) and redraw."""
        async with self._loading:
            try:
                overview = await asyncio.to_thread(self.source.overview)
                detail_screen = self.screen if isinstance(self.screen,
                                                          CampaignDetailScreen) else None
                detail = (await asyncio.to_thread(self.source.detail, detail_screen.campaign_id)
                          if detail_screen else None)
            except (SQLAlchemyError, DispatcherError) as exc:
                self.sub_title = f"{self.location}  store unreachable: {exc}"[:200]
                return
            self.overview = overview
            self.sub_title = f"{overview.at:%H:%M:%S} UTC  {self.location}".strip()
            await self.main.show(overview)
            if detail_screen is not None and detail_screen.is_attached:
                detail_screen.show(detail, overview.at)

    async def on_open_campaign(self, message: OpenCampaign) -> None:
        screen = CampaignDetailScreen(message.campaign_id)
        await self.push_screen(screen)
        try:
            detail = await asyncio.to_thread(self.source.detail, message.campaign_id)
        except (SQLAlchemyError, DispatcherError) as exc:
            # The store went away between two refreshes: say so, keep the app running.
            self.notify(f"cannot read the campaign: {exc}"[:200], severity="error", markup=False)
            return
        screen.show(detail, self.overview.at if self.overview else datetime.now(UTC))

    async def on_steer(self, message: Steer) -> None:
        if message.action not in ACTIONS:
            return
        action: Action = message.action
        if action == "cancel":
            name = self._campaign_name(message.campaign_id)
            self.push_screen(
                ConfirmScreen(f"Cancel {name}? Queued deliveries will not be sent."),
                lambda yes: self._confirmed(yes, message.campaign_id))
            return
        await self._act(message.campaign_id, action)

    def _confirmed(self, yes: bool | None, campaign_id: int) -> None:
        if yes:
            self.run_worker(self._act(campaign_id, "cancel"), exclusive=False)

    async def _act(self, campaign_id: int, action: Action) -> None:
        try:
            result = await asyncio.to_thread(self.source.act, campaign_id, action)
        except (SQLAlchemyError, DispatcherError) as exc:
            self.notify(f"{action} failed: {exc}", severity="error", markup=False)
            return
        self.notify(result.message, severity="information" if result.ok else "warning",
                    markup=False)  # it names the campaign, which may hold "[...]"
        await self.reload()

    def _campaign_name(self, campaign_id: int) -> str:
        if self.overview is not None:
            return self.overview.names.get(campaign_id, f"campaign {campaign_id}")
        return f"campaign {campaign_id}"

    def action_help(self) -> None:
        if not isinstance(self.screen, HelpScreen):
            self.push_screen(HelpScreen())

    def action_toggle_theme(self) -> None:
        self.theme = THEMES[1] if self.theme == THEMES[0] else THEMES[0]
