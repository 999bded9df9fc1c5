"""The scheduler's tables: named schedules, which daemon runs a campaign, warm-up counts.

Created by migration ``0007``; APScheduler's own job table (``apscheduler_jobs``)
is created there too, so two daemons starting together do not race to create it.
"""

from __future__ import annotations

from datetime import datetime
from typing import Any

from sqlmodel import Field, SQLModel

from dispatcher.store.models import JSONType, UTCDateTime, utcnow


class ScheduleEntry(SQLModel, table=True):
    """A campaign waiting for its time: once (``at``) or recurring (``cron``)."""

    __tablename__ = "schedule_entry"
    name: str = Field(primary_key=True, max_length=200)
    kind: str = Field(max_length=8)  # at | cron
    cron: str = Field(default="", max_length=200)
    timezone: str = Field(default="UTC", max_length=64)
    source_path: str = Field(default="")
    definition: dict[str, Any] = Field(default_factory=dict, sa_type=JSONType)
    # As the user gave it (a relay name, a URL with ${VAR}, or "capture"): resolved at send time.
    relay: str = Field(default="")
    created_at: datetime = Field(default_factory=utcnow, sa_type=UTCDateTime)
    last_run_at: datetime | None = Field(default=None, sa_type=UTCDateTime)


class CampaignRunner(SQLModel, table=True):
    """The daemon that runs a started campaign's sending passes, under a renewable lease."""

    __tablename__ = "campaign_runner"
    campaign_id: int = Field(primary_key=True, foreign_key="campaign.id", ondelete="CASCADE")
    owner: str = Field(max_length=100)
    expires_at: datetime = Field(sa_type=UTCDateTime)


class WarmupDay(SQLModel, table=True):
    """Messages handed to relays per warm-up key (``domain:x`` or ``relay:y``) and UTC day."""

    __tablename__ = "warmup_day"
    key: str = Field(primary_key=True, max_length=255)
    day: datetime = Field(primary_key=True, sa_type=UTCDateTime)
    count: int = Field(default=0)
