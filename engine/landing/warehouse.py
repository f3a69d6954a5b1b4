"""PostgreSQL side of landing: tables from stream declarations, and the staged upsert.

Tables live in schema `wfm`, one per stream, with the stream's natural key as primary key and
two lineage columns, `_run_id` and `_extracted_at`. A batch is deduplicated on the key (the
last occurrence wins: a later window's restated numbers replace an earlier window's), COPY'd
into a temporary staging table and upserted; rows whose values did not change are not touched,
so a rerun leaves every row — lineage columns included — exactly as it was. Every table also
has `_extra jsonb`: the source keys no field declares (see `connectors.records`), NULL when none.

Every row knows whom it belongs to: its table's owner column comes first in the key — `source`,
the connection a row came from, or `site` for what is built per site (the agent map) — so the
same agent id from two contact centers is two rows. Plans and deviations are the site's (`site`),
the pushed statuses the connection's that sent them (`source`): `engine/migrations.py`, version 2.
"""

from __future__ import annotations

import datetime as dt
import io
import re
import uuid
from dataclasses import dataclass

import psycopg
import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.csv as pacsv
from psycopg import sql

from connectors.records import EXTRA
from connectors.streams import Stream
from engine import zones

SCHEMA = "wfm"
LINEAGE = ("_run_id", "_extracted_at")
ANALYZE_AFTER_ROWS = 50_000   # a run inserting this many rows refreshes the table's planner statistics
DEFAULT = "default"   # the connection and site of a single-source installation (the WFM_* variables)
SITE_TABLES = frozenset({"agent_employee_map", "planned_shifts", "deviations"})
PUSH_TABLES = frozenset({"planned_shifts", "deviations", "pushed_status_events", "pushed_status_intervals"})
PG_TYPES = {"text": "text", "timestamp": "timestamptz", "date": "date", "int": "bigint",
            "float": "double precision", "bool": "boolean", "json": "jsonb", "text_list": "text[]"}


def pg_type(arrow_type: pa.DataType) -> str:
    if pa.types.is_timestamp(arrow_type):
        return "timestamptz"
    if pa.types.is_date32(arrow_type):
        return "date"
    if pa.types.is_integer(arrow_type):
        return "bigint"
    if pa.types.is_floating(arrow_type):
        return "double precision"
    if pa.types.is_boolean(arrow_type):
        return "boolean"
    if pa.types.is_list(arrow_type):
        return "text[]"
    return "text"


def columns(stream: Stream) -> list[tuple[str, str]]:
    """(column, PostgreSQL type) of the stream's data columns, in schema order, then `_extra`."""
    declared = [(f.column, PG_TYPES[f.type]) for f in stream.fields]
    return declared + [(f.name, pg_type(f.type)) for f in stream.extra] + [(EXTRA, "jsonb")]


def owner_of(table: str) -> str:
    """The owner column a table has, or gets with its migration: `site` or `source`."""
    return "site" if table in SITE_TABLES else "source"


def owner_column(stream_or_name: Stream | str) -> str | None:
    """The owner column a table has (every table has one since version 2; the type stays optional
    for the readers written when the push side had none)."""
    name = stream_or_name if isinstance(stream_or_name, str) else stream_or_name.name
    return owner_of(name)


def key_columns(stream: Stream) -> tuple[str, ...]:
    """The table's primary key: its owner column, then the stream's natural key."""
    owner = owner_column(stream)
    return (owner, *stream.key) if owner else stream.key


def table_ident(stream_or_name: Stream | str) -> sql.Identifier:
    name = stream_or_name if isinstance(stream_or_name, str) else stream_or_name.name
    return sql.Identifier(SCHEMA, name)


def ensure_table(conn: psycopg.Connection, stream: Stream) -> None:
    """Create the stream's table if it does not exist, or add `_extra` (and `local_date`, see
    `engine/zones.py`) to an older one (idempotent)."""
    cols: list[sql.Composable] = [
        sql.SQL("{} {}{}").format(sql.Identifier(name), sql.SQL(kind),
                                  sql.SQL(" NOT NULL") if name in stream.key else sql.SQL(""))
        for name, kind in columns(stream)]
    cols += [sql.SQL("_run_id uuid NOT NULL"), sql.SQL("_extracted_at timestamptz NOT NULL")]
    if (owner := owner_column(stream)) is not None:
        cols.insert(0, sql.SQL("{} text NOT NULL").format(sql.Identifier(owner)))
    ddl = sql.SQL("CREATE TABLE IF NOT EXISTS {} ({}, PRIMARY KEY ({}))").format(
        table_ident(stream), sql.SQL(", ").join(cols), sql.SQL(", ").join(map(sql.Identifier, key_columns(stream))))
    with conn.transaction():
        conn.execute("SELECT pg_advisory_xact_lock(hashtext('wfm-ddl'))")
        conn.execute(sql.SQL("CREATE SCHEMA IF NOT EXISTS {}").format(sql.Identifier(SCHEMA)))
        conn.execute(ddl)
        if not conn.execute("""SELECT 1 FROM information_schema.columns WHERE table_schema = %s
                               AND table_name = %s AND column_name = %s""", (SCHEMA, stream.name, EXTRA)).fetchone():
            # only when missing: ALTER TABLE takes an exclusive lock even with IF NOT EXISTS
            conn.execute(sql.SQL("ALTER TABLE {} ADD COLUMN IF NOT EXISTS {} jsonb").format(
                table_ident(stream), sql.Identifier(EXTRA)))
        if zones.has_local_date(stream):
            zones.ensure_local_date(conn, stream, table_ident(stream))


_NUL_ESCAPE = re.compile(r"(?<!\\)((?:\\\\)*)\\u0000")


def jsonb_safe(text: str) -> str:
    r"""JSON text that jsonb accepts: jsonb refuses the escape \u0000 (NUL), so it becomes \\u0000,
    an escaped backslash and "u0000": the value is kept, readably."""
    return _NUL_ESCAPE.sub(r"\1\\\\u0000", text) if "\\u0000" in text else text


def analyze(conn: psycopg.Connection, stream: Stream) -> None:
    """Refresh the planner statistics of a stream's table (autovacuum gets there later, not right
    after a backfill, and the reconciliation queries that follow would plan for an empty table)."""
    conn.execute(sql.SQL("ANALYZE {}").format(table_ident(stream)))


def deduplicate(table: pa.Table, key: tuple[str, ...]) -> pa.Table:
    """One row per natural key; the last occurrence wins."""
    if table.num_rows < 2:
        return table
    indexed = table.select(list(key)).append_column("__row", pa.array(range(table.num_rows), pa.int64()))
    last = indexed.group_by(list(key), use_threads=False).aggregate([("__row", "max")])
    keep = pc.sort_indices(last.column("__row_max"))
    return table.take(pc.take(last.column("__row_max"), keep))


@dataclass
class UpsertCounts:
    inserted: int = 0
    updated: int = 0
    unchanged: int = 0


def upsert(conn: psycopg.Connection, stream: Stream, table: pa.Table, run_id: uuid.UUID,
           extracted_at: dt.datetime, owner: str = DEFAULT) -> UpsertCounts:
    """COPY into a staging table and upsert on the key, every row `owner`'s (its connection or
    site). Call inside a transaction."""
    if table.num_rows == 0:
        return UpsertCounts()
    names = [name for name, _ in columns(stream)]
    if EXTRA not in table.column_names:     # a batch that did not collect undeclared keys
        table = table.append_column(EXTRA, pa.nulls(table.num_rows, pa.string()))
    stage = sql.Identifier(f"stage_{stream.name}")
    col_list = sql.SQL(", ").join(map(sql.Identifier, names))
    conn.execute(sql.SQL("CREATE TEMP TABLE {} ON COMMIT DROP AS SELECT {} FROM {} WITH NO DATA")
                 .format(stage, col_list, table_ident(stream)))
    _copy(conn, stage, names, table.select(names))
    data_cols = [n for n in names if n not in stream.key]
    target = table_ident(stream)
    assignments = [sql.SQL("{0} = EXCLUDED.{0}").format(sql.Identifier(n)) for n in (*data_cols, *LINEAGE)]
    changed = sql.SQL("({}) IS DISTINCT FROM ({})").format(
        sql.SQL(", ").join(sql.SQL("t.{}").format(sql.Identifier(n)) for n in data_cols),
        sql.SQL(", ").join(sql.SQL("EXCLUDED.{}").format(sql.Identifier(n)) for n in data_cols))
    owned = owner_column(stream)
    statement = sql.SQL(   # counted in the database: a million rows need not come back as flags
        "WITH landed AS (INSERT INTO {target} AS t ({owner}{cols}, _run_id, _extracted_at) "
        "SELECT {value}{cols}, %s, %s FROM {stage} "
        "ON CONFLICT ({key}) DO {action} RETURNING (xmax = 0) AS inserted) "
        "SELECT count(*) FILTER (WHERE inserted), count(*) FROM landed"
    ).format(target=target, cols=sql.SQL(", ").join(map(sql.Identifier, names)), stage=stage,
             owner=sql.SQL("{}, ").format(sql.Identifier(owned)) if owned else sql.SQL(""),
             value=sql.SQL("{}, ").format(sql.Literal(owner)) if owned else sql.SQL(""),
             key=sql.SQL(", ").join(map(sql.Identifier, key_columns(stream))),
             action=(sql.SQL("UPDATE SET {} WHERE {}").format(sql.SQL(", ").join(assignments), changed)
                     if data_cols else sql.SQL("NOTHING")))
    inserted, touched = conn.execute(statement, (run_id, extracted_at)).fetchone()  # type: ignore[misc]
    return UpsertCounts(inserted, touched - inserted, table.num_rows - touched)


def _copy(conn: psycopg.Connection, stage: sql.Identifier, names: list[str], table: pa.Table) -> None:
    """CSV written by Arrow is the fast path; list columns go row by row."""
    target = sql.SQL("COPY {} ({}) FROM STDIN").format(stage, sql.SQL(", ").join(map(sql.Identifier, names)))
    with conn.cursor() as cur:
        if any(pa.types.is_list(f.type) for f in table.schema):
            with cur.copy(target) as copy:
                for row in table.to_pylist():
                    copy.write_row([row[n] for n in names])
            return
        buffer = io.BytesIO()
        pacsv.write_csv(table, buffer, pacsv.WriteOptions(include_header=False, quoting_style="needed"))
        with cur.copy(target + sql.SQL(" (FORMAT csv)")) as copy:
            copy.write(buffer.getbuffer())


def partition_dates(stream: Stream, table: pa.Table) -> set[dt.date]:
    """The UTC dates of the lake partitions a batch touches."""
    if stream.partition is None or table.num_rows == 0:
        return set()
    column = table.column(stream.partition)
    if pa.types.is_timestamp(column.type):
        column = pc.cast(column, pa.timestamp("us", tz="UTC")).cast(pa.timestamp("us")).cast(pa.date32())
    return {d for d in pc.unique(column).to_pylist() if d is not None}
