"""Where the dashboard's numbers come from: a :class:`DataSource`, injected into the app.

:class:`StoreSource` is the real one: it advances the rollups (cheap when the
daemon already did) and reads them with :mod:`dispatcher.store.stats`, so it
never counts the delivery table. Tests give the app a store full of prepared
data and a frozen clock.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from datetime import datetime
from typing import Protocol

from dispatcher.dashboard.actions import Action, ActionResult, apply
from dispatcher.store import stats
from dispatcher.store.database import Store
from dispatcher.store.models import utcnow

Clock = Callable[[], datetime]


@dataclass(frozen=True)
class Overview:
    """Everything the main screen shows, read at one moment."""

    at: datetime
    campaigns: list[stats.CampaignRow]
    throughput: stats.Throughput
    relays: list[stats.RelayHealth]
    domains: list[stats.DomainRow]
    events: list[stats.FeedRow]
    names: dict[int, str]


class DataSource(Protocol):
    def overview(self) -> Overview: ...

    def detail(self, campaign_id: int) -> stats.CampaignDetail | None: ...

    def act(self, campaign_id: int, action: Action) -> ActionResult: ...


class StoreSource:
    """The dashboard's view of a store; ``roll_up`` keeps the stats current without a daemon."""

    def __init__(self, store: Store, *, clock: Clock = utcnow, roll_up: bool = True,
                 minutes: int = 10) -> None:
        self.store = store
        self.clock = clock
        self.roll_up = roll_up
        self.minutes = minutes

    def _now(self) -> datetime:
        now = self.clock()
        if self.roll_up:
            stats.rollup(self.store, now)
        return now

    def overview(self) -> Overview:
        now = self._now()
        campaigns = stats.campaigns(self.store, now)
        return Overview(
            at=now, campaigns=campaigns,
            throughput=stats.throughput(self.store, now, minutes=self.minutes),
            relays=stats.relay_health(self.store, now),
            domains=stats.top_domains(self.store, now, limit=20),
            events=stats.recent_events(self.store, limit=50),
            names={c.id: c.name for c in campaigns})

    def detail(self, campaign_id: int) -> stats.CampaignDetail | None:
        return stats.campaign_detail(self.store, campaign_id, self._now())

    def act(self, campaign_id: int, action: Action) -> ActionResult:
        return apply(self.store, campaign_id, action, self.clock())
