"""A readable plain-text part from HTML: links kept as ``text (url)``.

Regular expressions rather than an HTML parser: the input is our own
template's output (MJML or a hand-written HTML file), it runs per recipient
when a campaign has no text template, and ``html.parser`` is ~20x slower.
"""

from __future__ import annotations

import re
from html import unescape

_BLOCKS = re.compile(r"(?is)<(script|style|head|title)\b.*?</\1\s*>|<!--.*?-->")
# The preheader is for the inbox list, not for the text part.
_HIDDEN = re.compile(r'(?is)<div\b[^>]*display:\s*none[^>]*>.*?</div>')
_LINK = re.compile(r"""(?is)<a\b[^>]*?\bhref\s*=\s*(?:"([^"]*)"|'([^']*)')[^>]*>(.*?)</a\s*>""")
_IMG_ALT = re.compile(r"""(?is)<img\b[^>]*?\balt\s*=\s*(?:"([^"]*)"|'([^']*)')[^>]*>""")
_ITEM = re.compile(r"(?i)<li\b[^>]*>")
_HEADING = re.compile(r"(?i)</?h[1-6]\b[^>]*>")
_BREAKS = re.compile(r"(?i)<br\s*/?>|</(p|div|tr|table|ul|ol|blockquote)\s*>|<hr\b[^>]*>")
_CELL = re.compile(r"(?i)</t[dh]\s*>")
_TAGS = re.compile(r"<[^>]+>")
_SPACES = re.compile(r"[ \t\r\f\v\u00a0]+")
_BLANKS = re.compile(r"\n{3,}")


def _link(match: re.Match[str]) -> str:
    # Entities stay as they are here and are decoded once, at the end, for the whole text.
    url = (match.group(1) if match.group(1) is not None else match.group(2) or "").strip()
    text = " ".join(_TAGS.sub(" ", match.group(3)).split())
    if not url or url.startswith("#"):
        return text
    shown = url.removeprefix("mailto:")
    if not text or unescape(text) in (unescape(url), unescape(shown)):
        return shown
    return f"{text} ({shown})"


def _alt(match: re.Match[str]) -> str:
    alt = match.group(1) if match.group(1) is not None else match.group(2)
    return f" {alt} " if alt else " "


def html_to_text(html: str) -> str:
    """Plain text for ``html``: blocks become lines, list items ``- ``, links ``text (url)``."""
    text = _BLOCKS.sub("", html)
    text = _HIDDEN.sub("", text)
    text = _LINK.sub(_link, text)
    text = _IMG_ALT.sub(_alt, text)
    text = _ITEM.sub("\n- ", text)
    text = _HEADING.sub("\n\n", text)
    text = _BREAKS.sub("\n", text)
    text = _CELL.sub(" ", text)
    text = unescape(_TAGS.sub("", text))
    lines = (_SPACES.sub(" ", line).strip() for line in text.split("\n"))
    return _BLANKS.sub("\n\n", "\n".join(lines)).strip() + "\n"
