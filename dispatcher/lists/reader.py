"""Reading subscriber files as they come from the wild, one row at a time.

Exports from Excel, Mailchimp, listmonk, Sendy and CRMs differ in encoding
(UTF-8 with or without BOM, UTF-16 "Unicode text", cp1252), delimiter
(``,`` ``;`` tab ``|``) and line ending, and carry quoted fields with
newlines inside. :func:`open_rows` finds all that out from the first bytes
and then streams: the file is never held in memory, and every row comes with
the line number it starts on in the original file, for the rejects file.
A quote that never closes costs only the line it is on: the lines it would
swallow are read again as the rows they are.
"""

from __future__ import annotations

import codecs
import csv
import io
import re
from collections import deque
from collections.abc import Iterator
from dataclasses import dataclass, field
from itertools import chain
from pathlib import Path
from typing import BinaryIO

from dispatcher.errors import ListFileError

SAMPLE = 1 << 20
DELIMITERS = (",", ";", "\t", "|")
# A field this large is a broken quote swallowing the rest of the file, not data.
FIELD_LIMIT = 1 << 20
# Nor is a quoted field still open this many lines after its row began. Excel, where
# most of these files pass, caps a cell at 253 line feeds and 32,767 characters;
# FIELD_LIMIT bounds a quote over long lines. Being generous costs little: a quote left
# open is mostly caught at the next quote it meets (_stray_close) or at the end of the file.
QUOTED_LINES = 1000
# A header's quoted column name may run over a line break or two, never over this many.
HEADER_LINES = 5
# Bytes cp1252 leaves undefined: a file that has them is Latin-1.
_CP1252_HOLES = frozenset(b"\x81\x8d\x8f\x90\x9d")


@dataclass
class Sniffed:
    encoding: str
    delimiter: str
    bom: bool = False
    # Set when the bytes were not UTF-8 and we fell back to a legacy code page:
    # the importer reports it, so a mis-decoded file never passes unnoticed.
    fallback: str | None = None


@dataclass(slots=True)
class Row:
    line: int
    values: list[str]
    # Why the row cannot be taken as read; ``values`` then hold its line as written.
    problem: str | None = None


@dataclass
class RowStream:
    """The header and an iterator of the data rows of one file."""

    path: Path
    sniffed: Sniffed
    header: list[str]
    rows: Iterator[Row]
    # Lines whose bytes were not valid in the detected encoding and were read as cp1252.
    recovered_lines: list[int] = field(default_factory=list)
    raw: BinaryIO | None = None

    def close(self) -> None:
        if self.raw is not None:
            self.raw.close()

    def __enter__(self) -> RowStream:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def bytes_read(self) -> int:
        """How far into the file the reader is (for a progress bar over the file size)."""
        if self.raw is None or self.raw.closed:
            return self.path.stat().st_size
        return self.raw.tell()


def detect_encoding(sample: bytes) -> tuple[str, bool, str | None]:
    """(codec, had a BOM, fallback note) for a file starting with ``sample``."""
    if sample.startswith(codecs.BOM_UTF8):
        return "utf-8-sig", True, None
    if sample.startswith((codecs.BOM_UTF16_LE, codecs.BOM_UTF16_BE)):
        return "utf-16", True, None
    head = sample[:4096]
    if len(head) >= 4:
        # ASCII text in UTF-16 without a BOM: every other byte is NUL.
        if head[1::2].count(0) > len(head) // 4 and head[0::2].count(0) == 0:
            return "utf-16-le", False, None
        if head[0::2].count(0) > len(head) // 4 and head[1::2].count(0) == 0:
            return "utf-16-be", False, None
    try:
        # A sample cut in the middle of a multi-byte character is still UTF-8.
        codecs.getincrementaldecoder("utf-8")().decode(sample, final=len(sample) < SAMPLE)
    except UnicodeDecodeError:
        if any(b in _CP1252_HOLES for b in sample):
            return "latin-1", False, "not UTF-8: read as Latin-1 (ISO-8859-1)"
        return "cp1252", False, "not UTF-8: read as Windows-1252"
    return "utf-8", False, None


def sniff_delimiter(first_line: str) -> str:
    """The delimiter occurring most often in the header line, outside quotes (``,`` on a tie)."""
    counts = dict.fromkeys(DELIMITERS, 0)
    quoted = False
    for char in first_line:
        if char == '"':
            quoted = not quoted
        elif not quoted and char in counts:
            counts[char] += 1
    best = max(DELIMITERS, key=lambda d: (counts[d], d == ","))
    return best if counts[best] else ","


def _header(first: str, text: io.TextIOBase, delimiter: str, path: Path) -> tuple[list[str], int]:
    """The column names and how many physical lines they take (``first`` and more).

    csv itself finds where the header ends: a quote inside an unquoted name
    (``5" size``) is text, not the start of a quoted field. A quoted name still
    open ``HEADER_LINES`` lines on, or at the end of the file, is a quote left open:
    read on, it would swallow the rows below it into the header.
    """
    open_quote = False

    def lines() -> Iterator[str]:
        nonlocal open_quote
        yield first
        for _ in range(HEADER_LINES - 1):
            line = text.readline()
            if not line:
                break
            yield line
        open_quote = True  # only asked for when a quoted field runs on

    reader = csv.reader(lines(), delimiter=delimiter)
    try:
        header = next(reader)
    except (csv.Error, StopIteration) as exc:
        raise ListFileError(f"cannot parse the header: {exc}", path=str(path), line=1) from exc
    if open_quote:
        raise ListFileError(f"the header opens a quote that is not closed within "
                            f"{reader.line_num} line(s); a header is one line of column names",
                            path=str(path), line=1)
    return header, reader.line_num


def _recover(values: list[str]) -> list[str]:
    """Fields holding undecodable bytes (kept as surrogates) re-read as cp1252."""
    return [
        v.encode("utf-8", "surrogateescape").decode("cp1252", "replace")
        if _ESCAPED.search(v) else v
        for v in values
    ]


_CONTROL = bytes(b for b in range(32) if b not in b"\t\n\r\x0c\x1b")


def _looks_binary(head: bytes) -> bool:
    """Whether a file starts like a spreadsheet, archive or image rather than text.

    A stray NUL or two in a text export is a bad row, rejected on its own; a tenth of the
    first bytes being control characters is not text at all.
    """
    return len(head.translate(None, _CONTROL)) < len(head) * 0.9


def open_rows(path: Path, delimiter: str | None = None) -> RowStream:
    """Open ``path`` for streaming; raises :class:`ListFileError` if it cannot be read at all."""
    try:
        raw: BinaryIO = path.open("rb")
    except OSError as exc:
        raise ListFileError(f"cannot read the file: {exc.strerror}", path=str(path)) from exc
    try:
        sample = raw.read(SAMPLE)
        raw.seek(0)
        encoding, bom, fallback = detect_encoding(sample)
        if not encoding.startswith("utf-16") and _looks_binary(sample[:4096]):
            raise ListFileError("not a text CSV file: it holds binary data (a spreadsheet? "
                                "save it as CSV first)", path=str(path))
        # UTF-8 is only proven for the sample: bad bytes later are kept as
        # surrogates and that row is re-read as cp1252 (and reported).
        errors = "surrogateescape" if encoding.startswith("utf-8") else "strict"
        text = io.TextIOWrapper(raw, encoding=encoding, errors=errors, newline="")
        first = text.readline()
    except (UnicodeDecodeError, OSError) as exc:
        raw.close()
        raise ListFileError(f"cannot decode the file as {encoding}: {exc}", path=str(path)) from exc
    except ListFileError:
        raw.close()
        raise
    if not first.strip():
        raw.close()
        raise ListFileError("the file is empty (no header line)", path=str(path), line=1)
    sniffed = Sniffed(encoding, delimiter or sniff_delimiter(first), bom, fallback)
    try:
        header, header_lines = _header(first, text, sniffed.delimiter, path)
    except (UnicodeDecodeError, OSError) as exc:
        raw.close()
        raise ListFileError(f"cannot decode the file as {encoding}: {exc}", path=str(path)) from exc
    except ListFileError:
        raw.close()
        raise
    stream = RowStream(path, sniffed, [h.strip() for h in header], iter(()), raw=raw)
    stream.rows = _iter_rows(text, header_lines, sniffed.delimiter, stream)
    return stream


def _iter_rows(text: io.TextIOWrapper, header_lines: int, delimiter: str,
               stream: RowStream) -> Iterator[Row]:
    csv.field_size_limit(FIELD_LIMIT)
    held: list[str] = []  # the physical lines of the row being read
    replay: deque[str] = deque()  # lines to read again after a rewind, next first
    line = header_lines + 1  # where the next row starts in the file
    with text:
        reader = csv.reader(_lines(text, held), delimiter=delimiter, strict=False)
        while True:
            # A plain for loop (cheaper per row than next() under try), left only
            # when a row cannot be read as it is, to go on after it.
            try:
                for values in reader:
                    span = len(held)
                    if span > 1:
                        stray = _stray_close(held, delimiter)
                        if stray is not None:
                            raise _Unterminated(f"is only closed on line {line + stray}, by "
                                                "a quote followed by more text")
                    start = line
                    line += span
                    held.clear()
                    if not values or (len(values) == 1 and not values[0].strip()):
                        continue
                    if errors_in(values):
                        values = _recover(values)
                        stream.recovered_lines.append(start)
                    yield Row(start, values)
                return
            except _Unterminated as exc:
                why = str(exc)
            except csv.Error as exc:
                if len(held) > 1:
                    why = f"is still open where reading stopped: {exc}"
                else:
                    yield Row(line, [f"<unparseable: {exc}>"])
                    line += 1
                    held.clear()
                    continue
            except UnicodeDecodeError as exc:
                raise ListFileError(f"cannot decode as {stream.sniffed.encoding}: {exc.reason}",
                                    path=str(stream.path), line=line) from exc
            # The open quote belongs to no field: its line alone is rejected, and the
            # lines it swallowed are read again as the rows they are.
            values = _as_written(held[0], delimiter)
            if errors_in(values):
                values = _recover(values)
                stream.recovered_lines.append(line)
            yield Row(line, values, f"unterminated quoted field: line {line} opens a quote "
                                    f"that {why}")
            replay.extendleft(reversed(held[1:]))
            held.clear()
            line += 1
            reader = csv.reader(_lines(chain(_drain(replay), text), held), delimiter=delimiter,
                                strict=False)


class _Unterminated(Exception):
    """The quoted field the row being read continues cannot be data; says why."""


def _lines(lines: Iterator[str], held: list[str]) -> Iterator[str]:
    """``lines`` for csv, each also kept in ``held``, which the caller empties after each row.

    csv only asks for a line while ``held`` is not empty when a quoted field runs on, so
    this is where a quote that never closes is caught, before it swallows the file.
    """
    for line in lines:
        if held and len(held) >= QUOTED_LINES:
            held.append(line)
            raise _Unterminated(f"is still open after {QUOTED_LINES:,} lines")
        held.append(line)
        yield line
    if held:
        raise _Unterminated("is still open at the end of the file")


def _drain(replay: deque[str]) -> Iterator[str]:
    """Pops as it goes: lines csv has not asked for yet stay for the next rewind."""
    while replay:
        yield replay.popleft()


def _stray_close(held: list[str], delimiter: str) -> int | None:
    """Which line of ``held`` has a quote followed by more text after the first, if one has.

    csv in its lenient mode takes such a quote as closing the field that ran on and reads
    on; spanning lines, it is the opening quote of a later field that ended a quote left
    open rows before. The lines after the first are read from inside the field that ran
    on (the quote put before them); the first line's own quotes are read leniently, as on
    any row.
    """
    strict = csv.reader(['"' + held[1], *held[2:]], delimiter=delimiter, strict=True)
    try:
        for _ in strict:
            pass
    except csv.Error:
        return strict.line_num
    return None


def _as_written(line: str, delimiter: str) -> list[str]:
    """One physical line cut at each delimiter, quotes left as they are.

    Where a quote was meant to close is anyone's guess; these fields joined with the
    delimiter give the line back, for whoever fixes it from the rejects file.
    """
    return line.rstrip("\r\n").split(delimiter)


_ESCAPED = re.compile("[\udc80-\udcff]")


def errors_in(values: list[str]) -> bool:
    """Whether a row holds bytes that were not valid UTF-8 (kept as lone surrogates)."""
    joined = "".join(values)
    return not joined.isascii() and _ESCAPED.search(joined) is not None
