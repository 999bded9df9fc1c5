"""Open and click tracking URLs, signed so they cannot be forged or turned into an open redirect.

* open pixel: ``{base}/o/{token}.gif``, token = sign(secret, "open", campaign, subscriber);
* click: ``{base}/c/{token}?u={url}``, token = sign(secret, "click:" + url, campaign,
  subscriber): the MAC covers the destination, so changing ``u`` invalidates the
  token and the redirect endpoint only ever sends people where *we* linked.

The web side (``dispatcher.web``) calls :func:`verify_open` / :func:`verify_click`
and redirects only when they return ids. Only ``http`` and ``https``
destinations are tracked or accepted.
"""

from __future__ import annotations

import re
from collections.abc import Callable
from urllib.parse import quote, urlsplit

from dispatcher.core import tokens

OPEN = "open"
CLICK = "click"
_HREF = re.compile(r"""(<a\b[^>]*?\bhref\s*=\s*)(["'])(.*?)\2""", re.IGNORECASE | re.DOTALL)
_BODY_END = re.compile(r"</body\s*>", re.IGNORECASE)
_ENTITY_AMP = "&amp;"


def trackable(url: str) -> bool:
    """Whether a link may be wrapped (and later followed): absolute http(s) only."""
    try:
        parts = urlsplit(url)
    except ValueError:
        return False
    return parts.scheme.lower() in ("http", "https") and bool(parts.netloc) and not any(
        ch in url for ch in "\r\n\0\t")


def open_url(base: str, secret: bytes, campaign_id: int, subscriber_id: int) -> str:
    return f"{base.rstrip('/')}/o/{tokens.sign(secret, OPEN, campaign_id, subscriber_id)}.gif"


def click_url(base: str, secret: bytes, campaign_id: int, subscriber_id: int, url: str) -> str:
    token = tokens.sign(secret, f"{CLICK}:{url}", campaign_id, subscriber_id)
    return f"{base.rstrip('/')}/c/{token}?u={quote(url, safe='')}"


def verify_open(secret: bytes, token: str) -> tuple[int, int] | None:
    """``(campaign_id, subscriber_id)`` of a genuine pixel token (``.gif`` suffix allowed)."""
    ids = tokens.verify(secret, OPEN, token.removesuffix(".gif"), 2)
    return None if ids is None else (ids[0], ids[1])


def verify_click(secret: bytes, token: str, url: str) -> tuple[int, int] | None:
    """``(campaign_id, subscriber_id)`` if ``token`` was made for exactly ``url``, else ``None``.

    ``url`` is the decoded ``u`` query parameter. Anything not http(s) is refused
    even with a valid token, so a leaked secret still cannot redirect to ``javascript:``.
    """
    if not trackable(url):
        return None
    ids = tokens.verify(secret, f"{CLICK}:{url}", token, 2)
    return None if ids is None else (ids[0], ids[1])


def rewrite_links(html: str, wrap: Callable[[str], str | None]) -> str:
    """Replace every ``<a href>`` whose ``wrap(url)`` gives a new URL (None leaves it alone).

    ``url`` is handed over with ``&amp;`` decoded, and the result is written back
    HTML-escaped, so query strings survive the round trip.
    """

    def repl(match: re.Match[str]) -> str:
        raw = match.group(3)
        url = raw.replace(_ENTITY_AMP, "&").strip()
        new = wrap(url)
        if new is None:
            return match.group(0)
        escaped = new.replace("&", _ENTITY_AMP).replace('"', "%22")
        return f'{match.group(1)}"{escaped}"'

    return _HREF.sub(repl, html)


def pixel_tag(url: str) -> str:
    return (f'<img src="{url}" width="1" height="1" alt="" '
            f'style="display:block;width:1px;height:1px;border:0" />')


def add_pixel(html: str, url: str) -> str:
    """The pixel just before ``</body>`` (or at the end when there is none)."""
    tag = pixel_tag(url)
    ends = [m.start() for m in _BODY_END.finditer(html)]
    if not ends:
        return html + tag
    return html[:ends[-1]] + tag + html[ends[-1]:]
