"""Relay URLs: where messages go and how to talk to the server there.

``smtp://user:pass@host:587?starttls=required``, ``smtp+starttls://host``,
``smtps://host:465`` (TLS from the first byte), ``smtp://127.0.0.1:2525``,
``capture`` (the in-process relay that files messages under ``outbox/``) and
``direct`` (no relay: MX lookup and delivery to each domain's own servers).
A password written as ``${NAME}`` is read from the environment, so secrets
stay out of campaign files.

Query parameters tune one relay: ``verify=false`` (a self-signed test relay),
``timeout=30``, ``helo=mail.example.com``, limits ``per_second=50``,
``per_minute=``, ``per_hour=``, ``per_day=5000`` (a provider account's daily
quota, counted in the store so it holds across restarts and workers), and for
a pool ``priority=0`` (lower is preferred; higher ones take failover and
spill-over) and ``weight=1`` (share among relays of one priority).
"""

from __future__ import annotations

from collections.abc import Iterator, Mapping
from contextlib import ExitStack, contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from urllib.parse import parse_qs, unquote, urlsplit

from dispatcher.config import RelayConfig, expand_env
from dispatcher.core.rates import Limits
from dispatcher.errors import ConfigError
from dispatcher.smtp.capture import CaptureRelay

CAPTURE = "capture"
DIRECT = "direct"
_KNOWN = {"starttls", "verify", "timeout", "helo", "per_second", "per_minute", "per_hour",
          "per_day", "priority", "weight"}
_STARTTLS = ("required", "opportunistic", "off")


@dataclass(frozen=True)
class RelayURL:
    host: str
    port: int
    implicit_tls: bool = False
    starttls: str = "opportunistic"
    username: str | None = None
    password: str | None = None
    verify_tls: bool = True
    timeout: float = 60.0
    helo: str | None = None
    limits: Limits = field(default_factory=Limits)
    priority: int = 0
    weight: float = 1.0

    @property
    def display(self) -> str:
        """The URL without its password, for logs, the store and the dashboard."""
        scheme = "smtps" if self.implicit_tls else "smtp"
        user = f"{self.username}@" if self.username else ""
        host = f"[{self.host}]" if ":" in self.host else self.host
        return f"{scheme}://{user}{host}:{self.port}"


def parse_relay(url: str) -> RelayURL:
    try:
        parts = urlsplit(url)
    except ValueError as exc:  # e.g. an unclosed IPv6 bracket
        raise ConfigError(f"relay URL {url!r}: {exc}") from exc
    scheme = parts.scheme.lower()
    if scheme not in ("smtp", "smtps", "smtp+starttls"):
        raise ConfigError(f"relay URL {url!r}: scheme must be smtp, smtp+starttls or smtps "
                          f"(or the word '{CAPTURE}')")
    if not parts.hostname:
        raise ConfigError(f"relay URL {url!r} has no host")
    query = {k: v[-1] for k, v in parse_qs(parts.query).items()}
    unknown = set(query) - _KNOWN
    if unknown:
        raise ConfigError(f"relay URL {url!r}: unknown parameter {sorted(unknown)[0]!r} "
                          f"(known: {', '.join(sorted(_KNOWN))})")
    implicit = scheme == "smtps"
    starttls = query.get("starttls", "required" if scheme == "smtp+starttls" else "opportunistic")
    if starttls not in _STARTTLS:
        raise ConfigError(f"relay URL {url!r}: starttls must be one of {', '.join(_STARTTLS)}")
    if implicit:
        starttls = "off"
    try:
        port = parts.port or (465 if implicit else 25)
        timeout = float(query.get("timeout", "60"))
        limits = Limits(
            per_second=float(query["per_second"]) if "per_second" in query else None,
            **{k: int(query[k]) for k in ("per_minute", "per_hour", "per_day") if k in query})
        priority = int(query.get("priority", "0"))
        weight = float(query.get("weight", "1"))
        if weight <= 0:
            raise ValueError("weight must be > 0")
    except ValueError as exc:
        raise ConfigError(f"relay URL {url!r}: {exc}") from exc
    password = unquote(parts.password) if parts.password is not None else None
    if password is not None:
        password = expand_env(password, what=f"the password of relay {parts.hostname}")
    return RelayURL(
        host=parts.hostname,
        port=port,
        implicit_tls=implicit,
        starttls=starttls,
        username=unquote(parts.username) if parts.username else None,
        password=password,
        verify_tls=query.get("verify", "true").lower() not in ("false", "0", "no"),
        timeout=timeout,
        helo=query.get("helo"),
        limits=limits,
        priority=priority,
        weight=weight,
    )


@dataclass(frozen=True)
class RelayChoice:
    """Which relay a send uses, and how many connections and messages per connection."""

    spec: str  # a URL, or CAPTURE
    max_connections: int = 4
    max_messages_per_connection: int = 100

    @property
    def display(self) -> str:
        return self.spec if self.spec in (CAPTURE, DIRECT) else parse_relay(self.spec).display


def choose_relay(option: str | None, campaign_relay: str | None,
                 configured: Mapping[str, RelayConfig]) -> RelayChoice:
    """``--relay`` wins, then the campaign's ``relay:``, then ``[relays.default]``, then capture.

    Each may name a relay of ``dispatcher.toml`` or be a URL itself.
    """
    spec = option or campaign_relay or ("default" if "default" in configured else CAPTURE)
    if spec in configured:
        relay = configured[spec]
        choice = RelayChoice(relay.url, relay.max_connections, relay.max_messages_per_connection)
    else:
        choice = RelayChoice(spec)
    if choice.spec not in (CAPTURE, DIRECT):
        parse_relay(choice.spec)  # fail now, before anything is queued
    return choice


def choose_relays(option: str | None, campaign_relays: list[str],
                  configured: Mapping[str, RelayConfig]) -> list[RelayChoice]:
    """The pool a send uses: ``--relay`` (comma-separated), else the campaign's, else default."""
    names = [n.strip() for n in option.split(",") if n.strip()] if option else campaign_relays
    if not names:
        return [choose_relay(None, None, configured)]
    return [choose_relay(name, None, configured) for name in names]


@contextmanager
def open_relays(choices: list[RelayChoice], outbox: Path) -> Iterator[list[RelayURL] | str]:
    """The relays to connect to (capture ones started), or ``DIRECT``."""
    if any(c.spec == DIRECT for c in choices):
        if len(choices) > 1:
            raise ConfigError("'direct' delivery cannot be mixed with relays in one pool")
        yield DIRECT
        return
    with ExitStack() as stack:
        yield [stack.enter_context(open_relay(c, outbox)) for c in choices]


@contextmanager
def open_relay(choice: RelayChoice, outbox: Path) -> Iterator[RelayURL]:
    """The relay to connect to; for ``capture``, a loopback server filing into ``outbox``."""
    if choice.spec == CAPTURE:
        with CaptureRelay(outbox) as capture:
            yield parse_relay(capture.url)
    else:
        yield parse_relay(choice.spec)
