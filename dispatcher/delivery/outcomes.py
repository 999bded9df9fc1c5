"""What one reply (or the lack of one) means for a delivery row.

* 2xx: ``sent``.
* 4xx, no reply at all (dropped, timed out, relay down), and the "temporary
  5xx" of RFC 5321 §4.5.3.1.10 (552) and full mailboxes (``5.2.2``):
  ``deferred`` with exponential backoff and jitter, until the retry policy's
  maximum age; then ``failed`` as a soft bounce (RFC 3463 ``4.4.7``).
* other 5xx: ``bounced``, hard or soft as H6's ``classify_reply`` says (hard
  only when waiting cannot help: unknown user or domain, null MX).
"""

from __future__ import annotations

import random
from datetime import datetime

from dispatcher.core.backoff import RetryPolicy
from dispatcher.core.replies import classify_reply, parse_status
from dispatcher.delivery.queue import Claimed, Outcome


def outcome_for(claimed: Claimed, code: int | None, text: str, *, now: datetime,
                policy: RetryPolicy, message_id: str | None = None, variant: str = "",
                status: str | None = None, not_before: datetime | None = None,
                attempted: bool = True, rng: random.Random | None = None,
                relay: str = "") -> Outcome:
    status = status or parse_status(text)
    if code is not None and 200 <= code < 300:
        return Outcome(claimed, "sent", code, status, text, message_id, variant=variant,
                       relay=relay)
    verdict = classify_reply(code, text) if code is not None else None
    retry = (code is None or 400 <= code < 500 or code == 552 or status == "5.2.2"
             or (verdict is not None and verdict.reason == "mailbox_full"))
    if retry:
        attempts = claimed.attempts + (1 if attempted else 0)
        at = policy.next_attempt(first_attempt_at=claimed.first_attempt_at, now=now,
                                 attempts=max(attempts, 1), rng=rng, not_before=not_before)
        reason = verdict.reason if verdict is not None else "network"
        if at is None:
            return Outcome(claimed, "failed", code, status or "4.4.7",
                           f"gave up after {policy.max_age} of retries; last reply: {text}",
                           variant=variant, kind="soft", reason="expired", attempted=attempted,
                           relay=relay)
        return Outcome(claimed, "deferred", code, status, text, next_attempt_at=at,
                       variant=variant, kind="soft", reason=reason, attempted=attempted,
                       relay=relay)
    assert verdict is not None
    kind = "hard" if verdict.kind == "hard" else "soft"
    return Outcome(claimed, "bounced", code, status or verdict.status, text, variant=variant,
                   kind=kind, reason=verdict.reason, relay=relay)
