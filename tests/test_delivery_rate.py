"""Rate limits as the relay sees them: one worker, three worker processes sharing PostgreSQL.

The observed rate is measured from the arrival times at the relay, over a run
of several seconds, and must stay within 10% of the limit.
"""

from __future__ import annotations

import asyncio
import os
import subprocess
import sys
from collections import Counter
from datetime import UTC, datetime
from pathlib import Path

import pytest

from dispatcher.core.campaign import Campaign as Definition
from dispatcher.delivery import send_campaign
from dispatcher.render import Renderer
from dispatcher.smtp.relay import parse_relay
from dispatcher.store import Store
from tests.conftest import PG_URL
from tests.support.badrelay import BadRelay
from tests.test_delivery_engine import DATA, SENDING, seed, send, url

REPO = Path(__file__).resolve().parent.parent


def observed_rate(relay: BadRelay) -> float:
    times = sorted(a.at for a in relay.received)
    return (len(times) - 1) / (times[-1] - times[0])


def test_one_worker_keeps_the_relay_rate(store: Store) -> None:
    cid, renderer = seed(store, [f"u{i}@x.test" for i in range(100)])
    with BadRelay() as relay:
        summary = send(store, cid, renderer, url(relay, "&per_second=40"), connections=4)
        assert summary.outcomes == Counter(sent=100)
        assert observed_rate(relay) == pytest.approx(40, rel=0.10)


def worker_main(store_url: str, campaign_id: int, relay_url: str) -> None:
    """One worker process: what ``dispatcher worker`` runs for one campaign."""
    store = Store.open(store_url)
    with store.engine.connect() as conn:
        import sqlalchemy as sa

        data = conn.execute(sa.text("SELECT definition FROM campaign WHERE id = :i"),
                            {"i": campaign_id}).scalar_one()
    definition = Definition.model_validate(data)
    renderer = Renderer(definition, root=DATA, sending=SENDING, secret=b"k" * 32,
                        campaign_id=campaign_id)
    asyncio.run(send_campaign(store, campaign_id, renderer, parse_relay(relay_url),
                              connections=3, batch=20))
    store.close()


def test_three_worker_processes_share_one_rate_on_postgresql(pg_schema: str) -> None:
    store_url = f"{PG_URL}?options=-csearch_path%3D{pg_schema}"
    store = Store.open(store_url)
    try:
        with store.engine.begin() as conn:
            import sqlalchemy as sa

            for table in ("event", "delivery", "membership", "subscriber", "mailing_list",
                          "campaign", "rate_slot", "rate_counter"):
                conn.execute(sa.text(f'DELETE FROM "{table}"'))
        cid, _ = seed(store, [f"w{i}@x.test" for i in range(150)], name="three")
    finally:
        store.close()
    with BadRelay() as relay:
        relay_url = f"{relay.url}?starttls=off&per_second=40"
        code = (f"from tests.test_delivery_rate import worker_main; "
                f"worker_main({store_url!r}, {cid}, {relay_url!r})")
        env = {**os.environ, "PYTHONPATH": str(REPO)}
        workers = [subprocess.Popen([sys.executable, "-c", code], cwd=REPO, env=env)
                   for _ in range(3)]
        for worker in workers:
            assert worker.wait(timeout=60) == 0
        assert relay.recipients() == Counter({f"w{i}@x.test": 1 for i in range(150)})
        sessions = {a.session for a in relay.received}
        assert len(sessions) >= 6  # several connections from several processes took part
        assert observed_rate(relay) == pytest.approx(40, rel=0.10)


def test_weights_share_one_priority_and_spill_over_at_the_rate_limit(store: Store) -> None:
    cid, renderer = seed(store, [f"u{i}@x.test" for i in range(80)])
    with BadRelay() as a, BadRelay() as b:
        send(store, cid, renderer, [url(a, "&weight=3"), url(b, "&weight=1")], connections=2)
        assert len(a.received) + len(b.received) == 80
        assert len(a.received) == pytest.approx(60, abs=8)
    cid2, renderer2 = seed(store, [f"s{i}@x.test" for i in range(60)], name="spill")
    with BadRelay() as slow, BadRelay() as backup:
        started = datetime.now(UTC)
        send(store, cid2, renderer2, [url(slow, "&per_second=20"), url(backup, "&priority=1")],
             connections=2)
        took = (datetime.now(UTC) - started).total_seconds()
        # Alone, the limited relay would need 3 s; the backup took what it could not.
        assert len(slow.received) + len(backup.received) == 60
        assert len(backup.received) > 10 and took < 2.5
