"""CSV for `connectors.files`: the head (preamble, header, delimiter) and the streaming reader.

Quoting is RFC 4180 with the leniency of spreadsheet exports: a quote opens a quoted value only
at the start of a field, so a quote inside an unquoted value (`Об"ед`) is literal. Blank lines
and `#` comment lines before the header are skipped; rows keep the file's own numbers (the
first record after the header is row 1). Only the columns a stream reads are converted, and
no value has a size limit: a value longer than the parse block grows the block (`verify_csv`).

The reader is pyarrow's streaming parser with every column read as bytes, so a row in another
encoding or with the wrong number of fields is rejected with its row number instead of stopping
the file; the last row is held back until the end of the file is seen, so a truncated last line
is caught.
"""

from __future__ import annotations

import codecs
import csv
import dataclasses
import io
import mmap
from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import pyarrow as pa
import pyarrow.csv as pacsv

import connectors.files.readers as readers
from connectors.files.readers import Chunk, FileRejected, FileSource, refuse_duplicates
from connectors.files.rows import parse_table
from connectors.files.times import LocalTimes
from connectors.records import Field, Reject

UTF8 = ("utf-8", "utf-8-sig", "utf-16")
MAX_BLOCK = 256 << 20      # the longest row `verify_csv` grows the parse block to
DELIMITERS = (",", ";", "\t", "|")
csv.field_size_limit(2**31 - 1)   # the head is read with the csv module: no value is too long for it


def open_csv(path: Path, size: int, head: bytes, encoding: str, delimiter: str | None, sample: int) -> FileSource:
    """The header and delimiter from the file's head, past blank and `#` lines before the header."""
    name = path.name
    text = head.decode(encoding, errors="replace")
    if len(head) == sample:
        text = text[: text.rfind("\n") + 1] or text
    lines = text.lstrip("\ufeff").split("\n")
    preamble = next((i for i, line in enumerate(lines) if line.strip() and not line.lstrip().startswith("#")), None)
    if preamble is None:
        raise FileRejected(f"{name}: no header: only blank or comment lines")
    body = "\n".join(lines[preamble:])
    if "\ufffd" in lines[preamble]:
        raise FileRejected(f"{name}: the header is not {encoding} text; pass --encoding")
    delimiter = delimiter or _delimiter(body)
    reader = csv.reader(io.StringIO(body, newline=""), delimiter=delimiter)
    header = [column.strip() or f"column_{i}" for i, column in enumerate(next(reader), 1)]
    header_lines = reader.line_num
    refuse_duplicates(name, header)
    if not any(record for record in reader) and len(head) == size:
        raise FileRejected(f"{name}: has a header but no rows")
    return FileSource(path, "csv", tuple(header), size, encoding, delimiter, skip_rows=preamble + header_lines)


def _delimiter(text: str) -> str:
    """The candidate that splits the first lines into the most columns, the same number on each line."""
    lines = text.splitlines()[:50]
    best, best_score = ",", (0, 0)
    for candidate in DELIMITERS:
        counts = [len(r) for r in csv.reader(io.StringIO("\n".join(lines)), delimiter=candidate) if r]
        if not counts or counts[0] < 2:
            continue
        score = (sum(c == counts[0] for c in counts), counts[0])
        if score > best_score:
            best, best_score = candidate, score
    return best


class _Tally:
    """A binary file that counts what passes through: bytes read and quote characters."""

    closed = False

    def __init__(self, raw: io.BufferedReader) -> None:
        self.raw, self.position, self.quotes = raw, 0, 0

    def readable(self) -> bool:
        return True

    def read(self, size: int = -1) -> bytes:
        data = self.raw.read(size)
        self.position, self.quotes = self.position + len(data), self.quotes + data.count(b'"')
        return data


class _Numbering:
    """File row numbers of the rows pyarrow returns: it skips the rows it could not split."""

    def __init__(self, skipped: list[tuple[int, str, int, int]]) -> None:
        self.skipped, self.next, self.used = skipped, 1, 0

    def take(self, n: int) -> np.ndarray:
        pending = np.array([row for row, *_ in self.skipped[self.used:]], np.int64)   # ascending
        candidates = np.arange(self.next, self.next + n + len(pending), dtype=np.int64)
        numbers = candidates[~np.isin(candidates, pending)][:n]
        if n:
            self.used += int(np.searchsorted(pending, numbers[-1], side="right"))
            self.next = int(numbers[-1]) + 1
        return numbers


def _reader(source: FileSource, stream: Any, needed: list[str], on_invalid, block: int):
    """pyarrow's streaming CSV reader over the data rows: the preamble and header skipped, every
    column read as bytes (decoded by `_decode`), only the columns the stream reads converted."""
    transcode = source.encoding == "utf-16"
    return pacsv.open_csv(
        stream, read_options=pacsv.ReadOptions(column_names=list(source.columns), skip_rows=source.skip_rows,
                                               block_size=block, use_threads=False,
                                               encoding=source.encoding if transcode else "utf8"),
        parse_options=pacsv.ParseOptions(delimiter=source.delimiter or ",", newlines_in_values=True,
                                         invalid_row_handler=on_invalid),
        convert_options=pacsv.ConvertOptions(include_columns=needed, column_types={c: pa.binary() for c in needed},
                                             strings_can_be_null=True, quoted_strings_can_be_null=False))


def verify_csv(source: FileSource, fields: Sequence[Field]) -> FileSource:
    """Parse the whole file once, landing nothing, so that an import cannot fail halfway: a row
    longer than the parse block (a huge value, an unclosed quote) grows the block, up to
    `MAX_BLOCK`; what still cannot be parsed refuses the file in one line. Returns the source
    with the block size that reads it."""
    needed = [c for c in source.columns if c in {f.source for f in fields}]
    block = source.block or readers.BLOCK
    while True:
        seen = 0
        try:
            with source.path.open("rb") as raw:
                for batch in _reader(source, raw, needed, lambda row: "skip", block):
                    seen += batch.num_rows
            return dataclasses.replace(source, block=block if block > readers.BLOCK else None)
        except (pa.ArrowInvalid, OSError) as exc:
            message = str(exc).strip().splitlines()[0] if str(exc).strip() else type(exc).__name__
            if "straddl" in message and block < MAX_BLOCK:
                block *= 4
                continue
            if "straddl" in message:
                message = f"a row longer than {MAX_BLOCK:,} bytes (an unclosed quote?)"
            raise FileRejected(f"{source.name}: cannot be read as CSV after row {seen}: {message}") from None


def csv_chunks(source: FileSource, fields: Sequence[Field], rows: int,
               times: LocalTimes = LocalTimes()) -> Iterator[Chunk]:
    """CSV in chunks of `rows`: bytes → pyarrow's streaming parser → decoded text → typed rows."""
    needed = [c for c in source.columns if c in {f.source for f in fields}]
    skipped: list[tuple[int, str, int, int]] = []   # (row, text, fields expected, fields found)

    def on_invalid(row) -> str:   # pyarrow counts the lines it skipped before the data
        skipped.append((row.number - source.skip_rows, row.text, row.expected_columns, row.actual_columns))
        return "skip"

    with source.path.open("rb") as raw:
        raw.seek(-1, io.SEEK_END)
        ends_cleanly = raw.read(1) in (b"\n", b"\r")
        raw.seek(0)
        tally = _Tally(raw)
        reader = _reader(source, tally, needed, on_invalid, source.block or readers.BLOCK)
        numbering, told, number = _Numbering(skipped), 0, 0
        buffer, numbers = pa.table({c: pa.array([], pa.binary()) for c in needed}), np.empty(0, np.int64)
        for batch in _refusing(source, reader):
            buffer = pa.concat_tables([buffer, pa.Table.from_batches([batch])])
            numbers = np.concatenate([numbers, numbering.take(batch.num_rows)])
            while buffer.num_rows > rows:   # one row stays back: the last row is judged at the end of the file
                number += 1
                skips, told = _skips(skipped, told, int(numbers[rows - 1]))
                yield _csv_chunk(source, number, buffer.slice(0, rows), numbers[:rows], skips, fields, tally.position,
                                 times)
                buffer, numbers = buffer.slice(rows), numbers[rows:]
        skips, told = _skips(skipped, told, None)
        if buffer.num_rows or skips:
            last = max([int(n) for n in numbers[-1:]] + [row for row, *_ in skips])
            open_quote = tally.quotes % 2 == 1 and _ends_inside_quotes(source)
            ending = _Ending(last, open_quote, not ends_cleanly)
            yield _csv_chunk(source, number + 1, buffer, numbers, skips, fields, tally.position, times, ending)


def _refusing(source: FileSource, batches: Iterator) -> Iterator:
    """The reader's batches; a library error midway (which `verify_csv` rules out) in one line."""
    try:
        yield from batches
    except (pa.ArrowInvalid, OSError) as exc:
        message = str(exc).strip().splitlines()[0] if str(exc).strip() else type(exc).__name__
        raise FileRejected(f"{source.name}: cannot be read as CSV: {message}") from None


def _ends_inside_quotes(source: FileSource) -> bool:
    """Whether the file ends inside a quoted value, read as pyarrow reads CSV (RFC 4180, with the
    leniency of spreadsheet exports): a quote opens a quoted value only at the start of a field,
    inside one `""` is a quote and `"` closes it; a quote anywhere else is literal (`Об"ед`).
    Only the quotes are visited, and only when their count is odd."""
    if source.encoding == "utf-16" or source.size == 0:
        return True   # the count of quote bytes decides there
    starts = (source.delimiter or ",").encode(), b"\n", b"\r"
    with source.path.open("rb") as handle, mmap.mmap(handle.fileno(), 0, access=mmap.ACCESS_READ) as data:
        inside, at = False, data.find(b'"')
        while at != -1:
            if inside and data[at + 1:at + 2] == b'"':
                at = data.find(b'"', at + 2)
                continue
            if inside:
                inside = False
            elif at == 0 or data[at - 1:at] in starts or data[:at] == codecs.BOM_UTF8:
                inside = True
            at = data.find(b'"', at + 1)
    return inside


@dataclass(frozen=True)
class _Ending:
    """How the file ended: its last row, and whether a quote was left open or the line unfinished."""

    last: int
    open_quote: bool
    no_line_end: bool


def _skips(skipped: list, told: int, last: int | None) -> tuple[list, int]:
    """The skipped rows up to row `last` (all when None) that no chunk has reported yet."""
    end = told
    while end < len(skipped) and (last is None or skipped[end][0] <= last):
        end += 1
    return skipped[told:end], end


def _csv_chunk(source: FileSource, number: int, table: pa.Table, numbers: np.ndarray, skips: list,
               fields: Sequence[Field], position: int, times: LocalTimes, ending: _Ending | None = None) -> Chunk:
    """One chunk's rows typed; the final chunk also judges the file's last row."""
    note = " (the file ends mid-row: truncated?)"
    cut = ending.last if ending and (ending.open_quote or ending.no_line_end) else None
    rejects = [Reject(f"row {row}: {found} field(s) where the header has {expected}" + (note if row == cut else ""),
                      None, {"_file": source.name, "_row": row, "_text": text[:2000]})
               for row, text, expected, found in skips]
    if ending and ending.open_quote and len(numbers) and numbers[-1] == ending.last:
        last = {k: _text(v[0]) for k, v in table.slice(table.num_rows - 1).to_pydict().items()}
        rejects.append(Reject(f"row {ending.last}: the file ends inside a quoted value{note}", None,
                              {"_file": source.name, "_row": ending.last, **last}))
        table, numbers = table.slice(0, table.num_rows - 1), numbers[:-1]
    table, numbers, undecodable = _decode(source, table, numbers)
    parsed = parse_table(source.name, numbers, table, fields, rejects + undecodable, times)  # type: ignore[arg-type]
    return Chunk(number, parsed, parsed.table.num_rows + len(parsed.rejects), position)


def _text(value: bytes | None) -> str | None:
    return None if value is None else value.decode("utf-8", "replace")


def _decode(source: FileSource, table: pa.Table, numbers: np.ndarray) -> tuple[pa.Table, np.ndarray, list[Reject]]:
    """Text columns from the file's bytes; a row with a value in another encoding is rejected."""
    if not table.num_columns:
        return table, numbers, []
    encoding = source.encoding or "utf-8"
    utf8 = codecs.lookup(encoding).name in UTF8
    problems: dict[int, tuple[str, str]] = {}
    columns = []
    for name in table.column_names:
        column = table.column(name).combine_chunks()
        if utf8:
            try:
                columns.append(column.cast(pa.string()))
                continue
            except pa.ArrowInvalid:
                pass
        texts = []
        for i, value in enumerate(column.to_pylist()):
            text, problem = _decode_value(value, encoding, utf8)
            if problem:
                problems.setdefault(i, (name, problem))
            texts.append(text)
        columns.append(pa.array(texts, pa.string()))
    table = pa.Table.from_arrays(columns, names=table.column_names)
    if not problems:
        return table, numbers, []
    rows = table.to_pylist()
    rejects = [Reject(f"row {numbers[i]}: field {name}: {problem}", name,
                      {"_file": source.name, "_row": int(numbers[i]), **rows[i]})
               for i, (name, problem) in sorted(problems.items())]
    keep = [i for i in range(table.num_rows) if i not in problems]
    return table.take(pa.array(keep, pa.int64())), numbers[keep], rejects


def _decode_value(value: bytes | None, encoding: str, utf8: bool) -> tuple[str | None, str | None]:
    """(text, problem): UTF-8 files reject bytes that are not UTF-8; others reject text that is."""
    if value is None:
        return None, None
    if utf8:
        try:
            return value.decode("utf-8"), None
        except UnicodeDecodeError:
            text = value.decode("cp1251", "replace")
            return text, f"not valid UTF-8, the file's encoding (mixed encodings? as cp1251: {text[:40]!r})"
    try:
        text = value.decode(encoding)
    except UnicodeDecodeError:
        return value.decode(encoding, "replace"), f"not valid {encoding}"
    if not value.isascii():
        try:
            other = value.decode("utf-8")
        except UnicodeDecodeError:
            return text, None
        return other, f"UTF-8 text in a {encoding} file (mixed encodings: {other[:40]!r})"
    return text, None


