"""Signed, compact tokens for VERP addresses, unsubscribe links and tracking.

A token is ``ID-ID-...-MAC``: the ids in base 36 and a truncated HMAC-SHA256
(RFC 2104) over a *purpose* and the ids, in lower-case base 32. Lower case and
``-`` only, because MTAs may fold the case of a VERP local part and a ``.``
next to another ``.`` is not a valid local part (RFC 5321 §4.1.2).

The purpose keeps one kind of token from being replayed as another: a bounce
token cannot unsubscribe anybody.
"""

from __future__ import annotations

import base64
import hashlib
import hmac

MAC_BYTES = 10  # 80 bits: forging one by guessing is out of reach, and it stays short.
_DIGITS = "0123456789abcdefghijklmnopqrstuvwxyz"


def _b36(number: int) -> str:
    if number < 0:
        raise ValueError("token ids are non-negative")
    out = ""
    while True:
        number, rem = divmod(number, 36)
        out = _DIGITS[rem] + out
        if number == 0:
            return out


def _mac(secret: bytes, purpose: str, payload: str) -> str:
    digest = hmac.new(secret, f"{purpose}:{payload}".encode(), hashlib.sha256).digest()
    return base64.b32encode(digest[:MAC_BYTES]).decode().rstrip("=").lower()


def sign(secret: bytes, purpose: str, *ids: int) -> str:
    """Return a token carrying ``ids`` that only the holder of ``secret`` can make."""
    payload = "-".join(_b36(i) for i in ids)
    return f"{payload}-{_mac(secret, purpose, payload)}"


def verify(secret: bytes, purpose: str, token: str, count: int) -> tuple[int, ...] | None:
    """Return the ``count`` ids of a genuine token, or ``None`` for anything else.

    The MAC is compared in constant time; a malformed token and a forged one
    are answered alike, so a caller learns nothing from the difference.
    """
    parts = token.strip().lower().split("-")
    if len(parts) != count + 1:
        return None
    *id_parts, mac = parts
    if not all(p and len(p) <= 13 and all(c in _DIGITS for c in p) for p in id_parts):
        return None
    expected = _mac(secret, purpose, "-".join(id_parts))
    if not hmac.compare_digest(expected, mac):
        return None
    return tuple(int(p, 36) for p in id_parts)
