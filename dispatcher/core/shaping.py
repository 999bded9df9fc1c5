"""Per-destination traffic shaping: which MX group a domain belongs to, and its limits.

Receivers limit per provider, not per domain: gmail.com, googlemail.com and
every Google Workspace domain (MX under google.com / googlemail.com) share one
budget, so sending is shaped per *MX group*. Defaults follow the public
defaults of a bulk MTA (see /work/shared/FIELD-NOTES.md, "Traffic shaping"):
~10 connections, ~100 messages per connection and ~100 messages/s for an
unknown destination; Google ~5 connections and ~50 per connection with TLS
required; Yahoo ~20 per connection and long back-off on its ``[TS04]`` deferral.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from dataclasses import dataclass, replace


@dataclass(frozen=True)
class Shape:
    """Limits for one destination (a domain, or an MX group of domains)."""

    connections: int = 10
    per_connection: int = 100
    per_second: float = 100.0
    tls_required: bool = False
    # How long to suspend the destination on a rate-limit deferral before trying again.
    suspend_seconds: float = 60.0


DEFAULT = Shape()

# group -> (domains, MX host suffixes, shape)
BUILTIN: dict[str, tuple[tuple[str, ...], tuple[str, ...], Shape]] = {
    "google": (("gmail.com", "googlemail.com"), ("google.com", "googlemail.com"),
               Shape(connections=5, per_connection=50, per_second=50, tls_required=True)),
    "yahoo": (("yahoo.com", "yahoo.co.uk", "yahoo.fr", "yahoo.de", "ymail.com",
               "rocketmail.com", "aol.com", "aim.com"), ("yahoodns.net",),
              Shape(connections=5, per_connection=20, per_second=20, suspend_seconds=3600)),
    "microsoft": (("outlook.com", "hotmail.com", "live.com", "msn.com", "hotmail.co.uk",
                   "outlook.fr", "hotmail.fr", "live.fr"),
                  ("outlook.com", "protection.outlook.com"),
                  Shape(connections=5, per_connection=100, per_second=50)),
    "apple": (("icloud.com", "me.com", "mac.com"), ("icloud.com",),
              Shape(connections=5, per_connection=50, per_second=20)),
    "gmx": (("gmx.de", "gmx.net", "gmx.com", "web.de"), ("gmx.net", "web.de"),
            Shape(connections=4, per_connection=50, per_second=20)),
}


@dataclass(frozen=True)
class Shaper:
    """Resolves a recipient domain (and its MX hosts, if known) to a group and a shape."""

    groups: Mapping[str, tuple[tuple[str, ...], tuple[str, ...], Shape]]
    default: Shape = DEFAULT

    @classmethod
    def builtin(cls, overrides: Mapping[str, Mapping[str, object]] | None = None) -> Shaper:
        """The built-in groups, with ``{"google": {"per_second": 10}}``-style overrides.

        An override naming an unknown group defines a new one-domain group.
        """
        groups = dict(BUILTIN)
        default = DEFAULT
        for name, values in (overrides or {}).items():
            if name == "default":
                default = replace(default, **values)  # type: ignore[arg-type]
            elif name in groups:
                domains, mx, shape = groups[name]
                groups[name] = (domains, mx, replace(shape, **values))  # type: ignore[arg-type]
            else:
                groups[name] = ((name.lower(),), (), replace(DEFAULT, **values))  # type: ignore[arg-type]
        return cls(groups, default)

    def group(self, domain: str, mx_hosts: Iterable[str] = ()) -> str:
        """The MX group of ``domain``: a provider name, or the domain itself."""
        domain = domain.lower().rstrip(".")
        for name, (domains, _suffixes, _shape) in self.groups.items():
            if domain in domains:
                return name
        for host in mx_hosts:
            host = host.lower().rstrip(".")
            for name, (_domains, suffixes, _shape) in self.groups.items():
                if any(host == s or host.endswith("." + s) for s in suffixes):
                    return name
        return domain

    def shape(self, group: str) -> Shape:
        entry = self.groups.get(group)
        return entry[2] if entry else self.default
