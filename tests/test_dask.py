"""A backfill's windows on a Dask cluster land exactly what the default thread pool lands."""

from __future__ import annotations

import datetime as dt
from pathlib import Path

import psycopg
import pyarrow.parquet as pq
import pytest

from engine import catalog
from flows.sync import sync

from .conftest import SIM_START

pytestmark = [pytest.mark.usefixtures("prefect_harness"), pytest.mark.slow]
STREAMS = ["agent_status_intervals", "agent_calls"]
FIRST, LAST = SIM_START, SIM_START + dt.timedelta(days=3)
LINEAGE = ("_run_id", "_extracted_at")   # who landed a row and when: differs between two runs


@pytest.fixture
def dask_cluster():
    from distributed import LocalCluster

    with LocalCluster(processes=False, n_workers=2, threads_per_worker=2, dashboard_address=None) as cluster:
        yield cluster


def landed_rows(database_url: str, table: str) -> list[tuple]:
    with psycopg.connect(database_url) as conn:
        cur = conn.execute(f"SELECT * FROM wfm.{table}")
        keep = [i for i, c in enumerate(cur.description) if c.name not in LINEAGE]
        return sorted((tuple(row[i] for i in keep) for row in cur.fetchall()), key=repr)


def lake_rows(lake: Path, table: str) -> list[tuple]:
    parts = sorted((lake / table).rglob("*.parquet"))
    rows = []
    for part in parts:
        data = pq.read_table(part)
        data = data.drop_columns([c for c in LINEAGE if c in data.column_names])
        rows += [(part.parent.name, *r.values()) for r in data.to_pylist()]
    return sorted(rows, key=repr)


def ledger_counts(database_url: str) -> list[tuple]:
    with psycopg.connect(database_url) as conn:
        return conn.execute("""SELECT stream, status, windows_planned, windows_landed, rows_fetched,
                                      rows_inserted, rows_quarantined FROM wfm_meta.sync_runs
                               ORDER BY stream""").fetchall()


def test_a_backfill_on_dask_lands_what_the_thread_pool_lands(wfm_env, database_url, second_database,
                                                             dask_cluster, tmp_path, monkeypatch):
    threads = sync(STREAMS, FIRST, LAST)
    monkeypatch.setenv("WFM_DATABASE_URL", second_database)
    monkeypatch.setenv("WFM_LAKE_PATH", str(tmp_path / "lake-dask"))
    on_dask = sync(STREAMS, FIRST, LAST, dask_address=dask_cluster.scheduler_address)

    assert [r["windows_landed"] for r in on_dask] == [r["windows_landed"] for r in threads]
    ran_on_dask = sum(worker.state.executed_count for worker in dask_cluster.workers.values())
    assert ran_on_dask == sum(r["windows_landed"] for r in on_dask) > 0   # every window, none in the flow
    assert ledger_counts(second_database) == ledger_counts(database_url)
    for stream in catalog.resolve(STREAMS):
        rows = landed_rows(database_url, stream.name)
        assert rows, stream.name
        assert landed_rows(second_database, stream.name) == rows, stream.name
        assert lake_rows(tmp_path / "lake-dask", stream.name) == lake_rows(tmp_path / "lake", stream.name)
