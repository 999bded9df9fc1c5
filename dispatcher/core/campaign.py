"""The campaign definition: what a marketer writes in ``campaigns/*.yaml``.

Pure data with validation; reading the YAML file (and pointing at the line of
a mistake) is :mod:`dispatcher.campaigns.loader`'s job. A full example::

    name: spring-sale
    from: {name: "Shop Team", address: news@shop.example}
    reply_to: help@shop.example
    subject: "{{ first_name | default('Hi') }}, spring is here"
    preheader: "Up to 30% off until Sunday"
    template: {html: templates/spring.mjml, text: templates/spring.txt}
    audience:
      lists: [customers, newsletter]
      where: "country == 'DE' and plan in ['pro', 'team']"
    variables: {discount: 30}
    headers: {X-Campaign: spring}
    relay: default            # or relays: [a, b] for a pool
    rate: {per_second: 50, per_hour: 20000, connections: 8}
    schedule: {at: "2026-03-20T09:00:00+01:00"}
    tracking: {opens: true, clicks: true}
    ab_test:
      variants:
        - {name: a, subject: "Spring is here", percent: 10}
        - {name: b, subject: "30% off, this week only", percent: 10}
      winner: {by: opens, after: 4h}
"""

from __future__ import annotations

import re
from collections.abc import Callable
from datetime import datetime
from typing import Any

from email_validator import EmailNotValidError, validate_email
from pydantic import Field, field_validator, model_validator

from dispatcher.core import schedule, segment
from dispatcher.core.abtest import (
    ABTest,
    Strict,
    TemplateRef,
    Variant,
    Winner,
    parse_duration,
    template_shorthand,
)

_HEADER_NAME = re.compile(r"^[!-9;-~]+$")  # RFC 5322 2.2: printable ASCII except ':'
# Headers the renderer writes itself; a campaign may not replace them.
RESERVED_HEADERS = frozenset(h.lower() for h in (
    "From", "To", "Cc", "Bcc", "Subject", "Date", "Message-ID", "Reply-To", "Return-Path",
    "MIME-Version", "Content-Type", "Content-Transfer-Encoding", "List-Unsubscribe",
    "List-Unsubscribe-Post", "List-Id", "Feedback-ID", "DKIM-Signature", "Sender",
))


__all__ = ["ABTest", "Audience", "Campaign", "Rate", "Schedule", "Sender", "TemplateRef",
           "Tracking", "Variant", "Window", "Winner", "parse_duration"]


def check_address(value: str) -> str:
    """A deliverable-looking address (syntax only, no DNS), IDN domains accepted."""
    if any(ch in value for ch in "\r\n\0"):
        raise ValueError("an address cannot contain a line break or NUL")
    try:
        # No SMTPUTF8: a non-ASCII local part could not be written in our headers.
        result = validate_email(value, check_deliverability=False, allow_smtputf8=False)
    except EmailNotValidError as exc:
        raise ValueError(f"{value!r} is not a valid email address: {exc}") from None
    return result.normalized


def _single_line(value: str, what: str) -> str:
    if any(ch in value for ch in "\r\n\0"):
        raise ValueError(f"{what} must be one line (no line breaks or NUL)")
    return value


class Sender(Strict):
    name: str = ""
    address: str

    @field_validator("address")
    @classmethod
    def _address(cls, value: str) -> str:
        return check_address(value)

    @field_validator("name")
    @classmethod
    def _name(cls, value: str) -> str:
        return _single_line(value, "the sender name")


class Audience(Strict):
    lists: list[str] = Field(min_length=1)
    where: str | None = None

    @field_validator("lists", mode="before")
    @classmethod
    def _one_list(cls, value: Any) -> Any:
        return [value] if isinstance(value, str) else value

    @field_validator("where")
    @classmethod
    def _where(cls, value: str | None) -> str | None:
        if value is not None:
            try:
                segment.parse(value)
            except segment.SegmentError as exc:
                at = f" at column {exc.column}" if exc.column else ""
                raise ValueError(f"bad filter{at}: {exc.message}") from None
        return value

    def filter(self) -> segment.Node | None:
        return segment.parse(self.where) if self.where else None


class Rate(Strict):
    """Overrides of the relay's limits for this campaign (the stricter one wins)."""

    per_second: float | None = Field(default=None, gt=0)
    per_minute: float | None = Field(default=None, gt=0)
    per_hour: float | None = Field(default=None, gt=0)
    per_day: float | None = Field(default=None, gt=0)
    connections: int | None = Field(default=None, ge=1, le=500)
    per_connection: int | None = Field(default=None, ge=1)


def _by_scheduler(check: Callable[[str], object], value: str | None) -> str | None:
    """``value`` if the scheduler's own parser accepts it (one grammar for both)."""
    if value is not None:
        try:
            check(value)
        except schedule.ScheduleError as exc:
            raise ValueError(str(exc)) from None
    return value


class Window(Strict):
    """Only send inside these days and hours (``hours: "09:00-17:00"``).

    ``days`` takes ``mon-fri``, ``[mon, wed, fri]`` or ``sat,sun``; ``zone`` is an
    IANA zone, ``sender`` (the schedule's timezone) or ``recipient`` (each
    subscriber's own). The grammar is the scheduler's (:mod:`dispatcher.core.schedule`).
    """

    days: list[str] | str = "mon-sun"
    hours: str = "00:00-24:00"
    zone: str | None = None

    @model_validator(mode="after")
    def _parses(self) -> Window:
        try:
            schedule.SendWindow.parse(self.days, self.hours)
        except schedule.ScheduleError as exc:
            raise ValueError(str(exc)) from None
        if self.zone not in ("sender", "recipient"):
            _by_scheduler(schedule.zone, self.zone)
        return self


class Schedule(Strict):
    """When to send (the scheduler's business); at most one of ``at``, ``cron``, ``local_time``.

    ``at`` is an ISO time with a UTC offset, or ``2026-12-01T09:00 Europe/Berlin``,
    or a time without either, read in ``timezone`` (default UTC).
    """

    at: datetime | None = None
    cron: str | None = None
    local_time: str | None = None  # "09:00": each subscriber's own morning
    window: Window | None = None
    timezone: str | None = None
    timezone_attribute: str | None = None

    @model_validator(mode="before")
    @classmethod
    def _at_with_zone(cls, data: Any) -> Any:
        if isinstance(data, dict) and isinstance(data.get("at"), str):
            given = data.get("timezone")
            default = given if isinstance(given, str) else "UTC"
            try:
                return {**data, "at": schedule.parse_at(data["at"], default_zone=default)}
            except schedule.ScheduleError as exc:
                raise ValueError(str(exc)) from None
        return data

    @field_validator("at")
    @classmethod
    def _aware(cls, value: datetime | None) -> datetime | None:
        if value is not None and value.tzinfo is None:
            raise ValueError("'at' needs a UTC offset or a zone, e.g. 2026-03-20T09:00 "
                             "Europe/Berlin")
        return value

    @field_validator("timezone")
    @classmethod
    def _zone(cls, value: str | None) -> str | None:
        return _by_scheduler(schedule.zone, value)

    @field_validator("cron")
    @classmethod
    def _cron(cls, value: str | None) -> str | None:
        if value is not None and len(value.split()) != 5:
            raise ValueError(f"cron {value!r} needs five fields: minute hour day month weekday")
        return value

    @field_validator("local_time")
    @classmethod
    def _local_time(cls, value: str | None) -> str | None:
        return _by_scheduler(schedule.parse_clock, value)

    @model_validator(mode="after")
    def _one_trigger(self) -> Schedule:
        given = [k for k in ("at", "cron", "local_time") if getattr(self, k) is not None]
        if len(given) > 1:
            joined = " and ".join(given)
            raise ValueError(f"schedule takes one of at, cron, local_time, not {joined}")
        return self


class Tracking(Strict):
    opens: bool = False
    clicks: bool = False


class Campaign(Strict):
    name: str = Field(min_length=1, max_length=200)
    sender: Sender = Field(alias="from")
    reply_to: str | None = None
    subject: str = Field(min_length=1)
    preheader: str = ""
    template: TemplateRef
    audience: Audience
    variables: dict[str, Any] = Field(default_factory=dict)
    headers: dict[str, str] = Field(default_factory=dict)
    relay: str | None = None
    relays: list[str] = Field(default_factory=list)
    rate: Rate = Field(default_factory=Rate)
    schedule: Schedule | None = None
    tracking: Tracking = Field(default_factory=Tracking)
    ab_test: ABTest | None = None

    @field_validator("template", mode="before")
    @classmethod
    def _template(cls, value: Any) -> Any:
        return template_shorthand(value)

    @field_validator("sender", mode="before")
    @classmethod
    def _sender_shorthand(cls, value: Any) -> Any:
        if isinstance(value, str):
            return {"address": value}
        return value

    @field_validator("reply_to")
    @classmethod
    def _reply_to(cls, value: str | None) -> str | None:
        return None if value is None else check_address(value)

    @field_validator("subject", "preheader")
    @classmethod
    def _one_line(cls, value: str) -> str:
        return _single_line(value, "subject and preheader")

    @field_validator("headers")
    @classmethod
    def _headers(cls, value: dict[str, str]) -> dict[str, str]:
        for key, text in value.items():
            if not _HEADER_NAME.match(key):
                raise ValueError(f"{key!r} is not a valid header name")
            if key.lower() in RESERVED_HEADERS:
                raise ValueError(f"header {key!r} is set by dispatcher and cannot be overridden")
            _single_line(str(text), f"header {key!r}")
        return value

    @model_validator(mode="after")
    def _one_relay_choice(self) -> Campaign:
        if self.relay and self.relays:
            raise ValueError("give either 'relay' or a 'relays' pool, not both")
        return self

    @property
    def relay_pool(self) -> list[str]:
        """The relays to spread this campaign over (empty: the workspace default)."""
        return list(self.relays) if self.relays else ([self.relay] if self.relay else [])

    def template_paths(self) -> list[str]:
        """Every template file the campaign and its variants name."""
        refs = [self.template]
        if self.ab_test:
            refs += [v.template for v in self.ab_test.variants if v.template]
        paths: list[str] = []
        for ref in refs:
            paths += [p for p in (ref.html, ref.text) if p and p not in paths]
        return paths
