"""The tables of the store, as SQLModel classes.

Conventions every table follows:

* times are UTC; :class:`UTCDateTime` stores them naive and hands them back
  timezone-aware, the same on SQLite and PostgreSQL;
* states are short lower-case strings (the ``*_STATES`` tuples list them);
* JSON columns are JSONB on PostgreSQL, JSON text on SQLite.

A change to a table is a change to the schema: it needs an Alembic revision
in ``store/migrations/versions`` (see ``docs/ARCHITECTURE.md``).
"""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any

import sqlalchemy as sa
from sqlalchemy.dialects.postgresql import JSONB
from sqlmodel import Field, SQLModel

JSONType = sa.JSON().with_variant(JSONB(), "postgresql")


class UTCDateTime(sa.types.TypeDecorator[datetime]):
    """A timestamp stored as naive UTC and returned as aware UTC."""

    impl = sa.DateTime
    cache_ok = True

    def process_bind_param(self, value: datetime | None, dialect: sa.Dialect) -> datetime | None:
        if value is None:
            return None
        if value.tzinfo is None:
            raise ValueError("naive datetime given to the store; use datetime.now(UTC)")
        return value.astimezone(UTC).replace(tzinfo=None)

    def process_result_value(self, value: datetime | None, dialect: sa.Dialect) -> datetime | None:
        return None if value is None else value.replace(tzinfo=UTC)


def utcnow() -> datetime:
    return datetime.now(UTC)


def sql_stamp(value: datetime) -> str:
    """``value`` as SQLAlchemy's SQLite DATETIME text, for statements written by hand.

    Microseconds always written, so text order is time order; PostgreSQL reads the same
    text into its naive UTC timestamp columns. Not strftime: it writes year 1 as "1",
    which nothing reads back (files carry .NET's 0001-01-01 as "no date").
    """
    return value.astimezone(UTC).replace(tzinfo=None).isoformat(" ", "microseconds")


def _ts(**kw: Any) -> Any:
    return Field(sa_type=UTCDateTime, **kw)


SUBSCRIBER_STATES = ("active", "unsubscribed", "bounced", "complained")
MEMBERSHIP_STATES = ("subscribed", "unsubscribed")
CAMPAIGN_STATES = (
    "draft", "scheduled", "running", "paused", "cancelled", "finished", "missed",
)
DELIVERY_STATES = ("queued", "claimed", "sent", "deferred", "bounced", "failed", "skipped")
TERMINAL_DELIVERY_STATES = ("sent", "bounced", "failed", "skipped")
EVENT_KINDS = (
    "sent", "deferred", "bounced", "failed", "skipped", "unsubscribed", "complained",
    "autoreply", "suppressed", "resubscribed", "error",
)


class Subscriber(SQLModel, table=True):
    id: int | None = Field(default=None, primary_key=True)
    # Normalised: domain lower-cased and IDNA-decoded to Unicode, local part as given.
    email: str = Field(max_length=320, unique=True)
    name: str = Field(default="", max_length=300)
    attributes: dict[str, Any] = Field(default_factory=dict, sa_type=JSONType)
    status: str = Field(default="active", max_length=16, index=True)
    created_at: datetime = _ts(default_factory=utcnow)
    updated_at: datetime = _ts(default_factory=utcnow)


class MailingList(SQLModel, table=True):
    __tablename__ = "mailing_list"
    id: int | None = Field(default=None, primary_key=True)
    name: str = Field(max_length=200, unique=True)
    description: str = Field(default="")
    created_at: datetime = _ts(default_factory=utcnow)


class Membership(SQLModel, table=True):
    list_id: int = Field(foreign_key="mailing_list.id", primary_key=True, ondelete="CASCADE")
    subscriber_id: int = Field(
        foreign_key="subscriber.id", primary_key=True, index=True, ondelete="CASCADE"
    )
    status: str = Field(default="subscribed", max_length=16)
    created_at: datetime = _ts(default_factory=utcnow)


class Suppression(SQLModel, table=True):
    """An address never to be mailed again, kept as a hash so erasure leaves no personal data."""

    email_hash: str = Field(primary_key=True, max_length=64)
    reason: str = Field(max_length=32)  # erased | complained | bounced | unsubscribed | manual
    created_at: datetime = _ts(default_factory=utcnow)


class Campaign(SQLModel, table=True):
    id: int | None = Field(default=None, primary_key=True)
    name: str = Field(max_length=200, unique=True)
    source_path: str = Field(default="")
    # The campaign definition as validated when it was queued, so a later edit
    # of the YAML cannot change a send that is under way.
    definition: dict[str, Any] = Field(default_factory=dict, sa_type=JSONType)
    status: str = Field(default="draft", max_length=16, index=True)
    relay: str = Field(default="")
    scheduled_at: datetime | None = _ts(default=None)
    started_at: datetime | None = _ts(default=None)
    finished_at: datetime | None = _ts(default=None)
    created_at: datetime = _ts(default_factory=utcnow)
    updated_at: datetime = _ts(default_factory=utcnow)


class Delivery(SQLModel, table=True):
    """One message of one campaign to one subscriber: the unit of the send queue."""

    __table_args__ = (
        sa.UniqueConstraint("campaign_id", "subscriber_id"),
        sa.Index("ix_delivery_claim", "campaign_id", "state", "next_attempt_at"),
    )
    id: int | None = Field(default=None, primary_key=True)
    campaign_id: int = Field(foreign_key="campaign.id", ondelete="CASCADE")
    subscriber_id: int = Field(foreign_key="subscriber.id", index=True, ondelete="CASCADE")
    # Receiving domain, copied at enqueue time for per-destination shaping and reports.
    domain: str = Field(default="", max_length=255)
    variant: str = Field(default="", max_length=32)
    state: str = Field(default="queued", max_length=16)
    attempts: int = Field(default=0)
    next_attempt_at: datetime | None = _ts(default=None)
    lease_owner: str | None = Field(default=None, max_length=100)
    lease_expires_at: datetime | None = _ts(default=None)
    last_code: int | None = Field(default=None)
    last_status: str | None = Field(default=None, max_length=16)  # RFC 3463, e.g. 5.1.1
    last_reply: str | None = Field(default=None)
    relay: str | None = Field(default=None, max_length=200)
    message_id: str | None = Field(default=None, max_length=255)
    first_attempt_at: datetime | None = _ts(default=None)
    sent_at: datetime | None = _ts(default=None)
    updated_at: datetime = _ts(default_factory=utcnow)


class Event(SQLModel, table=True):
    """Something that happened to a subscriber or a delivery, with its evidence."""

    __table_args__ = (sa.Index("ix_event_campaign_kind", "campaign_id", "kind"),)
    id: int | None = Field(default=None, primary_key=True)
    at: datetime = _ts(default_factory=utcnow, index=True)
    kind: str = Field(max_length=16)
    campaign_id: int | None = Field(default=None, foreign_key="campaign.id", ondelete="SET NULL")
    subscriber_id: int | None = Field(
        default=None, foreign_key="subscriber.id", index=True, ondelete="SET NULL"
    )
    delivery_id: int | None = Field(default=None)
    code: int | None = Field(default=None)
    status: str | None = Field(default=None, max_length=16)
    reason: str | None = Field(default=None, max_length=32)
    source: str = Field(default="", max_length=32)  # smtp | dsn | http | mailto | cli | import
    detail: str = Field(default="")
    data: dict[str, Any] = Field(default_factory=dict, sa_type=JSONType)


class RateCounter(SQLModel, table=True):
    """Messages counted per key and time window, shared by every worker and restart.

    ``key`` names what is limited (``relay:NAME``, ``domain:gmail.com``,
    ``warmup:example.com``); ``window`` is ``s``, ``m``, ``h`` or ``d`` and
    ``started_at`` the window's start.
    """

    __tablename__ = "rate_counter"
    key: str = Field(primary_key=True, max_length=255)
    window: str = Field(primary_key=True, max_length=1)
    started_at: datetime = _ts(primary_key=True)
    count: int = Field(default=0)


class Setting(SQLModel, table=True):
    """Store-wide values every worker must agree on (the signing secret, for one)."""

    key: str = Field(primary_key=True, max_length=100)
    value: str = Field(default="")
