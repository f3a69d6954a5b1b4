"""What every reader of `connectors.files` shares — the checked file, its chunks, the one-line
refusal — and the Parquet reader. CSV: `files.delimited`; JSON and NDJSON: `files.json_file`.

Parquet is read a batch at a time, only the columns a stream reads. Before its first chunk can
land, `verify_parquet` decodes every row group of those columns (footer, page headers, pages),
so a file damaged in its third row group is refused whole instead of landing two of them.
"""

from __future__ import annotations

from collections.abc import Iterator, Sequence
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq

from connectors.files.rows import parse_table
from connectors.files.times import LocalTimes
from connectors.records import Field, Parsed

BLOCK = 4 << 20            # bytes pyarrow parses at a time


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
    skip_rows: int = 1                       # CSV: lines before the data (blank, comment and header lines)
    block: int | None = None                 # CSV: bytes parsed at a time, if more than BLOCK (`verify_csv`)

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


def refuse_duplicates(name: str, columns: Sequence[str]) -> None:
    seen: dict[str, int] = {}
    for i, column in enumerate(columns, 1):
        if column in seen:
            raise FileRejected(f"{name}: column {column!r} appears twice in the header (columns {seen[column]} "
                               f"and {i})")
        seen[column] = i


def one_line(exc: BaseException) -> str:
    """A library's message, first line only (pyarrow's can run to many)."""
    text = str(exc).strip()
    return text.splitlines()[0] if text else type(exc).__name__


def verify_parquet(source: FileSource, fields: Sequence[Field]) -> None:
    """Decode every row group of the columns the stream reads; a damaged one refuses the file."""
    parquet = pq.ParquetFile(source.path)
    needed = [c for c in source.columns if c in {f.source for f in fields}]
    groups = parquet.metadata.num_row_groups
    for group in range(groups):
        try:
            parquet.read_row_group(group, columns=needed)
        except Exception as exc:  # pyarrow: OSError or ArrowInvalid, in the words of its decoder
            raise FileRejected(f"{source.name}: damaged Parquet: row group {group + 1} of {groups} (rows after "
                               f"{sum(parquet.metadata.row_group(g).num_rows for g in range(group))}) cannot be "
                               f"read: {one_line(exc)}") from None


def parquet_chunks(source: FileSource, fields: Sequence[Field], rows: int,
                   times: LocalTimes = LocalTimes()) -> Iterator[Chunk]:
    """Parquet a batch of `rows` at a time, only the columns the stream reads."""
    parquet = pq.ParquetFile(source.path)
    wanted = {f.source: f for f in fields}
    needed = [c for c in source.columns if c in wanted]
    for column in needed:
        kind = parquet.schema_arrow.field(column).type
        if wanted[column].type == "timestamp" and pa.types.is_timestamp(kind) and kind.tz is None and not times.zone:
            raise FileRejected(f"{source.name}: column {column!r} holds timestamps without a time zone; "
                               f"pass --timezone ZONE if they are local times ({wanted[column].column} needs "
                               f"instants)")
    done = 0
    try:
        for number, batch in enumerate(parquet.iter_batches(batch_size=rows, columns=needed), 1):
            numbers = np.arange(done + 1, done + 1 + batch.num_rows, dtype=np.int64)
            done += batch.num_rows
            parsed = parse_table(source.name, numbers, pa.Table.from_batches([batch]), fields, (), times)  # type: ignore[arg-type]
            yield Chunk(number, parsed, batch.num_rows, source.size * done // max(source.rows or 1, 1))
    except (OSError, pa.ArrowInvalid) as exc:   # `verify_parquet` finds these before an import lands a row
        raise FileRejected(f"{source.name}: damaged Parquet after row {done}: {one_line(exc)}") from None
