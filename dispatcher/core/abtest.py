"""A/B tests of a campaign: variants of subject and/or template, a split, a winner rule."""

from __future__ import annotations

import hashlib
import re
from datetime import timedelta
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field, field_validator, model_validator

_DURATION = re.compile(r"^\s*(\d+(?:\.\d+)?)\s*([smhd])\s*$")


class Strict(BaseModel):
    """Campaign models: unknown keys are errors, values are immutable once loaded."""

    model_config = ConfigDict(extra="forbid", populate_by_name=True, frozen=True)


class TemplateRef(Strict):
    """Paths relative to the workspace: an ``.mjml`` or ``.html`` file and an optional text file."""

    html: str
    text: str | None = None

    @field_validator("html")
    @classmethod
    def _kind(cls, value: str) -> str:
        if not value.lower().endswith((".mjml", ".html", ".htm")):
            raise ValueError(f"template {value!r} must be an .mjml or .html file")
        return value


def template_shorthand(value: Any) -> Any:
    # ``template: templates/x.mjml`` is the common case; the mapping form adds a text part.
    return {"html": value} if isinstance(value, str) else value


class Variant(Strict):
    name: str = Field(min_length=1, max_length=32, pattern=r"^[A-Za-z0-9_-]+$")
    subject: str | None = None
    template: TemplateRef | None = None
    percent: float = Field(gt=0, le=100)

    @field_validator("template", mode="before")
    @classmethod
    def _template(cls, value: Any) -> Any:
        return template_shorthand(value)


def parse_duration(value: str) -> timedelta:
    match = _DURATION.match(value)
    if not match:
        raise ValueError(f"duration {value!r} must look like 30m, 4h or 2d")
    amount, unit = float(match.group(1)), match.group(2)
    return timedelta(seconds=amount * {"s": 1, "m": 60, "h": 3600, "d": 86400}[unit])


class Winner(Strict):
    """After ``after``, the rest of the audience gets the variant with the best ``by`` rate."""

    by: Literal["opens", "clicks"]
    after: str

    @field_validator("after")
    @classmethod
    def _after(cls, value: str) -> str:
        parse_duration(value)
        return value

    @property
    def wait(self) -> timedelta:
        return parse_duration(self.after)


class ABTest(Strict):
    """Variants of subject and/or template.

    Without ``winner`` the percentages are a fixed split and must add up to 100.
    With it, each variant goes to its test share and the rest waits for the winner.
    """

    variants: list[Variant] = Field(min_length=2, max_length=26)
    winner: Winner | None = None

    @model_validator(mode="after")
    def _split(self) -> ABTest:
        names = [v.name for v in self.variants]
        if len(set(names)) != len(names):
            raise ValueError("variant names must be unique")
        total = sum(v.percent for v in self.variants)
        if self.winner is None and abs(total - 100) > 1e-9:
            raise ValueError(f"a fixed split must add up to 100%, these add up to {total:g}%")
        if self.winner is not None and total >= 100:
            raise ValueError(f"test shares add up to {total:g}%: leave some of the audience "
                             f"for the winner")
        return self

    def variant(self, name: str) -> Variant:
        return next(v for v in self.variants if v.name == name)

    def assign(self, campaign_id: int, subscriber_id: int) -> str:
        """The variant a subscriber gets: stable across runs, workers and restarts.

        ``""`` means the subscriber is in the winner's share (only with a
        ``winner`` rule): they wait until the winner is known.
        """
        digest = hashlib.sha256(f"ab:{campaign_id}:{subscriber_id}".encode()).digest()
        point = int.from_bytes(digest[:8], "big") / 2**64 * 100
        edge = 0.0
        for v in self.variants:
            edge += v.percent
            if point < edge:
                return v.name
        return "" if self.winner is not None else self.variants[-1].name

    def pick_winner(self, results: dict[str, tuple[int, int]]) -> str:
        """The variant with the best rate by the winner rule's measure.

        ``results`` maps a variant to (messages sent, recipients who opened or
        clicked, as ``winner.by`` says). Ties, and variants nobody was sent, go
        to the variant listed first, so the choice is stable.
        """
        if self.winner is None:
            raise ValueError("this A/B test has a fixed split, not a winner rule")
        best, best_rate = self.variants[0].name, -1.0
        for v in self.variants:
            sent, hits = results.get(v.name, (0, 0))
            rate = hits / sent if sent else 0.0
            if rate > best_rate:
                best, best_rate = v.name, rate
        return best
