"""The unsubscribe endpoints and tracking over real HTTP (uvicorn on 127.0.0.1, port 0)."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest
import sqlalchemy as sa

from dispatcher.core import tokens, tracking, verp
from dispatcher.store import Store
from dispatcher.store.models import Event, Membership, Subscriber
from dispatcher.web import RunningServer, create_app, start_server
from tests.test_feedback_policy import seed, status_of, suppressed

URL = "https://news.example.com/unsubscribe/{token}"


@pytest.fixture
def web(store: Store) -> Iterator[RunningServer]:
    server = start_server(create_app(store, URL))
    yield server
    server.stop()


def token(store: Store, cid: int, sid: int) -> str:
    return tokens.sign(store.secret(), "unsub", cid, sid)


def test_one_click_post_unsubscribes_without_redirect(store: Store, web: RunningServer) -> None:
    cid, ids, _ = seed(store, ["a@example.com", "b@example.com"])
    with httpx.Client(base_url=web.url, follow_redirects=False) as http:
        # RFC 8058 §3.2: the body a mail client posts, as urlencoded and as multipart.
        r = http.post(f"/unsubscribe/{token(store, cid, ids['a@example.com'])}",
                      data={"List-Unsubscribe": "One-Click"})
        assert r.status_code == 200 and "location" not in r.headers
        r = http.post(f"/unsubscribe/{token(store, cid, ids['b@example.com'])}",
                      files={"List-Unsubscribe": (None, "One-Click")})
        assert r.status_code == 200
    for email in ("a@example.com", "b@example.com"):
        assert status_of(store, ids[email]) == ("unsubscribed", ["unsubscribed"] * 2,
                                                ["sent", "skipped"])
    assert len(suppressed(store)) == 2
    with store.engine.connect() as conn:
        rows = conn.execute(sa.select(Event.kind, Event.source, Event.campaign_id)).all()
    assert sorted(rows) == [("unsubscribed", "one-click", cid)] * 2


def test_forged_truncated_replayed_and_cross_purpose_tokens_look_alike(
        store: Store, web: RunningServer) -> None:
    cid, ids, _ = seed(store, ["a@example.com"])
    sid = ids["a@example.com"]
    good = token(store, cid, sid)
    with httpx.Client(base_url=web.url) as http:
        assert http.post(f"/unsubscribe/{good}", data={"List-Unsubscribe": "One-Click"}
                         ).status_code == 200
        refused = [
            http.post(f"/unsubscribe/{good}", data={"List-Unsubscribe": "One-Click"}),  # replay
            http.get(f"/unsubscribe/{good}"),  # used link
            http.post(f"/unsubscribe/{good[:-3]}", data={"List-Unsubscribe": "One-Click"}),
            http.get(f"/unsubscribe/{tokens.sign(b'not the secret', 'unsub', cid, sid)}"),
            http.get(f"/unsubscribe/{token(store, cid, sid + 999)}"),  # no such subscriber
            http.get(f"/unsubscribe/{verp.make_token(store.secret(), cid, sid)}"),  # VERP token
            http.get("/unsubscribe/../../etc/passwd"),
        ]
    assert [r.status_code for r in refused[:-1]] == [400] * 6
    assert len({r.text for r in refused[:-1]}) == 1
    assert "a@example.com" not in refused[0].text and "a***" not in refused[0].text
    assert refused[-1].status_code in (400, 404)


def test_page_and_preference_form(store: Store, web: RunningServer) -> None:
    cid, ids, lists = seed(store, ["reader@example.com"])
    sid = ids["reader@example.com"]
    path = f"/unsubscribe/{token(store, cid, sid)}"
    with httpx.Client(base_url=web.url) as http:
        page = http.get(path)
        assert page.status_code == 200
        assert "r***@example.com" in page.text and "reader@example.com" not in page.text
        assert "<script" not in page.text and 'name="viewport"' in page.text
        assert page.headers["cache-control"] == "no-store"
        for name in ("weekly", "offers"):
            assert f"> {name}</label>" in page.text
        saved = http.post(path, data={"action": "preferences", "keep": str(lists["weekly"])})
        assert saved.status_code == 200 and "saved" in saved.text
        with store.engine.connect() as conn:
            by_list = dict(conn.execute(sa.select(Membership.list_id, Membership.status)).all())
        assert by_list == {lists["weekly"]: "subscribed", lists["offers"]: "unsubscribed"}
        # A changed mind later: the same link still works for leaving everything.
        assert "offers</label>" in http.get(path).text
        done = http.post(path, data={"action": "all"})
        assert done.status_code == 200 and "unsubscribed" in done.text
        assert http.post(path, data={"action": "all"}).status_code == 400
    with store.engine.connect() as conn:
        assert conn.execute(sa.select(Subscriber.status)).scalar() == "unsubscribed"


def test_open_pixel_and_click_redirect(store: Store, web: RunningServer) -> None:
    cid, ids, _ = seed(store, ["r@example.com"])
    sid = ids["r@example.com"]
    secret = store.secret()
    target = "https://example.org/article?id=7&x=1"
    with httpx.Client(base_url="http://unused", follow_redirects=False) as http:
        base = web.url
        pixel = http.get(tracking.open_url(base, secret, cid, sid))
        assert pixel.status_code == 200 and pixel.headers["content-type"] == "image/gif"
        forged_pixel = http.get(f"{base}/o/1-1-aaaaaaaaaaaaaaaa.gif")
        assert forged_pixel.status_code == 200 and forged_pixel.content == pixel.content
        click = http.get(tracking.click_url(base, secret, cid, sid, target))
        assert click.status_code == 302 and click.headers["location"] == target
        tampered = tracking.click_url(base, secret, cid, sid, target).replace(
            "example.org", "evil.example")
        assert http.get(tampered).status_code == 400
    with store.engine.connect() as conn:
        rows = conn.execute(sa.select(Event.kind, Event.subscriber_id, Event.data)).all()
    assert sorted((k, s) for k, s, _ in rows) == [("clicked", sid), ("opened", sid)]
    assert next(d for k, _, d in rows if k == "clicked") == {"url": target}


def test_dispatcher_web_command_serves(tmp_path: Path) -> None:
    import socket
    import subprocess
    import sys
    import time

    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
    proc = subprocess.Popen(
        [sys.executable, "-c", "from dispatcher.cli import main; main()", "--database",
         f"sqlite:///{tmp_path / 'store.db'}", "web", "--port", str(port)],
        cwd=tmp_path, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    try:
        deadline = time.monotonic() + 30
        while True:
            try:
                r = httpx.get(f"http://127.0.0.1:{port}/healthz", timeout=1)
                break
            except httpx.TransportError:
                assert proc.poll() is None and time.monotonic() < deadline
                time.sleep(0.1)
        assert (r.status_code, r.text) == (200, "ok\n")
        forged = httpx.post(f"http://127.0.0.1:{port}/unsubscribe/1-2-aaaaaaaaaaaaaaaa",
                            data={"List-Unsubscribe": "One-Click"})
        assert forged.status_code == 400
    finally:
        proc.terminate()
        proc.wait(timeout=10)
