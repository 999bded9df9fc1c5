"""Make compiled HTML cheap to send: short lines, no whitespace runs -- once per campaign.

MJML writes the whole body on one line of several KB, and RFC 5322 allows 998
bytes. Encoding every message as base64 or quoted-printable to fix that costs
more than everything else the renderer does (``b2a_qp`` ~15 µs/KB), so the
template is fixed instead, once, before Jinja ever runs:

* a line break replaces the space between two attributes of a start tag (or
  goes before a tag's ``>``), where HTML treats it exactly like a space;
* runs of spaces and tabs become one space (HTML collapses them anyway; not
  inside ``<pre>``/``<textarea>``), which also lets DKIM's relaxed body
  canonicalization skip its regular expressions.

Jinja tags are left untouched. An ASCII message goes as 7-bit, untouched; one
with non-ASCII text, or whose lines still end up too long (a 2 KB attribute
value), is encoded by the renderer (base64 for a large part).
"""

from __future__ import annotations

import re

LINE_LIMIT = 900  # leaves room under 998 for a Jinja value growing the line
_JINJA = re.compile(r"(\{\{.*?\}\}|\{%.*?%\}|\{#.*?#\})", re.DOTALL)
_WSP_RUNS = re.compile(r"[ \t]{2,}|[ \t]+(?=\n)")
_START_TAG = re.compile(r"<[A-Za-z][^<>]*>")
_PREFORMATTED = re.compile(r"<(pre|textarea)\b", re.IGNORECASE)


def _tag_breaks(tag: str, offset: int) -> list[int]:
    """Positions (in the line) of spaces between attributes, outside quotes and Jinja."""
    points: list[int] = []
    quote = ""
    depth = 0
    for i, ch in enumerate(tag):
        if ch == "{" and tag[i + 1:i + 2] in ("{", "%"):
            depth += 1
        elif ch == "}" and tag[i - 1:i] in ("}", "%") and depth:
            depth -= 1
        elif depth:
            continue
        elif quote:
            if ch == quote:
                quote = ""
        elif ch in "\"'":
            quote = ch
        elif ch == " ":
            points.append(offset + i)
    return points


def _break_line(line: str) -> str:
    if len(line) <= LINE_LIMIT:
        return line
    points: list[int] = []
    for match in _START_TAG.finditer(line):
        points += _tag_breaks(match.group(0), match.start())
    out = list(line)
    start = 0
    last = -1
    for point in points:
        if point - start > LINE_LIMIT and last > start:
            out[last] = "\n"
            start = last + 1
        last = point
    if len(line) - start > LINE_LIMIT and last > start:
        out[last] = "\n"
    return "".join(out)


def _one_space_or_none(match: re.Match[str]) -> str:
    """A run becomes one space; whitespace at the end of a line goes."""
    text = match.string
    return "" if match.end() < len(text) and text[match.end()] == "\n" else " "


def prepare_html(source: str) -> str:
    """The template source (Jinja tags included) rewritten as the module docstring says."""
    keep_spaces = bool(_PREFORMATTED.search(source))
    parts = _JINJA.split(source)
    for i in range(0, len(parts), 2):  # even indexes are outside Jinja tags
        text = parts[i]
        if not keep_spaces:
            text = _WSP_RUNS.sub(_one_space_or_none, text)
        parts[i] = text
    joined = "".join(parts)
    return "\n".join(_break_line(line) for line in joined.split("\n"))
