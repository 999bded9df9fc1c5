"""VERP: a per-recipient envelope sender that names the delivery it belongs to.

``bounces+<token>@bounce.example.com`` — any bounce addressed back to it, even
one that quotes nothing of the original, identifies the (campaign,
subscriber) pair it is about. The token is signed (see :mod:`.tokens`), so a
forged bounce cannot suppress somebody else.
"""

from __future__ import annotations

from dispatcher.core import tokens

PURPOSE = "verp"


def make_token(secret: bytes, campaign_id: int, subscriber_id: int) -> str:
    return tokens.sign(secret, PURPOSE, campaign_id, subscriber_id)


def address(
    secret: bytes, campaign_id: int, subscriber_id: int, *, prefix: str, domain: str
) -> str:
    """The Return-Path for one delivery: ``prefix+token@domain``."""
    return f"{prefix}+{make_token(secret, campaign_id, subscriber_id)}@{domain}"


def parse(secret: bytes, addr: str, *, prefix: str) -> tuple[int, int] | None:
    """``(campaign_id, subscriber_id)`` of a VERP address we made, else ``None``.

    Accepts the address with or without angle brackets and in any case.
    """
    addr = addr.strip().strip("<>").lower()
    local, _, _domain = addr.rpartition("@")
    head, plus, token = local.partition("+")
    if not plus or head != prefix.lower():
        return None
    ids = tokens.verify(secret, PURPOSE, token, 2)
    if ids is None:
        return None
    return ids[0], ids[1]
