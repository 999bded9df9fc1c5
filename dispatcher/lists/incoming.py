"""One mapped file row as an :class:`Incoming` subscriber, or the reason it is rejected.

This is the import's per-row hot path. Attribute columns repeat a few values
(cities, plans, ages, dates), and typing each value (``auto_value``'s regular
expressions) and then ``json.dumps`` of every row's attributes cost more than
the database's own work in the benchmark (bench/README.md). So each column
types and JSON-encodes a distinct text once per file (:class:`TypedColumn`),
and a row's JSON document is joined from those pieces, byte for byte what
``json.dumps`` would have written for the same dict.
"""

from __future__ import annotations

import json
from collections.abc import Callable
from datetime import UTC, datetime
from functools import partial
from typing import Any

from dispatcher.lists.addresses import InvalidAddress, normalise_email
from dispatcher.lists.mapping import (
    STATUS_ALIASES,
    STRICTNESS,
    UNCONFIRMED,
    Mapping,
    attribute_key,
)
from dispatcher.lists.reader import Row
from dispatcher.store.subscribers import Incoming

# Distinct texts remembered per column: a column of unique values (ids, phone
# numbers) stops growing there and types each further value as it comes.
DISTINCT = 20_000
_IMMUTABLE = frozenset((str, int, float, bool))


class TypedColumn(dict[str, tuple[Any, str | None]]):
    """Text -> (typed value, ``"key": value`` as ``json.dumps`` writes it), filled on demand.

    ``convert`` raises ValueError for a text it refuses; nothing is remembered then.
    Mutable values (``json`` typed dicts and lists) are never shared between rows.
    A field of spaces is an empty field, (None, None): no attribute, so a template's
    ``default`` still applies ("Hi there", not "Hi ").
    """

    def __init__(self, key: str, convert: Callable[[str], Any]) -> None:
        super().__init__()
        self.convert = convert
        self.prefix = json.dumps(key) + ": "

    def __missing__(self, text: str) -> tuple[Any, str | None]:
        if text.isspace():
            self[text] = (None, None)
            return (None, None)
        value = self.convert(text)
        entry = (value, self.prefix + json.dumps(value))
        if type(value) in _IMMUTABLE and len(self) < DISTINCT:
            self[text] = entry
        return entry


def _timestamp(value: str) -> datetime | None:
    try:
        stamp = datetime.fromisoformat(value)
    except ValueError:
        # beehiiv writes "2023-03-24 10:23:10 UTC": fromisoformat reads offsets, not names.
        head, _, zone = value.rpartition(" ")
        if zone.upper() not in ("UTC", "GMT"):
            return None
        try:
            stamp = datetime.fromisoformat(head + "+00:00")
        except ValueError:
            return None
    if stamp.tzinfo is None:
        return stamp.replace(tzinfo=UTC)
    try:
        return stamp.astimezone(UTC)
    except OverflowError:  # 0001-01-01T00:00+01:00 is in year 0 in UTC
        return None


def _status_refused(value: str) -> str:
    word = value.strip().lower()
    if word in UNCONFIRMED:
        return "unconfirmed (pending double opt-in)"
    if word.lstrip("-").isdecimal():
        # Each tool numbers its statuses its own way (TinyNews: 1 and 2 subscribed, 0 and 4
        # not) and the file does not say which tool wrote it: a guess could mail someone who
        # left, so the row waits in the rejects file for the word.
        return (f"numeric status: {value!r} (tool-specific code; say what each code means "
                "with --status-map, e.g. \"1=active,0=unsubscribed\")")
    return f"unknown status: {value!r}"


def _signal_refused(header: str, value: str) -> str:
    return f"unknown value in column {header!r}: {value!r}"


StatusColumn = tuple[int, dict[str, str], str | None, Callable[[str], str]]


def _strictest(columns: tuple[StatusColumn, ...], values: list[str]) -> str:
    """The strictest status the row's status columns give; raises ValueError to refuse it."""
    status = "active"
    for index, said, otherwise, refused in columns:
        word = said.get(values[index].strip().lower(), otherwise)
        if word is None:
            raise ValueError(refused(values[index]))
        if STRICTNESS[word] > STRICTNESS[status]:
            status = word
    return status


class RowReader:
    """Turns rows of one file into :class:`Incoming`; built once per file from its mapping."""

    def __init__(self, mapping: Mapping, default_lists: tuple[str, ...],
                 status_map: dict[str, str] | None = None) -> None:
        self.m = mapping
        self.default_lists = default_lists
        self.width = len(mapping.header)
        self.columns = [(index, key, TypedColumn(key, convert))
                        for index, key, convert in mapping.attributes]
        # (index, value -> status, the status of any other value or None, the reject reason
        # for a value it refuses): the status column and the other tools' status signals.
        statuses: list[StatusColumn] = []
        if mapping.status is not None:
            said = {**STATUS_ALIASES, **status_map} if status_map else STATUS_ALIASES
            statuses.append((mapping.status, said, None, _status_refused))
        for index, signal in mapping.signals:
            statuses.append((index, signal.said, signal.otherwise,
                             partial(_signal_refused, mapping.header[index])))
        self.statuses = tuple(statuses) if statuses else None

    def incoming(self, row: Row) -> Incoming:
        """``row`` as an :class:`Incoming`; raises ValueError with the reject reason."""
        if row.problem is not None:
            raise ValueError(row.problem)
        m = self.m
        values = row.values
        width = self.width
        if len(values) != width:
            if len(values) > width and any(v.strip() for v in values[width:]):
                raise ValueError(f"too many fields: {len(values)} fields, the header has {width}")
            values = values + [""] * (width - len(values))
        for index, value in enumerate(values):
            if "\x00" in value:
                # PostgreSQL text cannot hold NUL: one such byte used to abort the whole COPY.
                raise ValueError(f"NUL character in column {m.header[index]!r}"
                                 if index < width else "NUL character in an extra field")
        try:
            email = normalise_email(values[m.email])
        except InvalidAddress as exc:
            raise ValueError(str(exc)) from None
        attributes: dict[str, Any] = {}
        if m.attributes_json is not None and values[m.attributes_json].strip():
            try:
                parsed = json.loads(values[m.attributes_json])
            except ValueError:
                parsed = None
            if not isinstance(parsed, dict):
                raise ValueError(f"attributes not a JSON object: column "
                                 f"{m.header[m.attributes_json]!r}")
            attributes.update(parsed)
        parts: list[str] = []
        for index, key, column in self.columns:
            text = values[index]
            if text:
                try:
                    value, part = column[text]
                except ValueError as exc:
                    raise ValueError(f"bad value: column {m.header[index]!r}: {exc}") from None
                if part is not None:
                    attributes[key] = value
                    parts.append(part)
        # The joined text is json.dumps(attributes) only when the columns alone made the dict.
        encoded = None if m.attributes_json is not None else "{" + ", ".join(parts) + "}"
        # A file without status columns pays one test per row: a loop over no columns would
        # still make an iterator, and its variables here would make every row's frame larger.
        status = None if self.statuses is None else _strictest(self.statuses, values)
        lists = self.default_lists
        if m.lists is not None:
            lists = lists + tuple(
                n.strip() for n in values[m.lists].split("|") if n.strip() and n.strip() not in
                self.default_lists)
        name = None if m.name is None else values[m.name].strip()
        if m.created is None and m.updated is None:
            return Incoming(email, name, attributes, status, lists, None, None, row.line,
                            encoded)
        stamps: list[datetime | None] = []
        for column_index in (m.created, m.updated):
            text = "" if column_index is None else values[column_index].strip()
            stamp = _timestamp(text) if text else None
            if column_index is not None and text and stamp is None:
                # Not a timestamp we can read: kept as an attribute rather than lost.
                attributes[attribute_key(m.header[column_index], attributes)] = text
                encoded = None
            stamps.append(stamp)
        return Incoming(email, name, attributes, status, lists, stamps[0], stamps[1], row.line,
                        encoded)
