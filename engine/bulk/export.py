"""Exporting a warehouse table to CSV or Parquet, streamed: memory bounded by a chunk, not the table.

    export_table(database_url, ExportSpec("agent_status_intervals", Path("out.parquet"),
                 start=dt.date(2026, 11, 1), end=dt.date(2026, 11, 7), filters={"agent_id": "42"}))

One `COPY (SELECT ...) TO STDOUT` in a repeatable-read transaction (the row count for the
progress bar and the rows agree). CSV goes from COPY to the file as it comes, with a header and
ISO-8601 timestamps (`2026-11-09T08:00:00+00:00`); Parquet is cut into whole records, parsed by
Arrow a chunk at a time and written as row groups with the lake's schema (the stream's columns
and the lineage columns). The file is written under a temporary name and renamed when complete.

Only catalog tables and their columns are accepted; identifiers are quoted with
`psycopg.sql.Identifier` and every value is a query parameter. `--start`/`--end` are inclusive
days on the table's partition column.
"""

from __future__ import annotations

import datetime as dt
import io
import os
import time
import uuid
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path

import orjson
import psycopg
import pyarrow as pa
import pyarrow.csv as pacsv
import pyarrow.parquet as pq
from psycopg import sql

from connectors.streams import Stream
from engine import catalog, progress
from engine.landing import lake, warehouse

FORMATS = ("parquet", "csv")
CHUNK_BYTES = 16 << 20           # COPY output parsed per Parquet row group
PROGRESS_ROWS = 50_000
Progress = Callable[[int], None]


@dataclass(frozen=True)
class ExportSpec:
    """What to export, where, and which rows."""

    table: str
    out: Path
    start: dt.date | None = None
    end: dt.date | None = None
    filters: dict[str, str] = field(default_factory=dict)   # column -> value, all must match
    file_format: str = "parquet"
    force: bool = False


def export_root() -> Path | None:
    """`WFM_EXPORT_ROOT`: when set, exports may only be written below it."""
    root = os.environ.get("WFM_EXPORT_ROOT")
    return Path(root).expanduser().resolve() if root else None


def target_path(out: Path, force: bool, root: Path | None = None) -> Path:
    """The resolved output path; refuses an existing file without force and a path outside the root."""
    path = Path(out).expanduser().resolve()
    if root is not None and not path.is_relative_to(root):
        raise PermissionError(f"{out}: outside the export root {root} (WFM_EXPORT_ROOT)")
    if path.is_dir():
        raise IsADirectoryError(f"{out}: is a directory; give a file name")
    if path.exists() and not force:
        raise FileExistsError(f"{out}: already exists; pass --force to overwrite")
    return path


def exported_stream(table: str) -> Stream:
    if table not in catalog.IMPORTABLE:
        raise ValueError(f"unknown table {table!r}; exportable: {', '.join(catalog.IMPORTABLE)}")
    return catalog.IMPORTABLE[table]


def where_clause(stream: Stream, start: dt.date | None, end: dt.date | None,
                 filters: dict[str, str]) -> tuple[sql.Composable, list]:
    """The row filter and its parameters; columns are checked against the table, values are parameters."""
    types = dict(warehouse.columns(stream)) | {"_run_id": "uuid", "_extracted_at": "timestamptz"}
    if (owner := warehouse.owner_column(stream)) is not None:      # --filter source=cc-north: one connection's
        types[owner] = "text"
    conditions: list[sql.Composable] = []
    params: list = []
    if start is not None or end is not None:
        if stream.partition is None:
            raise ValueError(f"{stream.name} has no partition column; --start/--end do not apply")
        if start and end and end < start:
            raise ValueError(f"--end {end} is before --start {start}")
        column = sql.Identifier(stream.partition)
        by_day = types[stream.partition] == "date"
        if start is not None:
            conditions.append(sql.SQL("{} >= %s").format(column))
            params.append(start if by_day else _midnight(start))
        if end is not None:
            # the day after is PostgreSQL's arithmetic: in Python it overflows on 9999-12-31
            conditions.append(sql.SQL("{} <= %s" if by_day else "{} < %s::timestamptz + interval '1 day'").format(column))
            params.append(end if by_day else _midnight(end))
    for name, value in filters.items():
        if name not in types or types[name] in ("text[]", "jsonb"):
            usable = [c for c, t in types.items() if t not in ("text[]", "jsonb")]
            raise ValueError(f"--filter: {stream.name} has no column {name!r} to filter on "
                             f"(columns: {', '.join(usable)})")
        conditions.append(sql.SQL("{} = CAST(%s AS {})").format(sql.Identifier(name), sql.SQL(types[name])))
        params.append(value)
    if not conditions:
        return sql.SQL(""), params
    return sql.SQL(" WHERE ") + sql.SQL(" AND ").join(conditions), params


def _midnight(day: dt.date) -> dt.datetime:
    return dt.datetime.combine(day, dt.time(), dt.timezone.utc)


def _select_list(schema: pa.Schema, for_csv: bool) -> sql.Composable:
    """Columns as COPY should write them: lists as JSON; for CSV also timestamps and booleans as ISO/JSON."""
    items = []
    for f in schema:
        as_json = pa.types.is_list(f.type) or for_csv and (pa.types.is_timestamp(f.type) or pa.types.is_boolean(f.type))
        items.append(sql.SQL("to_json({0}) #>> '{{}}' AS {0}").format(sql.Identifier(f.name)) if as_json
                     else sql.Identifier(f.name))
    return sql.SQL(", ").join(items)


def export_table(database_url: str, spec: ExportSpec) -> dict:
    """Write the selected rows to `spec.out` and return what was written (progress: `engine.progress`)."""
    stream = exported_stream(spec.table)
    if spec.file_format not in FORMATS:
        raise ValueError(f"unknown export format {spec.file_format!r}; use parquet or csv")
    where, params = where_clause(stream, spec.start, spec.end, spec.filters)
    path = target_path(spec.out, spec.force, export_root())
    schema = lake.lake_schema(stream)
    started = time.perf_counter()
    path.parent.mkdir(parents=True, exist_ok=True)
    temporary = path.with_name(f".{path.name}.{uuid.uuid4().hex}.tmp")
    with psycopg.connect(database_url) as conn:
        conn.isolation_level = psycopg.IsolationLevel.REPEATABLE_READ   # the count and the rows agree
        if conn.execute("SELECT to_regclass(%s)", (f"{warehouse.SCHEMA}.{stream.name}",)).fetchone()[0] is None:
            raise LookupError(f"table {warehouse.SCHEMA}.{stream.name} does not exist yet: "
                              "nothing was synced or imported")
        for setting in ("SET TIME ZONE 'UTC'", "SET DateStyle = 'ISO'", "SET extra_float_digits = 1"):
            conn.execute(setting)
        total = conn.execute(sql.SQL("SELECT count(*) FROM {}{}").format(warehouse.table_ident(stream), where),
                             params).fetchone()[0]
        progress.emit("start", f"export {stream.name}", total)
        header = sql.SQL(", HEADER" if spec.file_format == "csv" else "")
        query = sql.SQL("COPY (SELECT {} FROM {}{} ORDER BY {}) TO STDOUT (FORMAT csv{})").format(
            _select_list(schema, spec.file_format == "csv"), warehouse.table_ident(stream), where,
            sql.SQL(", ").join(map(sql.Identifier, stream.key)), header)
        try:
            with conn.cursor() as cur, cur.copy(query, params) as copy, temporary.open("wb") as out:
                writer = _write_csv if spec.file_format == "csv" else _write_parquet
                writer(copy, out, schema, lambda rows: progress.emit("advance", f"export {stream.name}", rows))
            os.replace(temporary, path)
        finally:
            temporary.unlink(missing_ok=True)
    return {"table": stream.name, "format": spec.file_format, "path": str(path), "rows": total,
            "bytes": path.stat().st_size, "seconds": round(time.perf_counter() - started, 3),
            "start": spec.start and spec.start.isoformat(), "end": spec.end and spec.end.isoformat(),
            "filters": dict(spec.filters)}


def _write_csv(copy, out: io.BufferedWriter, schema: pa.Schema, advance: Progress) -> None:
    """COPY's output straight to the file; PostgreSQL sends one message per row (the header is one)."""
    rows = -1
    for data in copy:
        out.write(data)
        rows += 1
        if rows and rows % PROGRESS_ROWS == 0:
            advance(PROGRESS_ROWS)
    advance(max(rows, 0) % PROGRESS_ROWS)


def _write_parquet(copy, out: io.BufferedWriter, schema: pa.Schema, advance: Progress) -> None:
    """COPY's output parsed by Arrow a piece of whole records at a time, written as row groups."""
    lists = {f.name for f in schema if pa.types.is_list(f.type)}
    types = {f.name: pa.string() if f.name in lists else f.type for f in schema}
    with pq.ParquetWriter(out, schema, compression="zstd") as writer:
        for chunk in whole_records(copy, CHUNK_BYTES):
            table = pacsv.read_csv(pa.py_buffer(chunk), read_options=pacsv.ReadOptions(column_names=schema.names),
                                   parse_options=pacsv.ParseOptions(newlines_in_values=True),
                                   convert_options=pacsv.ConvertOptions(column_types=types, strings_can_be_null=True,
                                                                        quoted_strings_can_be_null=False))
            for name in lists:
                values = [None if v is None else orjson.loads(v) for v in table.column(name).to_pylist()]
                array = pa.array(values, schema.field(name).type)
                table = table.set_column(table.schema.get_field_index(name), name, array)
            writer.write_table(table.cast(schema), row_group_size=lake.ROW_GROUP)
            advance(table.num_rows)


def whole_records(copy, size: int) -> Iterator[bytes]:
    """COPY's CSV output in pieces of about `size` bytes that end at a record boundary.

    PostgreSQL sends a row per message, but the cut does not rely on it: a newline ends a record
    when the quotes before it are balanced (CSV doubles a quote inside a quoted value, so the
    count stays even), so a quoted newline inside a value never splits a record.
    """
    parts: list[bytes] = []
    held = 0
    for data in copy:
        parts.append(bytes(data))
        held += len(data)
        if held >= size:
            pending = b"".join(parts)
            cut = _boundary(pending)
            if cut is None:
                parts = [pending]
                continue
            yield pending[:cut]
            parts, held = [pending[cut:]], len(pending) - cut
    if held:
        yield b"".join(parts)


def _boundary(buffer: bytes) -> int | None:
    """The end of the last complete record in the buffer (which starts at a record boundary)."""
    end = len(buffer)
    while (newline := buffer.rfind(b"\n", 0, end)) >= 0:
        if buffer.count(b'"', 0, newline) % 2 == 0:
            return newline + 1
        end = newline
    return None
