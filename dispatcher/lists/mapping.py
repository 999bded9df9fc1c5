"""From a file's header to our fields: aliases, ``--map`` rules and typed attribute values.

Other tools name the same thing differently (Mailchimp ``Email Address`` and
``FNAME``, listmonk ``email``/``name``/``attributes``, Sendy ``Email``/``Name``,
Excel ``E-Mail``). Columns we do not know become attributes, their values
typed (integers, decimals, booleans) so ``where: age >= 18`` compares numbers;
ISO dates stay strings, and anything that would not survive the trip back
to text unchanged (``007``, ``1e3``, ``+49...``) stays a string too.
"""

from __future__ import annotations

import json
import re
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from datetime import date
from typing import Any

from dispatcher.errors import ConfigError, ListFileError

# Built-in fields; everything else is an attribute.
EMAIL, NAME, STATUS, LISTS, CREATED, UPDATED, ATTRIBUTES = (
    "email", "name", "status", "lists", "created_at", "updated_at", "attributes")
FIELDS = (EMAIL, NAME, STATUS, LISTS, CREATED, UPDATED, ATTRIBUTES)

ALIASES: dict[str, str] = {}
for _field, _names in {
    EMAIL: ("email", "e-mail", "email address", "e-mail address", "emailaddress", "email_address",
            "mail", "e-mail-adresse", "email-adresse", "subscriber email", "courriel",
            "correo electrónico"),
    NAME: ("name", "full name", "fullname", "full_name", "display name", "subscriber name"),
    "first_name": ("first name", "firstname", "first_name", "fname", "given name", "vorname",
                   "prénom", "prenom"),
    "last_name": ("last name", "lastname", "last_name", "lname", "surname", "family name",
                  "nachname", "nom"),
    STATUS: ("status", "subscriber status"),
    LISTS: ("lists",),
    CREATED: ("created_at", "created", "date added"),
    UPDATED: ("updated_at", "updated"),
    ATTRIBUTES: ("attributes", "attribs"),
}.items():
    for _name in _names:
        ALIASES[_name] = _field

TYPES = ("auto", "text", "int", "decimal", "bool", "date", "json")
_INT = re.compile(r"-?(?:0|[1-9][0-9]{0,17})")
_DECIMAL = re.compile(r"-?(?:0|[1-9][0-9]{0,14})\.[0-9]{1,15}")
_BOOLS = {"true": True, "false": False}


def auto_value(value: str) -> Any:
    """``value`` as int, float or bool when it reads back as the same text; else the string."""
    if not value:
        return value
    head = value[0]
    if head.isdigit() or head == "-":
        if _INT.fullmatch(value):
            return int(value)
        if _DECIMAL.fullmatch(value):
            number = float(value)
            # 3.50 is stored as 3.5: equal as a number, and exported as 3.5 from then on.
            if float(repr(number)) == number:
                return number
        return value
    if head in "tTfF":
        return _BOOLS.get(value.lower(), value)
    return value


def typed_value(value: str, kind: str) -> Any:
    """``value`` converted as ``--map`` declared; raises ValueError naming what was expected."""
    if kind == "auto":
        return auto_value(value)
    if kind == "text":
        return value
    if kind == "int":
        return int(value)
    if kind == "decimal":
        return float(value)
    if kind == "bool":
        lowered = value.strip().lower()
        if lowered in ("true", "yes", "y", "1", "on"):
            return True
        if lowered in ("false", "no", "n", "0", "off"):
            return False
        raise ValueError(f"not a boolean: {value!r}")
    if kind == "date":
        return date.fromisoformat(value.strip()).isoformat()
    parsed = json.loads(value)
    return parsed


def export_value(value: Any) -> str:
    """The text an attribute value is written as: the inverse of :func:`auto_value`."""
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, str):
        return value
    if value is None:
        return ""
    if isinstance(value, int | float):
        return repr(value)
    return json.dumps(value, ensure_ascii=False, sort_keys=True)


@dataclass(frozen=True)
class Rule:
    """``Header=field[:type]`` from ``--map``."""

    header: str
    target: str
    kind: str = "auto"


def parse_map(specs: Sequence[str]) -> list[Rule]:
    rules = []
    for spec in specs:
        header, sep, target = spec.partition("=")
        target, _, kind = target.partition(":")
        kind = kind.strip().lower() or "auto"
        if not sep or not header.strip() or not target.strip():
            raise ConfigError(f"--map {spec!r}: expected \"Column Header=field\" "
                              "(optionally \"=field:type\")")
        if kind not in TYPES:
            raise ConfigError(f"--map {spec!r}: unknown type {kind!r} "
                              f"(one of {', '.join(TYPES)})")
        rules.append(Rule(header.strip(), target.strip(), kind))
    return rules


@dataclass
class Mapping:
    """Which column index feeds which field, decided once per file."""

    header: list[str]
    email: int
    name: int | None = None
    status: int | None = None
    lists: int | None = None
    created: int | None = None
    updated: int | None = None
    attributes_json: int | None = None
    # (index, attribute key, converter) for every other non-empty column.
    attributes: list[tuple[int, str, Callable[[str], Any]]] = field(default_factory=list)
    ignored: list[str] = field(default_factory=list)


def _converter(kind: str) -> Callable[[str], Any]:
    if kind == "auto":
        return auto_value
    return lambda value: typed_value(value, kind)


def build_mapping(header: list[str], rules: Sequence[Rule] = (),
                  attributes_json: str | None = None, *, path: str | None = None) -> Mapping:
    """Map ``header``; raises :class:`ListFileError` when no column holds the email address."""
    by_header = {r.header.lower(): r for r in rules}
    unknown = [r.header for r in rules if r.header.lower() not in {h.lower() for h in header}]
    if unknown:
        raise ListFileError(f"--map names a column the file does not have: {unknown[0]!r} "
                            f"(columns: {', '.join(header)})", path=path, line=1)
    if attributes_json is not None and attributes_json.lower() not in {h.lower() for h in header}:
        raise ListFileError(f"--attributes-json {attributes_json!r}: no such column "
                            f"(columns: {', '.join(header)})", path=path, line=1)
    slots: dict[str, int] = {}
    attributes: list[tuple[int, str, Callable[[str], Any]]] = []
    ignored: list[str] = []
    used_keys: set[str] = set()
    for index, title in enumerate(header):
        lowered = title.lower()
        rule = by_header.get(lowered)
        if attributes_json is not None and lowered == attributes_json.lower():
            target, kind = ATTRIBUTES, "json"
        elif rule is not None:
            target, kind = rule.target, rule.kind
        else:
            target, kind = ALIASES.get(lowered, title), "auto"
        if not target or target == "-":
            ignored.append(title)
            continue
        if target in FIELDS and target not in slots and kind in ("auto", "json"):
            slots[target] = index
            continue
        if target in FIELDS or target in used_keys or not title:
            # A second email/name column, or a duplicate header: keep it, under its own name.
            target = title or f"column_{index + 1}"
            while target in used_keys or target in FIELDS:
                target += "_"
        used_keys.add(target)
        attributes.append((index, target, _converter(kind)))
    if EMAIL not in slots:
        raise ListFileError(
            "no email column in the header (found: " + ", ".join(header) + "); "
            "name it with --map \"Column=email\"", path=path, line=1)
    return Mapping(header, slots[EMAIL], slots.get(NAME), slots.get(STATUS), slots.get(LISTS),
                   slots.get(CREATED), slots.get(UPDATED), slots.get(ATTRIBUTES), attributes,
                   ignored)


STATUS_ALIASES = {
    "active": "active", "subscribed": "active", "enabled": "active", "confirmed": "active",
    "unconfirmed": "active", "": "active",
    "unsubscribed": "unsubscribed", "blocklisted": "unsubscribed", "blacklisted": "unsubscribed",
    "disabled": "unsubscribed", "opted out": "unsubscribed",
    "bounced": "bounced", "cleaned": "bounced", "hard bounce": "bounced",
    "complained": "complained", "spam": "complained", "marked as spam": "complained",
}
