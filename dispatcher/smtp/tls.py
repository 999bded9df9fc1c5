"""TLS contexts for talking to relays and MX hosts.

Verification is on by default (a relay's certificate must match its name and
chain to a trusted root). A relay may opt out (``?verify=false``) for a
self-signed test server; direct MX delivery uses opportunistic STARTTLS, where
an unverified encrypted session still beats plain text (RFC 7435).
"""

from __future__ import annotations

import ssl
from functools import lru_cache


@lru_cache(maxsize=4)
def client_context(verify: bool = True) -> ssl.SSLContext:
    """A shared client context; contexts are costly to build, so one per mode is kept."""
    context = ssl.create_default_context(ssl.Purpose.SERVER_AUTH)
    context.minimum_version = ssl.TLSVersion.TLSv1_2
    if not verify:
        context.check_hostname = False
        context.verify_mode = ssl.CERT_NONE
    return context
