"""From a file's header to our fields: aliases, ``--map`` rules and typed attribute values.

Other tools name the same thing differently (Mailchimp ``Email Address`` and
``FNAME``, listmonk ``email``/``name``/``attributes``, Sendy ``Email``/``Name``,
Excel ``E-Mail``). Columns we do not know become attributes, their values
typed (integers, decimals, booleans) so ``where: age >= 18`` compares numbers;
ISO dates stay strings, and anything that would not survive the trip back
to text unchanged (``007``, ``1e3``, ``+49...``) stays a string too.

Some tools say who left in columns of their own rather than in a status
column (Mailchimp ``UNSUB_TIME``, Ghost ``subscribed_to_emails``, ...):
:data:`STATUS_SIGNALS` names them, and a row's status is the strictest that
any of its columns gives.
"""

from __future__ import annotations

import json
import re
from collections.abc import Callable, Collection, Sequence
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
    # Signup dates: TinyNews "Created at", Curated "Subscribed at", Mailchimp "OPTIN_TIME".
    CREATED: ("created_at", "created", "created at", "date added", "subscribed at",
              "optin_time"),
    UPDATED: ("updated_at", "updated", "updated at"),
    ATTRIBUTES: ("attributes", "attribs"),
}.items():
    for _name in _names:
        ALIASES[_name] = _field

TYPES = ("auto", "text", "int", "decimal", "bool", "date", "json")
_INT = re.compile(r"-?(?:0|[1-9][0-9]{0,17})")
_DECIMAL = re.compile(r"-?(?:0|[1-9][0-9]{0,14})\.[0-9]{1,15}")
_BOOLS = {"true": True, "false": False}
TRUE_WORDS = ("true", "yes", "y", "1", "on")
FALSE_WORDS = ("false", "no", "n", "0", "off")


def auto_value(value: str) -> Any:
    """``value``, trimmed, as int, float or bool when it reads back as the same text; else the
    trimmed string."""
    # Spaces around a value are the file's accident, not data: " Dolor " would greet
    # "Hi  Dolor ,". Each column converts a distinct text once, so rows pay nothing for it.
    value = value.strip()
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
    """``value`` (already trimmed) converted as ``--map`` declared; raises ValueError naming
    what was expected."""
    if kind == "auto":
        return auto_value(value)
    if kind == "text":
        return value
    if kind == "int":
        return int(value)
    if kind == "decimal":
        return float(value)
    if kind == "bool":
        lowered = value.lower()
        if lowered in TRUE_WORDS:
            return True
        if lowered in FALSE_WORDS:
            return False
        raise ValueError(f"not a boolean: {value!r}")
    if kind == "date":
        return date.fromisoformat(value).isoformat()
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


STATUS_ALIASES = {
    "active": "active", "subscribed": "active", "enabled": "active", "confirmed": "active",
    "": "active",
    "unsubscribed": "unsubscribed", "blocklisted": "unsubscribed", "blacklisted": "unsubscribed",
    "disabled": "unsubscribed", "opted out": "unsubscribed", "inactive": "unsubscribed",
    "bounced": "bounced", "cleaned": "bounced", "hard bounce": "bounced",
    "complained": "complained", "spam": "complained", "marked as spam": "complained",
}
# Never confirmed their address (double opt-in): there is no consent to mail them on, so
# they must not be active; stored as unsubscribed they would be recorded as having left,
# and once they confirm, re-importing them would take --resubscribe, which is meant for
# people who left. So their rows are rejected with this reason, to be imported once confirmed.
UNCONFIRMED = frozenset(("pending", "unconfirmed"))

# Where a row's columns disagree (beehiiv: status "active" and an unsubscribed_at date),
# the strictest status wins: a sign that someone left is never outvoted by another
# column. A complaint outranks a bounce, as in the suppression policy, which treats it as
# an unsubscribe from every list as well.
STRICTNESS = {"active": 0, "unsubscribed": 1, "bounced": 2, "complained": 3}


def parse_status_map(specs: Sequence[str]) -> dict[str, str]:
    """``--status-map "1=active,0=unsubscribed"`` (repeatable): a file's own status values.

    Values are matched trimmed and case-blind, as status words are; each names one of
    our statuses (or a word :data:`STATUS_ALIASES` knows, like ``subscribed``). A word
    that already says someone left cannot be made to say less (``unsubscribed=active``
    would mail people who asked to stop: that takes ``--resubscribe``), and unconfirmed
    sign-ups stay refused whatever the map says.
    """
    said: dict[str, str] = {}
    for spec in specs:
        for pair in spec.split(","):
            value, sep, word = pair.partition("=")
            value = value.strip().lower()
            status = STATUS_ALIASES.get(word.strip().lower()) if word.strip() else None
            if not sep or not value or status is None:
                raise ConfigError(f"--status-map {spec!r}: expected \"value=status\" pairs "
                                  "separated by commas, status one of active, unsubscribed, "
                                  "bounced, complained")
            if value in UNCONFIRMED:
                raise ConfigError(f"--status-map {spec!r}: {value!r} rows never confirmed "
                                  "their address; import them once they have")
            known = STATUS_ALIASES.get(value)
            if known is not None and STRICTNESS[status] < STRICTNESS[known]:
                raise ConfigError(f"--status-map {spec!r}: {value!r} means {known}, and a map "
                                  "may not make it more active (that is --resubscribe)")
            if said.get(value, status) != status:
                raise ConfigError(f"--status-map: {value!r} is given as both {said[value]} "
                                  f"and {status}")
            said[value] = status
    return said


@dataclass(frozen=True)
class Signal:
    """What the values of a column that is not a status column say about the status."""

    # value, trimmed and lower-cased -> status
    said: dict[str, str]
    # The status any other value says; None: another value rejects the row, as an unknown
    # status does (a guess could mail someone who left).
    otherwise: str | None = None


def _dated(status: str) -> Signal:
    """A date filled in when, and only when, the person left."""
    return Signal({"": "active"}, status)


STATUS_SIGNALS: dict[str, Signal] = {
    # Mailchimp's export zip holds a file per status; the unsubscribed and the cleaned
    # (hard-bounced) files say which they are by these dates, filled on every row.
    "unsub_time": _dated("unsubscribed"),
    "clean_time": _dated("bounced"),
    # beehiiv: set on people who left, even where its status column still says active.
    "unsubscribed_at": _dated("unsubscribed"),
    # Substack: the reader turned its emails off.
    "email_disabled": Signal({**dict.fromkeys((*FALSE_WORDS, ""), "active"),
                              **dict.fromkeys(TRUE_WORDS, "unsubscribed")}),
    # Ghost: empty and null mean subscribed, as Ghost's own importer reads them.
    "subscribed_to_emails": Signal({**dict.fromkeys((*TRUE_WORDS, "", "null"), "active"),
                                    **dict.fromkeys(FALSE_WORDS, "unsubscribed")}),
}


def attribute_key(name: str, taken: Collection[str]) -> str:
    """``name``, or ``name_``, ``name__`` ...: not a field's name, nor one in ``taken``.

    As a column of our export, a key named like a field would be a second "created_at"
    (or an "attributes" read back as JSON).
    """
    while name in taken or name in FIELDS or ALIASES.get(name.lower()) == ATTRIBUTES:
        name += "_"
    return name


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
    # (index, signal) for each column of STATUS_SIGNALS.
    signals: list[tuple[int, Signal]] = field(default_factory=list)


def _converter(kind: str) -> Callable[[str], Any]:
    if kind == "auto":
        return auto_value
    # Trimmed as auto_value trims.
    return lambda value: typed_value(value.strip(), kind)


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
    signals: list[tuple[int, Signal]] = []
    used_keys: set[str] = set()
    # A column named exactly as a field takes it before an alias of that field does: our
    # own export writes created_at after the attribute columns, one of which may be a
    # "Date added" kept as written.
    exact = {t.lower(): i for i, t in reversed(list(enumerate(header)))
             if t.lower() in FIELDS and t.lower() not in by_header}
    for index, title in enumerate(header):
        lowered = title.lower()
        rule = by_header.get(lowered)
        if attributes_json is not None and lowered == attributes_json.lower():
            target, kind = ATTRIBUTES, "json"
        elif rule is not None:
            target, kind = rule.target, rule.kind
        elif lowered in STATUS_SIGNALS:
            # Read into the status and not kept, like a status column: as an attribute it
            # would contradict the status once that changes here, and a later import of our
            # own export would read the stale value as a signal again.
            signals.append((index, STATUS_SIGNALS[lowered]))
            continue
        else:
            target, kind = ALIASES.get(lowered, title), "auto"
            if exact.get(target, index) != index:
                target = title
        if not target or target == "-":
            ignored.append(title)
            continue
        if target in FIELDS and target not in slots and kind in ("auto", "json"):
            slots[target] = index
            continue
        if target in FIELDS or target in used_keys or not title:
            # A second email/name column, or a duplicate header: keep it, under its own name.
            target = attribute_key(title or f"column_{index + 1}", used_keys)
        used_keys.add(target)
        attributes.append((index, target, _converter(kind)))
    if EMAIL not in slots:
        raise ListFileError(
            "no email column in the header (found: " + ", ".join(header) + "); "
            "name it with --map \"Column=email\"", path=path, line=1)
    return Mapping(header, slots[EMAIL], slots.get(NAME), slots.get(STATUS), slots.get(LISTS),
                   slots.get(CREATED), slots.get(UPDATED), slots.get(ATTRIBUTES), attributes,
                   ignored, signals)
