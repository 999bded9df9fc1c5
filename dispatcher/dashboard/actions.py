"""Steering a campaign from the dashboard: each action is one guarded update in the store.

The daemon and the delivery engine read ``campaign.status`` when they claim
work, so a change here takes effect in every running worker. Pause, resume,
cancel and retry-failed are the engine's own (:mod:`dispatcher.delivery.control`,
as ``dispatcher campaign ...`` uses them); schedule and unschedule name the
states they may start from, so two operators acting at once cannot clash.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime
from typing import Literal

import sqlalchemy as sa

from dispatcher.delivery.control import retry_failed, set_status
from dispatcher.errors import DispatcherError
from dispatcher.store.database import Store
from dispatcher.store.tables import campaign_t

Action = Literal["pause", "resume", "cancel", "retry_failed", "schedule", "unschedule"]
ACTIONS: tuple[Action, ...] = ("pause", "resume", "cancel", "retry_failed", "schedule",
                               "unschedule")

# action -> (states it may start from, the state it leaves the campaign in)
_MOVES: dict[str, tuple[tuple[str, ...], str]] = {
    "schedule": (("draft", "missed"), "scheduled"),
    "unschedule": (("scheduled",), "draft"),
}


@dataclass(frozen=True)
class ActionResult:
    ok: bool
    message: str


def apply(store: Store, campaign_id: int, action: Action, now: datetime) -> ActionResult:
    """Carry out ``action`` on the campaign; the result says what happened, or why not."""
    with store.engine.connect() as conn:
        row = conn.execute(sa.select(campaign_t.c.name, campaign_t.c.status,
                                     campaign_t.c.scheduled_at, campaign_t.c.definition)
                           .where(campaign_t.c.id == campaign_id)).first()
    if row is None:
        return ActionResult(False, f"no campaign with id {campaign_id}")
    if action == "retry_failed":
        try:
            count = retry_failed(store, row.name)
        except DispatcherError as exc:
            return ActionResult(False, str(exc))
        if not count:
            return ActionResult(False, f"{row.name}: no failed deliveries to retry")
        return ActionResult(True, f"{row.name}: {count} failed deliveries queued again")
    if action in ("pause", "resume", "cancel"):
        # The engine's own control, so a cancel also skips the queue as the engine expects.
        try:
            return ActionResult(True, f"{row.name} is now {set_status(store, row.name, action)}")
        except DispatcherError as exc:
            return ActionResult(False, str(exc))
    allowed, target = _MOVES[action]
    if row.status not in allowed:
        return ActionResult(False, f"{row.name} is {row.status}: cannot {action} it")
    values: dict[str, object] = {"status": target, "updated_at": now}
    if action == "schedule":
        at = row.scheduled_at or _definition_time(row.definition)
        if at is None:
            return ActionResult(False, f"{row.name} has no schedule time (schedule.at)")
        values["scheduled_at"] = at
    with store.engine.begin() as conn:
        done = conn.execute(campaign_t.update().where(
            campaign_t.c.id == campaign_id, campaign_t.c.status.in_(allowed)).values(**values))
    if not done.rowcount:
        return ActionResult(False, f"{row.name} changed meanwhile: not {target}")
    return ActionResult(True, f"{row.name} is now {target}")


def _definition_time(definition: dict[str, object] | None) -> datetime | None:
    schedule = (definition or {}).get("schedule")
    at = schedule.get("at") if isinstance(schedule, dict) else None
    if not isinstance(at, str):
        return None
    try:
        parsed = datetime.fromisoformat(at)
    except ValueError:
        return None
    return parsed if parsed.tzinfo is not None else None
