"""The online lake appends: one file per snapshot, compacted per hour, read back whole with no options."""

from __future__ import annotations

import datetime as dt
import os

import duckdb
import pandas as pd
import polars as pl
import psycopg
import pyarrow.dataset as ds

from connectors.settings import CONTACT_CENTER
from engine.landing import lake, snapshots
from engine.settings import resolve_settings

from .conftest import SIM_START

UTC = dt.timezone.utc
DAY = SIM_START + dt.timedelta(days=2)


def land(sim, at: dt.datetime) -> None:
    """One snapshot of both online streams at simulated time `at`, as `sync_online` lands it."""
    sim.set_clock(at)
    settings = resolve_settings()
    source = settings.source(CONTACT_CENTER)
    snapshots.prepare(settings.database_url)
    groups = snapshots.group_ids_of(settings.database_url, source)
    for stream in snapshots.STREAMS:
        result = snapshots.land_snapshot(stream.name, source, settings.database_url, settings.lake_path, at,
                                         groups if stream.ids else ())
        assert result["status"] == "completed", result


def files(lake_path: str, table: str) -> list[str]:
    return sorted(name for _, _, names in os.walk(f"{lake_path}/{table}") for name in names)


def keys(database_url: str, table: str) -> list[tuple]:
    with psycopg.connect(database_url) as conn:
        return conn.execute(f"SELECT snapshot_at, agent_id FROM wfm.{table} ORDER BY 1, 2").fetchall()


def read_back(lake_path: str, table: str) -> dict[str, list[tuple]]:
    """The dataset as four readers see it, each with zero options."""
    root = f"{lake_path}/{table}"
    arrow = ds.dataset(root, partitioning="hive").to_table()
    out = {"pyarrow": sorted(zip(arrow["snapshot_at"].to_pylist(), arrow["agent_id"].to_pylist()))}
    out["duckdb"] = sorted(duckdb.sql(f"SELECT snapshot_at, agent_id FROM '{root}/**/*.parquet'").fetchall())
    frame = pl.read_parquet(f"{root}/**/*.parquet")
    out["polars"] = sorted(zip(frame["snapshot_at"].to_list(), frame["agent_id"].to_list()))
    pandas = pd.read_parquet(root)
    out["pandas"] = sorted(zip(pandas["snapshot_at"].dt.to_pydatetime(), pandas["agent_id"]))
    return {k: [(t.astimezone(UTC), a) for t, a in v] for k, v in out.items()}


def test_each_snapshot_is_a_file_and_compaction_keeps_every_row_once(wfm_env, database_url, tmp_path):
    lake_path = str(tmp_path / "lake")
    moments = [dt.datetime.combine(DAY, dt.time(h, m), UTC) for h, m in ((10, 0), (10, 1), (10, 59), (11, 0))]
    for at in moments:
        land(wfm_env, at)
    assert files(lake_path, "online_agent_status") == [f"snapshot-{at:%Y%m%dT%H%M%SZ}.parquet" for at in moments]
    truth = keys(database_url, "online_agent_status")
    assert len({t for t, _ in truth}) == 4
    assert all(rows == truth for rows in read_back(lake_path, "online_agent_status").values())

    done = snapshots.compact(lake_path, snapshots.STREAMS[0], moments[-1] + dt.timedelta(minutes=5))
    assert done == {"files": 3, "hours": 1}                           # 10:00-11:00 is over; 11:00 is not
    assert files(lake_path, "online_agent_status") == ["hour-10.parquet", "snapshot-%sT110000Z.parquet"
                                                       % DAY.strftime("%Y%m%d")]
    assert all(rows == truth for rows in read_back(lake_path, "online_agent_status").values())

    late = dt.datetime.combine(DAY, dt.time(10, 30), UTC)             # a snapshot of a compacted hour
    land(wfm_env, late)
    assert snapshots.compact(lake_path, snapshots.STREAMS[0], moments[-1] + dt.timedelta(hours=1)) == \
        {"files": 2, "hours": 2}
    assert files(lake_path, "online_agent_status") == ["hour-10.parquet", "hour-11.parquet"]
    truth = keys(database_url, "online_agent_status")
    assert all(rows == truth for rows in read_back(lake_path, "online_agent_status").values())
    assert snapshots.compact(lake_path, snapshots.STREAMS[0], moments[-1] + dt.timedelta(hours=2)) == \
        {"files": 0, "hours": 0}                                       # nothing left: idempotent


def test_a_whole_day_rebuild_replaces_the_snapshot_files(wfm_env, database_url, tmp_path):
    """A day queued whole (a backfill, the local_date migration) becomes one file, nothing twice."""
    lake_path = str(tmp_path / "lake")
    for minute in (0, 1):
        land(wfm_env, dt.datetime.combine(DAY, dt.time(9, minute), UTC))
    stream = snapshots.STREAMS[0]
    with psycopg.connect(database_url, autocommit=True) as conn:
        with conn.transaction():
            lake.ledger.mark_partitions(conn, stream.name, [lake.owned_partition(stream, "default", DAY)], lake.uuid.uuid4())
        assert lake.publish(conn, stream, lake_path) == [lake.owned_partition(stream, "default", DAY)]
    assert files(lake_path, stream.name) == ["part-0.parquet"]
    truth = keys(database_url, stream.name)
    assert all(rows == truth for rows in read_back(lake_path, stream.name).values())
    land(wfm_env, dt.datetime.combine(DAY, dt.time(9, 2), UTC))
    assert len(files(lake_path, stream.name)) == 2
    truth = keys(database_url, stream.name)
    assert all(rows == truth for rows in read_back(lake_path, stream.name).values())
