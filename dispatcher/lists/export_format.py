"""The text of an export: each stored row as one CSV line, as ``csv.writer`` would write it.

Shared by the in-process export and its worker processes, so both write the
same bytes. Most of an export's time is spent here, per row; the comments
give the measurements that shaped it.
"""

from __future__ import annotations

import csv
import io
import json
from collections.abc import Callable, Iterable, Mapping, Sequence
from datetime import datetime
from json.scanner import make_scanner
from typing import Any

from dispatcher.errors import StoreError
from dispatcher.lists.mapping import export_value

# Distinct list sets and timestamps remembered (imports stamp whole batches alike).
_MEMO = 10_000


class _Memo(dict[Any, str]):
    """Text for a value, computed once for up to ``_MEMO`` distinct values."""

    def __init__(self, text: Callable[[Any], str]) -> None:
        super().__init__()
        self.text = text

    def __missing__(self, value: Any) -> str:
        text = self.text(value)
        if len(self) < _MEMO:
            self[value] = text
        return text


def _iso(value: str | datetime) -> str:
    """A stored UTC timestamp as ISO 8601 with offset, as ``datetime.isoformat`` writes it."""
    if isinstance(value, datetime):
        return value.isoformat() + "+00:00"
    text = value.replace(" ", "T", 1)
    return (text[:-7] if text.endswith(".000000") else text) + "+00:00"


def _int_text(text: str) -> str:
    return "0" if text == "-0" else text


def _float_text(text: str) -> str:
    return repr(float(text))


# Attributes decoded with their numbers left as the text export_value would write
# (repr of the parsed number), so most values need no Python per value at all.
# The decoder's C scanner itself: decode's two whitespace regular expressions per
# row cost a fifth as much again (the stored JSON, json.dumps or jsonb text, never
# has any), and raw_decode's Python frame around the scanner another 3%. It raises
# StopIteration, not ValueError, where the text is not JSON.
_AS_TEXT_DECODER = json.JSONDecoder(parse_int=_int_text, parse_float=_float_text)
# typeshed asks for a scanner as the context; json itself passes its decoder.
_scan_as_text = make_scanner(_AS_TEXT_DECODER)  # type: ignore[arg-type]
_AS_TEXT = {True: "true", False: "false", None: ""}.get


class RowText:
    """The per-row text of the export: lists, attribute columns and timestamps.

    ``list_names`` maps list ids (as text) to names; an id it lacks (a list made
    during the export) is looked up with ``load_names``.
    """

    def __init__(self, keys: Sequence[str], as_json: bool,
                 load_names: Callable[[], Mapping[str, str]]) -> None:
        self.keys = list(keys)
        self.key_set = frozenset(keys)
        self.as_json = as_json
        self.load_names = load_names
        self.list_names: Mapping[str, str] = {}
        self.lists = _Memo(self._lists_text)
        self.stamps = _Memo(_iso)

    def _lists_text(self, ids: str | None) -> str:
        """'3,1' as 'archive|news': names sorted, so SQLite and PostgreSQL agree."""
        if not ids:
            return ""
        if any(i not in self.list_names for i in ids.split(",")):
            self.list_names = self.load_names()
        return "|".join(sorted(self.list_names[i] for i in ids.split(",")))

    def attributes(self, raw: str | None) -> list[Any]:
        if self.as_json:
            attrs = json.loads(raw) if raw else None
            return [json.dumps(attrs, ensure_ascii=False, sort_keys=True) if attrs else ""]
        if not raw:
            return [""] * len(self.keys)
        try:
            attrs, end = _scan_as_text(raw, 0)
            values = list(map(attrs.get, self.keys))
            if end == len(raw):
                if not self.key_set.issuperset(attrs):
                    self._new_key(attrs)
                return list(map(_AS_TEXT, values, values))
        except (TypeError, ValueError, StopIteration):  # a list or object value, odd text
            pass
        attrs = json.loads(raw)
        if not self.key_set.issuperset(attrs):
            self._new_key(attrs)
        return [export_value(attrs.get(k)) for k in self.keys]

    def _new_key(self, attrs: Iterable[str]) -> None:
        """A row with a key the header lacks: written, it would lose that value."""
        new = sorted(set(attrs) - self.key_set)
        raise StoreError(f"the subscribers changed during the export (attribute "
                         f"{new[0]!r} appeared): nothing was lost, run the export again")


def plain_line(line: str, width: int) -> bool:
    """Whether ``line`` is ``width`` fields that csv.writer writes joined by commas, unquoted.

    Not "": csv.writer quotes a row of one empty field.
    """
    return (bool(line) and line.count(",") == width - 1 and '"' not in line
            and "\n" not in line and "\r" not in line)


class CsvLines:
    """CSV lines as ``csv.writer`` writes them, at a fraction of its cost for plain rows.

    csv.writer took ~2.4 µs a row (a third of the export). A row none of whose
    fields holds a comma, a quote, a "\n" or a "\r" is written by csv.writer
    exactly as its fields joined with commas, so such rows are joined; the rest
    go through csv.writer itself.
    """

    def __init__(self, width: int) -> None:
        self.width = width
        self.lines: list[str] = []
        self._one = io.StringIO()
        # The line terminator decides which fields csv.writer quotes. With "\n" alone,
        # Python before 3.13 left a bare "\r" unquoted, which every CSV reader takes for
        # a line break (a value "a\rb" came back as two broken rows); "\r\n" has both
        # quoted, as 3.13 does anyway. Each line's "\r\n" is cut off, as "\n" ends them.
        self._writer = csv.writer(self._one, lineterminator="\r\n")

    def add(self, fields: list[Any]) -> None:
        try:
            line = ",".join(fields)
        except TypeError:  # a None (written as "" by csv.writer)
            pass
        else:
            if plain_line(line, self.width):
                self.lines.append(line)
                return
        self._writer.writerow(fields)
        self.lines.append(self._one.getvalue()[:-2])
        self._one.seek(0)
        self._one.truncate()

    def add_rows(self, rows: Iterable[Sequence[Any]], text: RowText) -> None:
        """Stored rows (as the export query returns them), in order."""
        add, lists, stamps, attributes = self.add, text.lists, text.stamps, text.attributes
        for email, name, status, ids, raw, created, updated in rows:
            add([email, name, status, lists[ids], *attributes(raw), stamps[created],
                 stamps[updated]])

    def text(self) -> str:
        """The lines added since the last call, each ended by a newline."""
        if not self.lines:
            return ""
        self.lines.append("")
        text = "\n".join(self.lines)
        self.lines.clear()
        return text
