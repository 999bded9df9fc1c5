"""Bounce and complaint figures by kind, reason and receiving domain, from the event log."""

from __future__ import annotations

from collections import Counter
from dataclasses import dataclass, field

import sqlalchemy as sa

from dispatcher.errors import NotFoundError
from dispatcher.store.database import Store
from dispatcher.store.tables import campaign_t, event_t, subscriber_t

KINDS = ("bounced", "complained", "unsubscribed", "autoreply", "delivered", "suppressed")


@dataclass
class FeedbackReport:
    campaign: str | None
    by_kind: Counter[str] = field(default_factory=Counter)
    by_reason: Counter[str] = field(default_factory=Counter)
    by_domain: Counter[str] = field(default_factory=Counter)

    def as_dict(self) -> dict[str, object]:
        return {"campaign": self.campaign, "by_kind": dict(self.by_kind),
                "by_reason": dict(self.by_reason), "by_domain": dict(self.by_domain)}


def feedback_report(store: Store, campaign: str | None = None) -> FeedbackReport:
    """Counts of feedback events; bounces split hard/soft, reasons and domains for bounces."""
    query = (sa.select(event_t.c.kind, event_t.c.reason, event_t.c.data, subscriber_t.c.email)
             .join(subscriber_t, subscriber_t.c.id == event_t.c.subscriber_id, isouter=True)
             .where(event_t.c.kind.in_(KINDS)))
    with store.engine.connect() as conn:
        if campaign is not None:
            cid = conn.execute(sa.select(campaign_t.c.id).where(campaign_t.c.name == campaign)
                               ).scalar()
            if cid is None:
                raise NotFoundError(f"no campaign named {campaign!r}")
            query = query.where(event_t.c.campaign_id == cid)
        rows = conn.execute(query).all()
    report = FeedbackReport(campaign)
    for kind, reason, data, email in rows:
        label = kind
        if kind == "bounced":
            # SMTP-time bounces not yet swept carry no verdict: count them as "bounced".
            label = f"bounced:{(data or {}).get('kind', 'unclassified')}"
            report.by_reason[reason or "unclassified"] += 1
            report.by_domain[(email or "?").rpartition("@")[2].lower()] += 1
        report.by_kind[label] += 1
    return report
