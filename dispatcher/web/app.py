"""The HTTP surface: unsubscribe (RFC 8058 one-click and a page), open and click tracking.

* ``POST {unsubscribe path}`` with ``List-Unsubscribe=One-Click`` (form-urlencoded
  or multipart, RFC 8058 §3.2) unsubscribes at once and answers ``200`` itself —
  no redirect, no page to load;
* ``GET`` shows a confirmation page with a button and a preference form (which
  lists to stay on); its ``POST`` applies the choice;
* ``GET /o/{token}.gif`` records an open and always returns the pixel;
  ``GET /c/{token}?u=URL`` records a click and redirects only to the URL the
  token was signed for (:mod:`dispatcher.core.tracking`).

Tokens are HMAC-SHA256 (:mod:`dispatcher.core.tokens`), verified in constant
time. A forged, truncated, cross-purpose or already-used token, and a token for
a subscriber who no longer exists, all get the same ``400`` page, so nobody
learns whether an address is on file.
"""

from __future__ import annotations

import email.parser
import email.policy
from typing import Any
from urllib.parse import parse_qs, urlsplit

import sqlalchemy as sa
from starlette.applications import Starlette
from starlette.concurrency import run_in_threadpool
from starlette.requests import Request
from starlette.responses import HTMLResponse, PlainTextResponse, RedirectResponse, Response
from starlette.routing import Route

from dispatcher.core import tokens, tracking
from dispatcher.feedback.policy import unsubscribe
from dispatcher.store.database import Store
from dispatcher.store.feedback_tables import feedback_seen
from dispatcher.store.models import utcnow
from dispatcher.store.tables import event_t, mailing_list_t, membership_t, subscriber_t
from dispatcher.web import pages

PIXEL = (b"GIF89a\x01\x00\x01\x00\x80\x00\x00\x00\x00\x00\xff\xff\xff!\xf9\x04\x01\x00\x00\x00"
         b"\x00,\x00\x00\x00\x00\x01\x00\x01\x00\x00\x02\x02D\x01\x00;")
_NO_STORE = {"Cache-Control": "no-store", "Referrer-Policy": "no-referrer",
             "X-Content-Type-Options": "nosniff", "Content-Security-Policy":
             "default-src 'none'; style-src 'unsafe-inline'; form-action 'self'"}
MAX_BODY = 64 * 1024


def _invalid() -> HTMLResponse:
    return HTMLResponse(pages.INVALID, status_code=400, headers=_NO_STORE)


async def _form(request: Request) -> dict[str, list[str]]:
    """The posted fields, urlencoded or multipart, without extra dependencies."""
    body = await request.body()
    if len(body) > MAX_BODY:
        return {}
    ctype = request.headers.get("content-type", "")
    if ctype.startswith("multipart/form-data"):
        msg = email.parser.BytesParser(policy=email.policy.HTTP).parsebytes(
            f"Content-Type: {ctype}\r\n\r\n".encode("latin-1") + body)
        fields: dict[str, list[str]] = {}
        for part in msg.iter_parts():
            name = part.get_param("name", header="content-disposition")
            if isinstance(name, str):
                fields.setdefault(name, []).append(str(part.get_content()).strip())
        return fields
    return parse_qs(body.decode("utf-8", "replace"), keep_blank_values=True)


class Web:
    """The application's state: the store and the unsubscribe path from the workspace."""

    def __init__(self, store: Store, unsubscribe_url: str) -> None:
        self.store = store
        self.secret = store.secret()
        path = urlsplit(unsubscribe_url).path or "/unsubscribe/{token}"
        self.unsubscribe_path = path if "{token}" in path else path.rstrip("/") + "/{token}"

    # -- unsubscribe -----------------------------------------------------------------------
    def _lookup(self, token: str) -> tuple[int, int, str] | None:
        ids = tokens.verify(self.secret, "unsub", token, 2)
        if ids is None:
            return None
        with self.store.engine.connect() as conn:
            used = conn.execute(sa.select(feedback_seen.c.key).where(
                feedback_seen.c.key == f"unsub:{token.lower()}")).first()
            row = conn.execute(sa.select(subscriber_t.c.email, subscriber_t.c.status).where(
                subscriber_t.c.id == ids[1])).first()
        if used is not None or row is None or row.status in ("unsubscribed", "complained"):
            return None
        return ids[0], ids[1], row.email

    def _lists(self, subscriber_id: int) -> list[tuple[int, str, bool]]:
        with self.store.engine.connect() as conn:
            rows = conn.execute(sa.select(mailing_list_t.c.id, mailing_list_t.c.name,
                                          membership_t.c.status)
                                .join(membership_t, membership_t.c.list_id == mailing_list_t.c.id)
                                .where(membership_t.c.subscriber_id == subscriber_id)
                                .order_by(mailing_list_t.c.name)).all()
        return [(r.id, r.name, r.status == "subscribed") for r in rows]

    async def unsubscribe_page(self, request: Request) -> Response:
        token = str(request.path_params["token"])
        found = await run_in_threadpool(self._lookup, token)
        if found is None:
            return _invalid()
        _cid, sid, address = found
        lists = await run_in_threadpool(self._lists, sid)
        return HTMLResponse(pages.confirm(str(request.url.path), address, lists),
                            headers=_NO_STORE)

    async def unsubscribe_post(self, request: Request) -> Response:
        token = str(request.path_params["token"])
        fields = await _form(request)
        found = await run_in_threadpool(self._lookup, token)
        if found is None:
            return _invalid()
        cid, sid, _address = found
        one_click = "One-Click" in fields.get("List-Unsubscribe", [])
        keep: list[int] = []
        if not one_click and fields.get("action", [""])[0] == "preferences":
            allowed = {lid for lid, _n, _s in await run_in_threadpool(self._lists, sid)}
            keep = [int(v) for v in fields.get("keep", []) if v.isdigit() and int(v) in allowed]
        elif not one_click and fields.get("action", [""])[0] != "all":
            return _invalid()
        # Keeping lists leaves the token usable for a later change of mind; leaving
        # everything consumes it, so a replayed request is refused.
        key = None if keep else f"unsub:{token.lower()}"
        ok = await run_in_threadpool(lambda: unsubscribe(
            self.store, sid, campaign_id=cid, source="http" if not one_click else "one-click",
            keep_lists=keep, key=key))
        if not ok:
            return _invalid()
        if one_click:
            return PlainTextResponse("Unsubscribed.\n", headers=_NO_STORE)
        message = ("Your choices are saved." if keep else
                   "You are unsubscribed and will receive no more newsletters from us.")
        return HTMLResponse(pages.done(message), headers=_NO_STORE)

    # -- tracking --------------------------------------------------------------------------
    def _record(self, kind: str, ids: tuple[int, int], data: dict[str, Any]) -> None:
        with self.store.engine.begin() as conn:
            conn.execute(event_t.insert().values(
                at=utcnow(), kind=kind, campaign_id=ids[0], subscriber_id=ids[1],
                source="http", detail="", data=data))

    async def open_pixel(self, request: Request) -> Response:
        ids = tracking.verify_open(self.secret, str(request.path_params["token"]))
        if ids is not None:
            await run_in_threadpool(self._record, "opened", ids, {})
        return Response(PIXEL, media_type="image/gif", headers=_NO_STORE)

    async def click(self, request: Request) -> Response:
        url = request.query_params.get("u", "")
        ids = tracking.verify_click(self.secret, str(request.path_params["token"]), url)
        if ids is None:
            return _invalid()
        await run_in_threadpool(self._record, "clicked", ids, {"url": url[:2000]})
        return RedirectResponse(url, status_code=302, headers={"Cache-Control": "no-store"})

    async def health(self, request: Request) -> Response:
        return PlainTextResponse("ok\n")


def create_app(store: Store, unsubscribe_url: str) -> Starlette:
    web = Web(store, unsubscribe_url)
    return Starlette(routes=[
        Route(web.unsubscribe_path, web.unsubscribe_page, methods=["GET"]),
        Route(web.unsubscribe_path, web.unsubscribe_post, methods=["POST"]),
        Route("/o/{token}", web.open_pixel, methods=["GET"]),
        Route("/c/{token}", web.click, methods=["GET"]),
        Route("/healthz", web.health, methods=["GET"]),
    ])
