"""The models' Core tables: SQLModel hides ``__table__`` from type checkers; hot paths use Core."""

from __future__ import annotations

import sqlalchemy as sa

from dispatcher.store.models import (
    Campaign,
    Delivery,
    Event,
    MailingList,
    Membership,
    RateCounter,
    Subscriber,
    Suppression,
)
from dispatcher.store.schedule_tables import CampaignRunner, ScheduleEntry, WarmupDay

subscriber_t: sa.Table = Subscriber.__table__  # type: ignore[attr-defined]
mailing_list_t: sa.Table = MailingList.__table__  # type: ignore[attr-defined]
membership_t: sa.Table = Membership.__table__  # type: ignore[attr-defined]
suppression_t: sa.Table = Suppression.__table__  # type: ignore[attr-defined]
campaign_t: sa.Table = Campaign.__table__  # type: ignore[attr-defined]
delivery_t: sa.Table = Delivery.__table__  # type: ignore[attr-defined]
event_t: sa.Table = Event.__table__  # type: ignore[attr-defined]
rate_counter_t: sa.Table = RateCounter.__table__  # type: ignore[attr-defined]
schedule_entry_t: sa.Table = ScheduleEntry.__table__  # type: ignore[attr-defined]
runner_t: sa.Table = CampaignRunner.__table__  # type: ignore[attr-defined]
warmup_t: sa.Table = WarmupDay.__table__  # type: ignore[attr-defined]
