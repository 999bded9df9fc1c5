"""CSV import: stream rows, map and validate them, write in batches, keep every bad row.

Every rejected row lands in ``FILE.rejects.csv`` (original line number, the
reason, then the original fields under the original header, so the file can
be fixed and imported again) and in the summary; the good rows are kept.
Each batch is one transaction, so an interrupted import leaves whole batches
and running it again completes it without doubling anyone.
"""

from __future__ import annotations

import csv
import gc
from collections import Counter
from collections.abc import Callable, Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any, TextIO

from dispatcher.errors import ConfigError, ListFileError
from dispatcher.lists.addresses import domain_of
from dispatcher.lists.incoming import RowReader
from dispatcher.lists.mapping import Rule, build_mapping
from dispatcher.lists.reader import RowStream, open_rows
from dispatcher.lists.seen import MEMORY_BUDGET, SeenAddresses
from dispatcher.store.database import Store
from dispatcher.store.subscribers import (
    MODES,
    Incoming,
    ensure_list,
    find_list,
    refresh_statistics,
    write_batch,
)

if TYPE_CHECKING:
    from dispatcher.lists.mx_check import MXChecker

BATCH = 5000
# Rows written by one import past which PostgreSQL's planner statistics are refreshed.
ANALYZE_AFTER = 10_000
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
    # --status-map: the file's own status values (lower-cased) -> our status.
    status_map: dict[str, str] = field(default_factory=dict)
    batch: int = BATCH
    # Bytes of addresses kept in memory to merge the file's duplicates; past it, on disk.
    seen_memory: int = MEMORY_BUDGET


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

    def add(self, line: int, values: Sequence[str], reason: str) -> None:
        self.report.rejected[reason.partition(":")[0]] += 1
        if self.report.dry_run:
            return
        if self._writer is None:
            self._out = self.path.open("w", newline="", encoding="utf-8")
            self._writer = csv.writer(self._out)
            self._writer.writerow(["line", "reason", *self.header])
            self.report.rejects_path = self.path
        self._writer.writerow([line, reason, *values])

    def close(self) -> None:
        if self._out is not None:
            self._out.close()


def import_file(store: Store, path: Path, options: ImportOptions,
                progress: Progress | None = None) -> ImportReport:
    """Import ``path``; raises :class:`ListFileError` only when the file cannot be used at all."""
    if options.mode not in MODES:
        raise ConfigError(f"--mode {options.mode!r}: expected one of {', '.join(MODES)}")
    stream: RowStream = open_rows(path, options.delimiter)
    try:
        with _old_objects_left_alone():
            report = _import_stream(store, path, stream, options, progress)
    finally:
        stream.close()
    if report.added + report.updated >= ANALYZE_AFTER:
        refresh_statistics(store)
    return report


# Python 3.12 starts with objects of its own frozen (375 on 3.12.1); only a count above
# the one seen when this module was loaded says the application froze objects itself.
_FROZEN_AT_LOAD = gc.get_freeze_count()


@contextmanager
def _old_objects_left_alone() -> Iterator[None]:
    """Keep the garbage collector's full passes to the objects the import makes.

    Each batch's rows live long enough to reach the oldest generation, so full
    passes come every few batches, and each walks every object of the loaded
    application (~50 ms): ~12% of the import's CPU time in the benchmark.
    Frozen objects are only skipped, not lost: they are collectable again after.
    """
    if gc.get_freeze_count() > _FROZEN_AT_LOAD:
        yield  # the application manages freezing itself
        return
    gc.freeze()
    try:
        yield
    finally:
        gc.unfreeze()


def _import_stream(store: Store, path: Path, stream: RowStream, options: ImportOptions,
                   progress: Progress | None) -> ImportReport:
    report = ImportReport(path=path, encoding=stream.sniffed.encoding,
                          delimiter=stream.sniffed.delimiter,
                          encoding_fallback=stream.sniffed.fallback, dry_run=options.dry_run)
    mapping = build_mapping(stream.header, options.rules, options.attributes_json,
                            path=str(path))
    if options.status_map and mapping.status is None:
        raise ListFileError("--status-map: the file has no status column (columns: "
                            f"{', '.join(stream.header)}); name it with --map \"Column=status\"",
                            path=str(path), line=1)
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
    seen = SeenAddresses(options.seen_memory)
    taken = seen.recent
    # The batch keeps each row's fields as a tuple of strings (for the rejects file),
    # which the garbage collector stops tracking: every tracked object a batch keeps
    # alive ends up in the oldest generation and brings the next full pass nearer.
    items: list[Incoming] = []
    rows: list[tuple[int, tuple[str, ...]]] = []
    incoming = RowReader(mapping, default_lists, options.status_map).incoming

    def flush() -> None:
        batch = items
        batch_rows = rows
        repeats = seen.earlier([i.email for i in batch])
        if repeats:
            report.duplicates += len(repeats)
            kept = [k for k, item in enumerate(batch) if item.email not in repeats]
            batch = [batch[k] for k in kept]
            batch_rows = [rows[k] for k in kept]
        if options.mx is not None:
            verdicts = options.mx.check(domain_of(i.email) for i in batch)
            for (line, values), item in zip(batch_rows, batch, strict=True):
                reason = verdicts[domain_of(item.email)]
                if reason is not None:
                    rejects.add(line, values, f"no mail server: {reason}")
            batch = [i for i in batch if verdicts[domain_of(i.email)] is None]
        if mapping.lists is not None:
            # In order of first appearance, as lists are created (and numbered).
            for name in dict.fromkeys(name for item in batch for name in item.lists):
                list_id(name)
        result = write_batch(store, batch, list_ids, mode=options.mode,
                             resubscribe=options.resubscribe, dry_run=options.dry_run)
        if result.refused:
            by_line = dict(batch_rows)
            for item, reason in result.refused:
                rejects.add(item.line, by_line[item.line], reason)
        report.added += result.added
        report.updated += result.updated
        report.unchanged += result.unchanged
        report.suppressed_kept += result.suppressed_kept
        report.resubscribed += result.resubscribed
        items.clear()
        rows.clear()
        if progress is not None:
            progress(report.read, _position(stream))

    try:
        for row in stream.rows:
            report.read += 1
            values = row.values
            if len(values) == 1 and values[0].startswith("<unparseable"):
                rejects.add(row.line, values, f"unparseable row: {values[0][14:-1]}")
                continue
            try:
                item = incoming(row)
            except ValueError as exc:
                rejects.add(row.line, values, str(exc))
                continue
            if item.email in taken:
                report.duplicates += 1
                continue
            taken[item.email] = None
            items.append(item)
            rows.append((row.line, tuple(values)))
            if len(items) >= options.batch:
                flush()
        if items:
            flush()
    finally:
        seen.close()
        rejects.close()
        report.recovered_lines = len(stream.recovered_lines)
    return report


def _position(stream: RowStream) -> int:
    return stream.bytes_read()


def import_csv(store: Store, path: Path, list_name: str,
               progress: Progress | None = None) -> ImportReport:
    """Import with the default options (upsert into ``list_name``)."""
    return import_file(store, path, ImportOptions(list_name=list_name), progress)
