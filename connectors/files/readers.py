"""The streaming readers behind `connectors.files`: one per format, each yielding typed chunks.

CSV goes through pyarrow's streaming reader with every column read as bytes, so a row in another
encoding or with the wrong number of fields is rejected with its row number instead of stopping
the file; the last row is held back until the end of the file is seen, so a truncated last line
is caught. Parquet is read a batch at a time. JSON and NDJSON: `connectors.files.json_file`.
"""

from __future__ import annotations

import codecs
import io
from collections.abc import Iterator, Sequence
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import pyarrow as pa
import pyarrow.csv as pacsv
import pyarrow.parquet as pq

from connectors.files.rows import parse_table
from connectors.records import Field, Parsed, Reject

BLOCK = 4 << 20            # bytes pyarrow parses at a time
UTF8 = ("utf-8", "utf-8-sig", "utf-16")


class FileRejected(ValueError):
    """A file that cannot be imported as a whole; the message is one line naming the file."""


@dataclass(frozen=True)
class FileSource:
    """A checked file: its format and what was learned from its head."""

    path: Path
    format: str                              # csv | parquet | json | ndjson
    columns: tuple[str, ...]                 # as named in the file
    size: int
    encoding: str | None = None
    delimiter: str | None = None
    rows: int | None = None                  # known up front for Parquet and JSON arrays
    records: list | None = field(default=None, repr=False, compare=False)   # a JSON array, read whole

    @property
    def name(self) -> str:
        return self.path.name


@dataclass
class Chunk:
    """Up to `rows` consecutive records of a file, typed, with the rejects among them."""

    number: int                  # 1-based
    parsed: Parsed
    rows_read: int               # typed rows + rejects
    position: int                # bytes of the file behind this chunk, for progress


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


def csv_chunks(source: FileSource, fields: Sequence[Field], rows: int) -> Iterator[Chunk]:
    """CSV in chunks of `rows`: bytes → pyarrow's streaming parser → decoded text → typed rows."""
    needed = [c for c in source.columns if c in {f.source for f in fields}]
    skipped: list[tuple[int, str, int, int]] = []   # (row, text, fields expected, fields found)

    def on_invalid(row) -> str:
        skipped.append((row.number - 1, row.text, row.expected_columns, row.actual_columns))
        return "skip"

    transcode = source.encoding == "utf-16"
    with source.path.open("rb") as raw:
        raw.seek(-1, io.SEEK_END)
        ends_cleanly = raw.read(1) in (b"\n", b"\r")
        raw.seek(0)
        tally = _Tally(raw)
        reader = pacsv.open_csv(
            tally, read_options=pacsv.ReadOptions(column_names=list(source.columns), skip_rows=1, block_size=BLOCK,
                                                  use_threads=False, encoding=source.encoding if transcode else "utf8"),
            parse_options=pacsv.ParseOptions(delimiter=source.delimiter or ",", newlines_in_values=True,
                                             invalid_row_handler=on_invalid),
            convert_options=pacsv.ConvertOptions(include_columns=needed, column_types={c: pa.binary() for c in needed},
                                                 strings_can_be_null=True, quoted_strings_can_be_null=False))
        numbering, told, number = _Numbering(skipped), 0, 0
        buffer, numbers = pa.table({c: pa.array([], pa.binary()) for c in needed}), np.empty(0, np.int64)
        for batch in reader:
            buffer = pa.concat_tables([buffer, pa.Table.from_batches([batch])])
            numbers = np.concatenate([numbers, numbering.take(batch.num_rows)])
            while buffer.num_rows > rows:   # one row stays back: the last row is judged at the end of the file
                number += 1
                skips, told = _skips(skipped, told, int(numbers[rows - 1]))
                yield _csv_chunk(source, number, buffer.slice(0, rows), numbers[:rows], skips, fields, tally.position)
                buffer, numbers = buffer.slice(rows), numbers[rows:]
        skips, told = _skips(skipped, told, None)
        if buffer.num_rows or skips:
            last = max([int(n) for n in numbers[-1:]] + [row for row, *_ in skips])
            ending = _Ending(last, tally.quotes % 2 == 1, not ends_cleanly)
            yield _csv_chunk(source, number + 1, buffer, numbers, skips, fields, tally.position, ending)


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
               fields: Sequence[Field], position: int, ending: _Ending | None = None) -> Chunk:
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
    parsed = parse_table(source.name, numbers, table, fields, rejects + undecodable)  # type: ignore[arg-type]
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


def parquet_chunks(source: FileSource, fields: Sequence[Field], rows: int) -> Iterator[Chunk]:
    """Parquet a batch of `rows` at a time, only the columns the stream reads."""
    parquet = pq.ParquetFile(source.path)
    wanted = {f.source: f for f in fields}
    needed = [c for c in source.columns if c in wanted]
    for column in needed:
        kind = parquet.schema_arrow.field(column).type
        if wanted[column].type == "timestamp" and pa.types.is_timestamp(kind) and kind.tz is None:
            raise FileRejected(f"{source.name}: column {column!r} holds timestamps without a time zone; "
                               f"{wanted[column].column} needs UTC instants")
    done = 0
    for number, batch in enumerate(parquet.iter_batches(batch_size=rows, columns=needed), 1):
        numbers = np.arange(done + 1, done + 1 + batch.num_rows, dtype=np.int64)
        done += batch.num_rows
        parsed = parse_table(source.name, numbers, pa.Table.from_batches([batch]), fields)  # type: ignore[arg-type]
        yield Chunk(number, parsed, batch.num_rows, source.size * done // max(source.rows or 1, 1))
