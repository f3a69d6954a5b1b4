"""The Parquet lake: `<lake>/<table>/source=<connection>/date=YYYY-MM-DD/part-0.parquet`, from committed rows.

Hive-style levels: the owner (`source=`, or `site=` for tables built per site) and the UTC day,
so DuckDB (`read_parquet('<table>/**/*.parquet')`), Polars and pandas (the table's directory) and
pyarrow (`pq.read_table`) read them back as columns with no options; the files themselves do not
repeat the owner.

A partition is always rebuilt whole from PostgreSQL after its rows are committed, written to a
temporary file and moved over the old one (an atomic rename), so a reader sees the old partition
or the new one, never half of one, and Parquet always agrees with PostgreSQL. The partitions to
rebuild are queued in `wfm_meta.lake_pending` by the landing transaction itself, so a crash
between commit and publication is repaired by the next run. Tables without a partition column
are one file per owner, `<lake>/<table>/source=<connection>/part-0.parquet`. A writer killed
mid-swap leaves its temporary file
(`.part-0.parquet.<id>.tmp`: hidden, not `*.parquet`, so no reader takes it for data); the next
write of that partition deletes temporary files older than an hour. A partition a reconciliation check holds
(`wfm_meta.partition_holds`, see `engine/quality/reconcile.py`) stays queued and unpublished, and one
published before the check failed is withdrawn until the check passes. A partition that cannot
be written (whatever the reason) is logged and stays queued; the others are published and later
runs go on (`publish` never fails a run for one partition). Personal columns are hashed or left
out as `engine/privacy/personal_data.py` says (SNILS: a keyed hash); a partition held for some
groups or agents only is published without their rows (`engine/quality/holds.py`).

Snapshot streams (keyed by `snapshot_at`: the online tables) append instead: each snapshot is a
file of its own, `source=…/date=YYYY-MM-DD/snapshot-YYYYMMDDTHHMMSSZ.parquet`, queued as the
partition `source=…/date=…/snapshot-…` and written from that snapshot's committed rows alone, so a
snapshot costs the same at 23:59 as at 00:00. `engine/landing/snapshots.py:compact` compacts an hour's
snapshot files into `hour-HH.parquet` later. Every file of a day holds other snapshots, so a reader
of the directory (hive partitioning, no options) sees each row once.
"""

from __future__ import annotations

import contextlib
import datetime as dt
import io
import logging
import uuid
from collections.abc import Mapping, Sequence
from concurrent.futures import ThreadPoolExecutor

import orjson
import psycopg
import pyarrow as pa
import pyarrow.csv as pacsv
import pyarrow.fs as pafs
import pyarrow.parquet as pq
from psycopg import sql

from connectors.records import EXTRA
from connectors.streams import Stream
from engine import zones
from engine.landing import ledger
from engine.landing.warehouse import columns, owner_column, table_ident
from engine.privacy import personal_data

FILE = "part-0.parquet"
SNAPSHOT_COLUMN = "snapshot_at"      # the key of a snapshot stream: its lake appends (see the module doc)
SNAPSHOT_PREFIX, HOUR_PREFIX = "snapshot-", "hour-"
ROW_GROUP = 256_000
PUBLISH_WORKERS = 3    # partitions rebuilt at once by `publish_parallel`
STALE_TEMPORARY = dt.timedelta(hours=1)   # no live writer takes this long over one partition
LOG = logging.getLogger("wfm.lake")


def partition_name(day: dt.date | None, owner: tuple[str, str] | None = None) -> str:
    """`source=cc-north/date=2026-11-10`: the owner's level (column, value), then the day's, either optional."""
    parts = ([f"{owner[0]}={owner[1]}"] if owner else []) + ([f"date={day.isoformat()}"] if day else [])
    return "/".join(parts)


def owned_partition(stream: Stream | str, value: str, day: dt.date | None) -> str:
    """The partition of `day` (None: the table's one file) of the rows owned by `value`."""
    column = owner_column(stream)
    return partition_name(day, (column, value) if column else None)


def partition_levels(partition: str) -> dict[str, str]:
    """`source=cc-north/date=2026-11-10` -> {"source": "cc-north", "date": "2026-11-10"}."""
    return dict(level.split("=", 1) for level in partition.split("/") if "=" in level)


def appends(stream: Stream) -> bool:
    """Whether the stream's lake grows by one file per snapshot instead of rebuilding its day."""
    return stream.partition == SNAPSHOT_COLUMN and stream.key[0] == SNAPSHOT_COLUMN


def snapshot_partition(moment: dt.datetime, owner: tuple[str, str] | None = None) -> str:
    """`source=…/date=YYYY-MM-DD/snapshot-YYYYMMDDTHHMMSSZ`: the queue entry and file of one snapshot."""
    utc = moment.astimezone(dt.timezone.utc)
    return f"{partition_name(utc.date(), owner)}/{SNAPSHOT_PREFIX}{utc.strftime('%Y%m%dT%H%M%SZ')}"


def split_partition(partition: str) -> tuple[str, str]:
    """(directory levels, snapshot file name or "") of a partition: `source=a/date=d/snapshot-…`."""
    head, _, last = partition.rpartition("/")
    return (head, last) if last.startswith(SNAPSHOT_PREFIX) else (partition, "")


def snapshot_moment(partition: str) -> dt.datetime | None:
    """The instant of a snapshot partition; None for a whole day."""
    name = split_partition(partition)[1]
    if not name:
        return None
    return dt.datetime.strptime(name[len(SNAPSHOT_PREFIX):], "%Y%m%dT%H%M%SZ").replace(tzinfo=dt.timezone.utc)


def lake_schema(stream: Stream) -> pa.Schema:
    """The stream's columns less those the personal data policy drops, `local_date` where it has one
    (`tasks.zones`), `_extra`, lineage."""
    local = [pa.field(zones.LOCAL_DATE, pa.date32())] if zones.has_local_date(stream) else []
    return pa.schema(personal_data.lake_fields(stream, list(stream.schema)) + local + [
        pa.field(EXTRA, pa.string()), pa.field("_run_id", pa.string()),
        pa.field("_extracted_at", pa.timestamp("us", tz="UTC"))])


# lake root -> fsspec options of its LakeLocation block (keys, endpoint ...). They are secrets,
# so they stay in the process (`resolve_settings` files them) instead of travelling with the
# lake path as a task parameter into the Prefect API.
_STORAGE_OPTIONS: dict[str, dict] = {}


def use_storage_options(lake: str, options: dict) -> None:
    """Open `lake` with these fsspec options from now on in this process."""
    _STORAGE_OPTIONS[lake] = dict(options)


def filesystem(lake: str, options: dict | None = None) -> tuple[pafs.FileSystem, str]:
    """A pyarrow filesystem and root path for a local path or a URL (s3://...). With storage
    options (given, or filed for this lake) the URL is opened by fsspec with them and wrapped for
    pyarrow; without, pyarrow opens it (credentials from the environment, options in the query)."""
    options = _STORAGE_OPTIONS.get(lake) if options is None else options
    if options:
        from fsspec.core import url_to_fs

        fs, root = url_to_fs(lake, **options)
        return pafs.PyFileSystem(pafs.FSSpecHandler(fs)), root
    if "://" in lake:
        return pafs.FileSystem.from_uri(lake)
    local = pafs.LocalFileSystem()
    import os
    return local, os.path.abspath(lake)


def read_partition(conn: psycopg.Connection, stream: Stream, partition: str,
                   exclude: Sequence[Mapping[str, str]] = ()) -> pa.Table:
    """The committed rows of one partition, in key order, typed as the lake schema, without the
    rows matching any of `exclude` ({column: value}: the scopes a reconciliation rule holds)."""
    schema = lake_schema(stream)
    lists = {f.name for f in schema if pa.types.is_list(f.type)}
    select = [sql.SQL("to_json({0})::text AS {0}").format(sql.Identifier(n)) if n in lists else sql.Identifier(n)
              for n in schema.names]
    moment = snapshot_moment(partition)
    conditions: list[sql.Composable] = [partition_filter(stream, split_partition(partition)[0])] if partition else []
    if moment is not None:
        conditions.append(sql.SQL("{} = {}").format(sql.Identifier(stream.partition or ""), sql.Literal(moment)))
    for scope in exclude:
        conditions.append(sql.SQL("NOT ({})").format(sql.SQL(" AND ").join(
            sql.SQL("{}::text IS NOT DISTINCT FROM {}").format(sql.Identifier(c), sql.Literal(v))
            for c, v in scope.items())))
    where: sql.Composable = sql.SQL(" WHERE ") + sql.SQL(" AND ").join(conditions) if conditions else sql.SQL("")
    query = sql.SQL("COPY (SELECT {} FROM {}{} ORDER BY {}) TO STDOUT (FORMAT csv, HEADER)").format(
        sql.SQL(", ").join(select), table_ident(stream), where, sql.SQL(", ").join(map(sql.Identifier, stream.key)))
    buffer = io.BytesIO()
    conn.execute("SET TIME ZONE 'UTC'")
    with conn.cursor() as cur, cur.copy(query) as copy:
        for chunk in copy:
            buffer.write(chunk)
    buffer.seek(0)
    types = {f.name: (pa.string() if f.name in lists else f.type) for f in schema}
    table = pacsv.read_csv(buffer, convert_options=pacsv.ConvertOptions(
        column_types=types, strings_can_be_null=True, quoted_strings_can_be_null=False))
    for name in lists:
        parsed = pa.array([None if v is None else orjson.loads(v) for v in table.column(name).to_pylist()],
                          schema.field(name).type)
        table = table.set_column(table.schema.get_field_index(name), name, parsed)
    return personal_data.apply(stream, table.cast(schema))


def partition_filter(stream: Stream, partition: str) -> sql.Composable:
    """SQL: the rows of the stream's table that belong to `partition` (`source=…/date=YYYY-MM-DD`,
    either level optional; a snapshot's file name is ignored)."""
    levels = partition_levels(partition)
    conditions = [sql.SQL("{} = {}").format(sql.Identifier(owner), sql.Literal(levels[owner]))
                  for owner in ("source", "site") if owner in levels]
    if "date" in levels:
        day = dt.date.fromisoformat(levels["date"])
        column = sql.Identifier(str(stream.partition))
        if dict(columns(stream))[str(stream.partition)] == "date":
            conditions.append(sql.SQL("{} = {}").format(column, sql.Literal(day)))
        else:
            # the day after is PostgreSQL's arithmetic: in Python it overflows on 9999-12-31
            start = dt.datetime.combine(day, dt.time(), dt.timezone.utc)
            conditions.append(sql.SQL("{0} >= {1} AND {0} < {1}::timestamptz + interval '1 day'").format(
                column, sql.Literal(start)))
    return sql.SQL(" AND ").join(conditions) if conditions else sql.SQL("true")


def write_partition(lake: str, stream: Stream, partition: str, table: pa.Table) -> str:
    """Atomically replace one partition's file; returns its path. A snapshot partition is its own
    file in its day; a whole day of a snapshot stream replaces that day's snapshot and hour files."""
    fs, root = filesystem(lake)
    day, snapshot = split_partition(partition)
    directory = "/".join(p for p in (root.rstrip("/"), stream.name, day) if p)
    fs.create_dir(directory, recursive=True)
    others = [] if snapshot or not appends(stream) else data_files(fs, directory)
    _sweep_temporaries(fs, directory)
    name = f"{snapshot}.parquet" if snapshot else FILE
    final = f"{directory}/{name}"
    temporary = f"{directory}/.{name}.{uuid.uuid4().hex}.tmp"
    with fs.open_output_stream(temporary) as out:
        pq.write_table(table, out, row_group_size=ROW_GROUP, compression="zstd")
    fs.move(temporary, final)
    for path in others:                     # their rows are in the day's file now
        if not path.endswith("/" + FILE):
            with contextlib.suppress(FileNotFoundError):
                fs.delete_file(path)
    return final


def data_files(fs: pafs.FileSystem, directory: str) -> list[str]:
    """The `*.parquet` files a reader takes for a partition's data (never the hidden temporaries)."""
    try:
        infos = fs.get_file_info(pafs.FileSelector(directory))
    except FileNotFoundError:
        return []
    return sorted(i.path for i in infos if i.type == pafs.FileType.File and i.base_name.endswith(".parquet")
                  and not i.base_name.startswith("."))


def _sweep_temporaries(fs: pafs.FileSystem, directory: str) -> None:
    """Delete the temporary files that writers which died left in a partition's directory."""
    cutoff = dt.datetime.now(dt.timezone.utc) - STALE_TEMPORARY
    for info in fs.get_file_info(pafs.FileSelector(directory)):
        name = info.base_name
        if name.startswith(".") and name.endswith(".tmp") and info.mtime and info.mtime < cutoff:
            with contextlib.suppress(FileNotFoundError):   # another writer swept it first
                fs.delete_file(info.path)


def withdraw_partition(lake: str, table: str, partition: str) -> bool:
    """Remove a published partition's files (a held partition must not be read); True if any was there."""
    fs, root = filesystem(lake)
    directory = "/".join(p for p in (root.rstrip("/"), table, partition) if p)
    files = [f"{directory}/{FILE}"] if not partition else data_files(fs, directory)
    found = False
    for path in files:
        if fs.get_file_info(path).type != pafs.FileType.NotFound:
            fs.delete_file(path)
            found = True
    return found


def publish(conn: psycopg.Connection, stream: Stream, lake: str) -> list[str]:
    """Rebuild every partition queued for this stream and not held; returns the partitions written."""
    written = [_rebuild_or_keep(conn, stream, lake, partition, run_id)
               for partition, run_id in ledger.pending_partitions(conn, stream.name)]
    return [p for p in written if p is not None]


def publish_parallel(database_url: str, stream: Stream, lake: str, workers: int = PUBLISH_WORKERS) -> list[str]:
    """`publish` with a connection per worker: PostgreSQL copies one partition out while Arrow
    writes another, which matters after a backfill has queued a month of partitions."""
    with psycopg.connect(database_url) as conn:
        pending = ledger.pending_partitions(conn, stream.name)

    def rebuild(item: tuple[str, uuid.UUID]) -> str | None:
        with psycopg.connect(database_url) as conn:
            return _rebuild_or_keep(conn, stream, lake, *item)
    if len(pending) < 2:
        return [p for p in map(rebuild, pending) if p is not None]
    with ThreadPoolExecutor(max_workers=workers, thread_name_prefix=f"lake-{stream.name}") as pool:
        return [p for p in pool.map(rebuild, pending) if p is not None]


def _rebuild_or_keep(conn: psycopg.Connection, stream: Stream, lake: str, partition: str,
                     run_id: uuid.UUID) -> str | None:
    """`_rebuild`, or None with a warning: a partition that cannot be published stays queued
    (the next run tries again) and never stops the other partitions or the runs after it.
    Lost connections still raise, so the task's retry can take them."""
    try:
        return _rebuild(conn, stream, lake, partition, run_id)
    except psycopg.OperationalError:
        raise
    except Exception as exc:
        reason = str(exc).strip().splitlines()[0] if str(exc).strip() else type(exc).__name__
        LOG.warning("lake: %s/%s not published, kept queued: %s", stream.name, partition or "(whole table)", reason)
        return None


def publish_partition(conn: psycopg.Connection, stream: Stream, lake: str, partition: str) -> bool:
    """Rebuild one queued partition now, unless it is held whole; True if it was written."""
    found = [run_id for p, run_id in ledger.pending_partitions(conn, stream.name) if p == partition]
    for run_id in found:
        _rebuild(conn, stream, lake, partition, run_id)
    return bool(found)


def _rebuild(conn: psycopg.Connection, stream: Stream, lake: str, partition: str, run_id: uuid.UUID) -> str:
    """One partition from its committed rows (less the rows held in part), then its queue entry
    cleared (unless re-queued meanwhile)."""
    with conn.transaction():
        table = read_partition(conn, stream, partition, ledger.held_scopes(conn, stream.name, partition))
    write_partition(lake, stream, partition, table)
    with conn.transaction():
        ledger.clear_partition(conn, stream.name, partition, run_id)
    return partition
