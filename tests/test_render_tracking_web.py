"""The tracking contract end to end: links our renderer writes are the ones the web app follows."""

from __future__ import annotations

from pathlib import Path
from urllib.parse import urlsplit

import httpx
import pytest
import sqlalchemy as sa

from dispatcher.config import SendingConfig
from dispatcher.core.campaign import Campaign
from dispatcher.render import Recipient, Renderer
from dispatcher.store import Store
from dispatcher.store.models import Campaign as CampaignRow
from dispatcher.store.models import Event, Subscriber
from dispatcher.web.app import create_app

DATA = Path(__file__).parent / "data"
SENDING = SendingConfig(domain="news.shop.example",
                        unsubscribe_url="https://shop.example/unsubscribe/{token}")


@pytest.mark.asyncio
async def test_a_rendered_click_link_redirects_and_a_tampered_one_does_not(store: Store) -> None:
    with store.engine.begin() as conn:
        sid = conn.execute(sa.insert(Subscriber).values(email="t@example.org", name="T",
                                                        attributes={})
                           .returning(Subscriber.id)).scalar_one()
        cid = conn.execute(sa.insert(CampaignRow).values(name="spring", status="running")
                           .returning(CampaignRow.id)).scalar_one()
    c = Campaign.model_validate({
        "name": "spring", "from": "news@shop.example", "subject": "Hi",
        "template": "templates/variant_b.html", "audience": {"lists": ["x"]},
        "tracking": {"opens": True, "clicks": True}})
    r = Renderer(c, root=DATA, sending=SENDING, secret=store.secret(), campaign_id=cid)
    _, _, html, _ = r.render_parts(Recipient(sid, "t@example.org"))
    click = next(u for u in (h.split('"')[0] for h in html.split('href="')[1:])
                 if "/c/" in u).replace("&amp;", "&")
    pixel = html.split('src="')[1].split('"')[0]
    transport = httpx.ASGITransport(app=create_app(store, SENDING.unsubscribe_url))
    async with httpx.AsyncClient(transport=transport, base_url="https://shop.example") as web:
        parts = urlsplit(click)
        followed = await web.get(f"{parts.path}?{parts.query}")
        assert followed.status_code == 302
        assert followed.headers["location"] == "https://shop.example/b"
        forged = await web.get(parts.path, params={"u": "https://evil.example/"})
        assert forged.status_code != 302 and "location" not in forged.headers
        opened = await web.get(urlsplit(pixel).path)
        assert opened.status_code == 200 and opened.headers["content-type"] == "image/gif"
    with store.engine.connect() as conn:
        kinds = sorted(conn.execute(sa.select(Event.kind).where(
            Event.campaign_id == cid, Event.subscriber_id == sid)).scalars())
    assert kinds == ["clicked", "opened"]
