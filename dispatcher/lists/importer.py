"""CSV import: stream rows, map and validate them, write in batches, keep every bad row.

Every rejected row lands in ``FILE.rejects.csv`` (original line number, the
reason, then the original fields under the original header, so the file can
be fixed and imported again) and in the summary; the good rows are kept.
Each batch is one transaction, so an interrupted import leaves whole batches
and running it again completes it without doubling anyone.
"""

from __future__ import annotations

import csv
import json
from collections import Counter
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any, TextIO

from dispatcher.errors import ConfigError, ListFileError
from dispatcher.lists.addresses import InvalidAddress, MXChecker, domain_of, normalise_email
from dispatcher.lists.mapping import STATUS_ALIASES, Mapping, Rule, build_mapping
from dispatcher.lists.reader import Row, RowStream, open_rows
from dispatcher.store.database import Store
from dispatcher.store.subscribers import MODES, Incoming, ensure_list, find_list, write_batch

BATCH = 5000
Progress = Callable[[int, int], None]  # (rows read so far, bytes read so far)


@dataclass
class ImportOptions:
    list_name: str | None = None
    mode: str = "upsert"
    dry_run: bool = False
    resubscribe: bool = False
    rules: Sequence[Rule] = ()
    attributes_json: str | None = None
    delimiter: str | None = None
    mx: MXChecker | None = None
    batch: int = BATCH


@dataclass
class ImportReport:
    path: Path
    encoding: str = ""
    delimiter: str = ""
    encoding_fallback: str | None = None
    read: int = 0
    added: int = 0
    updated: int = 0
    unchanged: int = 0
    duplicates: int = 0
    suppressed_kept: int = 0
    resubscribed: int = 0
    rejected: Counter[str] = field(default_factory=Counter)
    rejects_path: Path | None = None
    recovered_lines: int = 0
    dry_run: bool = False

    @property
    def rejected_total(self) -> int:
        return sum(self.rejected.values())

    @property
    def existing(self) -> int:
        return self.updated + self.unchanged

    def as_dict(self) -> dict[str, Any]:
        return {
            "file": str(self.path), "encoding": self.encoding, "delimiter": self.delimiter,
            "encoding_fallback": self.encoding_fallback, "dry_run": self.dry_run,
            "read": self.read, "added": self.added, "updated": self.updated,
            "unchanged": self.unchanged, "duplicates_in_file": self.duplicates,
            "suppressed_kept": self.suppressed_kept, "resubscribed": self.resubscribed,
            "rejected": dict(sorted(self.rejected.items())),
            "rejected_total": self.rejected_total,
            "rejects_file": str(self.rejects_path) if self.rejects_path else None,
            "lines_recovered_as_cp1252": self.recovered_lines,
        }


class _Rejects:
    """FILE.rejects.csv, opened on the first reject and written as rows go by."""

    def __init__(self, path: Path, header: list[str], report: ImportReport) -> None:
        self.path = path
        self.header = header
        self.report = report
        self._out: TextIO | None = None
        self._writer: Any = None

    def add(self, row: Row, reason: str) -> None:
        self.report.rejected[reason.partition(":")[0]] += 1
        if self.report.dry_run:
            return
        if self._writer is None:
            self._out = self.path.open("w", newline="", encoding="utf-8")
            self._writer = csv.writer(self._out)
            self._writer.writerow(["line", "reason", *self.header])
            self.report.rejects_path = self.path
        self._writer.writerow([row.line, reason, *row.values])

    def close(self) -> None:
        if self._out is not None:
            self._out.close()


def _timestamp(value: str) -> datetime | None:
    try:
        stamp = datetime.fromisoformat(value.strip())
    except ValueError:
        return None
    return stamp.replace(tzinfo=UTC) if stamp.tzinfo is None else stamp.astimezone(UTC)


def _incoming(row: Row, m: Mapping, default_lists: tuple[str, ...]) -> Incoming:
    """One file row as an :class:`Incoming`; raises ValueError with the reject reason."""
    values = row.values
    width = len(m.header)
    if len(values) > width and any(v.strip() for v in values[width:]):
        raise ValueError(f"too many fields: {len(values)} fields, the header has {width}")
    if len(values) < width:
        values = values + [""] * (width - len(values))
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
    for index, key, convert in m.attributes:
        value = values[index]
        if value == "":
            continue
        try:
            attributes[key] = convert(value)
        except ValueError as exc:
            raise ValueError(f"bad value: column {m.header[index]!r}: {exc}") from None
    status = None
    if m.status is not None:
        raw = values[m.status].strip().lower()
        status = STATUS_ALIASES.get(raw)
        if status is None:
            raise ValueError(f"unknown status: {values[m.status]!r}")
    lists = default_lists
    if m.lists is not None:
        lists = default_lists + tuple(
            n.strip() for n in values[m.lists].split("|") if n.strip() and n.strip() not in
            default_lists)
    if m.created is None and m.updated is None:
        return Incoming(email, None if m.name is None else values[m.name].strip(), attributes,
                        status, lists, None, None, row.line)
    stamps: list[datetime | None] = []
    for column in (m.created, m.updated):
        text = "" if column is None else values[column].strip()
        stamp = _timestamp(text) if text else None
        if column is not None and text and stamp is None:
            # Not a timestamp we can read: kept as an attribute rather than lost.
            attributes[m.header[column]] = values[column]
        stamps.append(stamp)
    name = values[m.name].strip() if m.name is not None else None
    return Incoming(email, name, attributes, status, lists, stamps[0], stamps[1], row.line)


def import_file(store: Store, path: Path, options: ImportOptions,
                progress: Progress | None = None) -> ImportReport:
    """Import ``path``; raises :class:`ListFileError` only when the file cannot be used at all."""
    if options.mode not in MODES:
        raise ConfigError(f"--mode {options.mode!r}: expected one of {', '.join(MODES)}")
    stream: RowStream = open_rows(path, options.delimiter)
    try:
        return _import_stream(store, path, stream, options, progress)
    finally:
        stream.close()


def _import_stream(store: Store, path: Path, stream: RowStream, options: ImportOptions,
                   progress: Progress | None) -> ImportReport:
    report = ImportReport(path=path, encoding=stream.sniffed.encoding,
                          delimiter=stream.sniffed.delimiter,
                          encoding_fallback=stream.sniffed.fallback, dry_run=options.dry_run)
    mapping = build_mapping(stream.header, options.rules, options.attributes_json,
                            path=str(path))
    if options.list_name is None and mapping.lists is None:
        raise ListFileError("name the list to import into with --list (the file has no "
                            "'lists' column)", path=str(path))
    default_lists = (options.list_name,) if options.list_name else ()
    list_ids: dict[str, int] = {}

    def list_id(name: str) -> None:
        if name in list_ids:
            return
        found: int | None = (find_list(store, name) if options.dry_run
                             else ensure_list(store, name))
        if found is not None:
            list_ids[name] = found

    for name in default_lists:
        list_id(name)
    rejects = _Rejects(path.with_name(path.name + ".rejects.csv"), stream.header, report)
    seen: set[str] = set()
    batch: list[tuple[Row, Incoming]] = []
    raw = stream.rows

    def flush() -> None:
        rows = batch
        if options.mx is not None:
            verdicts = options.mx.check(domain_of(i.email) for _, i in rows)
            for row, item in rows:
                reason = verdicts[domain_of(item.email)]
                if reason is not None:
                    rejects.add(row, f"no mail server: {reason}")
            rows = [(r, i) for r, i in rows if verdicts[domain_of(i.email)] is None]
        for _, item in rows:
            for name in item.lists:
                list_id(name)
        by_line = {i.line: r for r, i in rows}
        result = write_batch(store, [i for _, i in rows], list_ids, mode=options.mode,
                             resubscribe=options.resubscribe, dry_run=options.dry_run)
        for item, reason in result.refused:
            rejects.add(by_line[item.line], reason)
        report.added += result.added
        report.updated += result.updated
        report.unchanged += result.unchanged
        report.suppressed_kept += result.suppressed_kept
        report.resubscribed += result.resubscribed
        batch.clear()
        if progress is not None:
            progress(report.read, _position(stream))

    try:
        for row in raw:
            report.read += 1
            if len(row.values) == 1 and row.values[0].startswith("<unparseable"):
                rejects.add(row, f"unparseable row: {row.values[0][14:-1]}")
                continue
            try:
                item = _incoming(row, mapping, default_lists)
            except ValueError as exc:
                rejects.add(row, str(exc))
                continue
            if item.email in seen:
                report.duplicates += 1
                continue
            seen.add(item.email)
            batch.append((row, item))
            if len(batch) >= options.batch:
                flush()
        if batch:
            flush()
    finally:
        rejects.close()
        report.recovered_lines = len(stream.recovered_lines)
    return report


def _position(stream: RowStream) -> int:
    return stream.bytes_read()


def import_csv(store: Store, path: Path, list_name: str,
               progress: Progress | None = None) -> ImportReport:
    """Import with the default options (upsert into ``list_name``)."""
    return import_file(store, path, ImportOptions(list_name=list_name), progress)
