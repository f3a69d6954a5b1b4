"""Repairing the lake: rebuild it from committed rows, and verify that it equals PostgreSQL.

    wfm lake rebuild [TABLE] [--start D --end D]   # every partition of the period, from PostgreSQL
    wfm lake verify [TABLE]                        # count and checksum of every partition, both sides

The lake is a copy: every partition is derived from the committed rows of its day. `--force`
republishes only partitions whose rows changed, so a lake that was lost, or moved (a new
`WFM_LAKE_PATH`, object storage), is rebuilt here instead: each partition is written the way
publication writes it (`lake.write_partition`: a temporary file, then an atomic rename), the
rows a reconciliation rule holds are left out, a partition held whole is withdrawn rather than
written, and a partition in the lake whose day has no rows left in PostgreSQL is removed. The
partition's to-do entry is cleared if no landing queued it again meanwhile.

`verify` reads each partition on both sides as the lake schema — PostgreSQL as publication would
write it, the file as a reader sees it — and compares the row count and a checksum (BLAKE2b of
the Arrow IPC stream of the rows in key order). Findings: `differs`, `missing` (in PostgreSQL,
not published, not queued), `extra` (a file for a day PostgreSQL has no rows of), `held` (a
partition held whole but present in the lake); `pending` partitions (queued for publication)
and `withheld` ones (held whole, absent as they should be) are listed and are no faults.
"""

from __future__ import annotations

import datetime as dt
import hashlib
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field

import psycopg
import pyarrow as pa
import pyarrow.fs as pafs
import pyarrow.parquet as pq
from psycopg import sql

from connectors.streams import Stream
from engine import catalog
from engine.landing import lake, ledger
from engine.landing.warehouse import columns, owner_column, table_ident

__all__ = ["Finding", "RebuildReport", "checksum", "lake_tables", "published_tables", "rebuild", "verify"]

FAULTS = ("differs", "missing", "extra", "held")


def published_tables() -> dict[str, Stream]:
    """Every table publication writes to the lake."""
    from engine.derived import AGENT_EMPLOYEE_MAP
    from engine.push.deviations import DEVIATIONS

    return {**catalog.IMPORTABLE, AGENT_EMPLOYEE_MAP.name: AGENT_EMPLOYEE_MAP, DEVIATIONS.name: DEVIATIONS}


def lake_tables() -> dict[str, Stream]:
    """The tables publication rebuilds by the day, which `rebuild` and `verify` cover. The online
    snapshot tables are not among them: their lake appends a file per snapshot and compacts them
    by the hour (`lake.appends`), a layout a rebuild by the day would duplicate."""
    return {name: stream for name, stream in published_tables().items() if not lake.appends(stream)}


def table_named(name: str) -> Stream:
    found = lake_tables().get(name)
    if found is None:
        raise ValueError(f"no lake table {name!r}; tables: {', '.join(sorted(lake_tables()))}")
    return found


@dataclass
class RebuildReport:
    table: str
    written: list[str] = field(default_factory=list)
    withdrawn: list[str] = field(default_factory=list)      # held whole, or no rows left in PostgreSQL


def rebuild(database_url: str, lake_path: str, stream: Stream, start: dt.date | None = None,
            end: dt.date | None = None, workers: int = lake.PUBLISH_WORKERS) -> RebuildReport:
    """Rewrite every partition of `stream` in [start, end] (inclusive days; default all) from PostgreSQL."""
    report = RebuildReport(stream.name)
    with psycopg.connect(database_url, autocommit=True) as conn:
        ledger.ensure_meta(conn)
        in_warehouse = warehouse_partitions(conn, stream, start, end)
        whole = set(ledger.whole_holds(conn, stream.name))
    in_lake = {p for p in lake_partitions(lake_path, stream) if _within(p, start, end)}
    for partition in sorted((in_lake - set(in_warehouse)) | (in_lake & whole)):
        lake.withdraw_partition(lake_path, stream.name, partition)
        report.withdrawn.append(partition)

    def write(partition: str) -> str:
        with psycopg.connect(database_url) as conn:
            with conn.transaction():
                queued = conn.execute(f"""SELECT run_id FROM {ledger.META}.lake_pending WHERE table_name = %s
                                          AND partition = %s""", (stream.name, partition)).fetchone()
                table = lake.read_partition(conn, stream, partition, ledger.held_scopes(conn, stream.name, partition))
            lake.write_partition(lake_path, stream, partition, table)
            if queued:
                with conn.transaction():
                    ledger.clear_partition(conn, stream.name, partition, queued[0])
        return partition
    with ThreadPoolExecutor(max_workers=workers, thread_name_prefix=f"rebuild-{stream.name}") as pool:
        report.written = list(pool.map(write, [p for p in in_warehouse if p not in whole]))
    return report


@dataclass(frozen=True)
class Finding:
    table: str
    partition: str
    status: str                      # equal | pending | withheld, or a fault: differs | missing | extra | held
    detail: str = ""


def verify(database_url: str, lake_path: str, stream: Stream) -> list[Finding]:
    """Compare every partition of `stream` in the lake with PostgreSQL."""
    with psycopg.connect(database_url, autocommit=True) as conn:
        ledger.ensure_meta(conn)
        in_warehouse = warehouse_partitions(conn, stream)
        whole = set(ledger.whole_holds(conn, stream.name))
        pending = {p for (p,) in conn.execute(f"SELECT partition FROM {ledger.META}.lake_pending WHERE table_name = %s",
                                              (stream.name,))}
    in_lake = set(lake_partitions(lake_path, stream))
    findings = [Finding(stream.name, p, "extra", "a file for a day PostgreSQL has no rows of")
                for p in sorted(in_lake - set(in_warehouse))]
    for partition in in_warehouse:
        if partition in whole:
            findings.append(Finding(stream.name, partition, "held", "held whole but published")
                            if partition in in_lake else Finding(stream.name, partition, "withheld", "held whole"))
        elif partition in pending:
            findings.append(Finding(stream.name, partition, "pending", "queued for publication"))
        elif partition not in in_lake:
            findings.append(Finding(stream.name, partition, "missing", "not in the lake"))
        else:
            findings.append(_compare(database_url, lake_path, stream, partition))
    return findings


def _compare(database_url: str, lake_path: str, stream: Stream, partition: str) -> Finding:
    with psycopg.connect(database_url) as conn, conn.transaction():
        expected = lake.read_partition(conn, stream, partition, ledger.held_scopes(conn, stream.name, partition))
    fs, root = lake.filesystem(lake_path)
    path = "/".join(p for p in (root.rstrip("/"), stream.name, partition, lake.FILE) if p)
    with fs.open_input_file(path) as source:
        found = pq.read_table(source)
    schema = lake.lake_schema(stream)
    try:
        found = found.select(schema.names).cast(schema)
    except (KeyError, pa.ArrowInvalid, ValueError) as exc:
        return Finding(stream.name, partition, "differs", f"schema: {str(exc).splitlines()[0]}")
    want, got = checksum(expected), checksum(found)
    if (expected.num_rows, want) == (found.num_rows, got):
        return Finding(stream.name, partition, "equal", f"{found.num_rows} rows, {got[:12]}")
    return Finding(stream.name, partition, "differs", f"PostgreSQL {expected.num_rows} rows {want[:12]}, "
                                                      f"lake {found.num_rows} rows {got[:12]}")


def checksum(table: pa.Table) -> str:
    """BLAKE2b of the rows as an Arrow IPC stream, without schema metadata (one chunk, so equal rows
    give equal bytes however they were read)."""
    table = table.replace_schema_metadata(None).combine_chunks()
    sink = pa.BufferOutputStream()
    with pa.ipc.new_stream(sink, table.schema) as writer:
        writer.write_table(table)
    return hashlib.blake2b(sink.getvalue().to_pybytes(), digest_size=16).hexdigest()


def warehouse_partitions(conn: psycopg.Connection, stream: Stream, start: dt.date | None = None,
                         end: dt.date | None = None) -> list[str]:
    """The partitions PostgreSQL has rows for (within [start, end]); [''] for an unpartitioned table."""
    if conn.execute("SELECT to_regclass(%s)", (f"wfm.{stream.name}",)).fetchone()[0] is None:
        return []
    owner = owner_column(stream)
    who = sql.Identifier(owner) if owner else sql.SQL("NULL::text")
    if stream.partition is None:
        owners = conn.execute(sql.SQL("SELECT DISTINCT {} FROM {} ORDER BY 1").format(
            who, table_ident(stream))).fetchall()
        return [lake.owned_partition(stream, o, None) for (o,) in owners]
    column = sql.Identifier(stream.partition)
    day = column if dict(columns(stream))[stream.partition] == "date" else \
        sql.SQL("({} AT TIME ZONE 'UTC')::date").format(column)
    days = conn.execute(sql.SQL("SELECT DISTINCT {}, {} FROM {} WHERE {} IS NOT NULL ORDER BY 1, 2").format(
        who, day, table_ident(stream), column)).fetchall()
    names = [lake.owned_partition(stream, o, d) for o, d in days]
    return [n for n in names if _within(n, start, end)]


def lake_partitions(lake_path: str, stream: Stream) -> list[str]:
    """The partitions the lake has a file for."""
    fs, root = lake.filesystem(lake_path)
    directory = f"{root.rstrip('/')}/{stream.name}"
    if fs.get_file_info(directory).type != pafs.FileType.Directory:
        return []
    found = []
    for info in fs.get_file_info(pafs.FileSelector(directory, recursive=True)):
        relative = info.path[len(directory) + 1:]
        if info.base_name == lake.FILE:
            found.append(relative.rpartition("/")[0])
    return sorted(found)


def _within(partition: str, start: dt.date | None, end: dt.date | None) -> bool:
    if not partition:
        return True
    levels = lake.partition_levels(partition)
    if "date" not in levels:
        return True
    day = dt.date.fromisoformat(levels["date"][:10])
    return (start is None or day >= start) and (end is None or day <= end)
