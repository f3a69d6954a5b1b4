"""Online snapshots: one pull of an online endpoint landed through the same path as every window,
and the compaction of their lake files by the hour.

The same landing path as every other stream (`engine/landing/window.py:land_batch`: quality
gate, quarantine, upsert and ledger row in one transaction) and the same run lifecycle
(`engine/landing/runs.py`), without what a minute-by-minute snapshot does not need: no window
planning, no personnel request (group ids are read from the connection's landed `cc_groups`,
falling back to `/personnel` when none are landed). Each snapshot reports `pull_to_commit_ms`:
from the moment its request is sent to the commit of its rows. The Parquet file is written
after the commit, outside that time.

A snapshot stream writes one file per snapshot (`engine/landing/lake.py`), which keeps a
snapshot's cost flat through the day but leaves 1,440 small files a day per table. `compact`:
once an hour has ended, its snapshot files (and the hour file of an earlier compaction, if a late
snapshot joined the hour since) are read back, sorted by the key and written as `hour-HH.parquet`
(temporary file, rename); then the merged snapshot files are deleted. The rows are the files'
own, never re-read from PostgreSQL, so a snapshot whose file is not written yet cannot turn up
twice. Between the rename and the deletions (milliseconds on a local disk) a reader listing the
directory can see that hour twice: compaction runs at :05 past the hour (`compact-online`), not
while anybody is asked to read the last hour."""

from __future__ import annotations

import datetime as dt
import time
import uuid

import psycopg
import pyarrow as pa
import pyarrow.fs as pafs
import pyarrow.parquet as pq

from connectors import contact_center as cc
from connectors.http import CallStats
from connectors.settings import SourceSettings
from connectors.streams import Stream, Window, fetch, id_batches
from engine.landing import lake, ledger, runs, warehouse
from engine.landing.window import RunPlan, client_for, land_batch

UTC = dt.timezone.utc
STREAMS = (cc.ONLINE_AGENT_STATUS, cc.ONLINE_GROUP_LOAD)
TARGET_SECONDS = 5.0
_prepared: set[str] = set()      # databases whose tables this process has already ensured


def prepare(database_url: str) -> None:
    if database_url in _prepared:
        return
    with psycopg.connect(database_url, autocommit=True) as conn:
        ledger.ensure_meta(conn)
        for stream in (*STREAMS, cc.CC_GROUPS):
            warehouse.ensure_table(conn, stream)
    _prepared.add(database_url)


def group_ids_of(database_url: str, source, connection: str = warehouse.DEFAULT) -> tuple[str, ...]:
    """The connection's group ids: from its landed `cc_groups`, else asked of its `/personnel`."""
    with psycopg.connect(database_url) as conn:
        ids = [r[0] for r in conn.execute("SELECT group_id FROM wfm.cc_groups WHERE source = %s ORDER BY group_id",
                                          (connection,))]
    return tuple(ids or cc.personnel_ids(client_for(source))["groups"])


def land_snapshot(stream_name: str, source: SourceSettings, database_url: str, lake_path: str, now: dt.datetime,
                  group_ids: tuple[str, ...] | None = (), connection: str = warehouse.DEFAULT,
                  run_id: uuid.UUID | None = None) -> dict:
    """Pull one online endpoint of one connection and land the snapshot as that connection's rows;
    returns counts, `pull_to_commit_ms` and the closed run's ledger row (`run`).

    `group_ids` None: the connection's own (`group_ids_of`); when they cannot be had (the source
    is down) the run is in the ledger as `failed` all the same, and the error raised."""
    stream = next(s for s in STREAMS if s.name == stream_name)
    run_id = run_id or uuid.uuid4()
    if stream.ids and group_ids is None:
        try:
            group_ids = group_ids_of(database_url, source, connection)
        except Exception as exc:
            with psycopg.connect(database_url, autocommit=True) as conn:
                runs.failed_run(conn, database_url, stream.name, "snapshot", now, now, exc, now, source=connection,
                                run_id=run_id)
            raise
    windows = [Window(now, now, batch) for batch in id_batches(group_ids or ())] if stream.ids else [Window(now, now)]
    with psycopg.connect(database_url, autocommit=True) as conn:
        run = runs.open_run(conn, database_url, stream.name, "snapshot", now, now, windows, now, source=connection,
                            run_id=run_id)
    plan = RunPlan(run.run_id, stream, source, database_url, "snapshot", now, now, connection=connection)
    pulled = time.perf_counter()
    with run:                         # a pull that raises closes the run `failed`
        reports = []
        for window in windows:
            stats = CallStats()
            parsed = fetch(client_for(plan.source), stream, window, stats)
            reports.append(land_batch(plan, window, parsed, stats.snapshot()))
        committed = time.perf_counter()
        held = [r.message or r.status for r in reports if r.status != "landed"]
        with psycopg.connect(database_url, autocommit=True) as conn:
            row = run.close("failed" if held else "completed", "; ".join(held) or None, conn=conn)
            lake.publish(conn, stream, lake_path)
    landed = sum(r.counts.get(k, 0) for r in reports for k in ("rows_inserted", "rows_updated", "rows_unchanged"))
    return {"stream": stream.name, "connection": connection, "status": row["status"], "rows": landed,
            "pull_to_commit_ms": round((committed - pulled) * 1000, 1), "held": held, "run": row}


# ---- compaction of the lake's snapshot files ------------------------------------------------------

def _hour_of(name: str) -> str | None:
    """`HH` of `snapshot-YYYYMMDDTHHMMSSZ.parquet`."""
    if not (name.startswith(lake.SNAPSHOT_PREFIX) and name.endswith(".parquet")):
        return None
    stamp = name[len(lake.SNAPSHOT_PREFIX):-len(".parquet")]
    return stamp[9:11] if len(stamp) == 16 and stamp[8] == "T" else None


def _merge(fs: pafs.FileSystem, paths: list[str], stream: Stream) -> pa.Table:
    schema = lake.lake_schema(stream)
    tables = []
    for path in paths:
        with fs.open_input_file(path) as handle:
            tables.append(pq.read_table(handle).cast(schema))
    return pa.concat_tables(tables).sort_by([(k, "ascending") for k in stream.key])


def compact(lake_path: str, stream: Stream, until: dt.datetime) -> dict[str, int]:
    """Compact every hour of `stream` that ended by `until`; returns files merged and hours written."""
    if not lake.appends(stream):
        return {"files": 0, "hours": 0}
    fs, root = lake.filesystem(lake_path)
    base = f"{root.rstrip('/')}/{stream.name}"
    if fs.get_file_info(base).type == pafs.FileType.NotFound:
        return {"files": 0, "hours": 0}
    merged = hours = 0
    levels = [i for i in fs.get_file_info(pafs.FileSelector(base)) if i.type == pafs.FileType.Directory]
    owners = [i.path for i in levels if i.base_name.startswith(("source=", "site="))]
    days = [i for i in levels if i.base_name.startswith("date=")] + [   # under each owner's level
        i for owner in owners for i in fs.get_file_info(pafs.FileSelector(owner))
        if i.type == pafs.FileType.Directory and i.base_name.startswith("date=")]
    for day in sorted(days, key=lambda i: i.path):
        date = dt.date.fromisoformat(day.base_name[len("date="):])
        by_hour: dict[str, list[str]] = {}
        for path in lake.data_files(fs, day.path):
            hour = _hour_of(path.rsplit("/", 1)[-1])
            if hour is not None:
                by_hour.setdefault(hour, []).append(path)
        for hour, snapshots in sorted(by_hour.items()):
            if dt.datetime.combine(date, dt.time(int(hour)), UTC) + dt.timedelta(hours=1) > until:
                continue                                   # the hour is not over: more snapshots come
            target = f"{day.path}/{lake.HOUR_PREFIX}{hour}.parquet"
            earlier = [target] if fs.get_file_info(target).type == pafs.FileType.File else []
            table = _merge(fs, earlier + snapshots, stream)
            temporary = f"{day.path}/.{lake.HOUR_PREFIX}{hour}.parquet.{uuid.uuid4().hex}.tmp"
            with fs.open_output_stream(temporary) as out:
                pq.write_table(table, out, row_group_size=lake.ROW_GROUP, compression="zstd")
            fs.move(temporary, target)
            for path in snapshots:
                fs.delete_file(path)
            merged += len(snapshots)
            hours += 1
    return {"files": merged, "hours": hours}
