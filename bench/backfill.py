"""Agent-status backfill through the real `sync_stream` flow, against a hand-written "floor".

    .venv/bin/python bench/backfill.py                          # 1000 agents × 30 days, ~3 min in all
    .venv/bin/python bench/backfill.py --agents 200 --days 3    # a quick smoke run
    .venv/bin/python bench/backfill.py --stages --no-floor      # wall time per stage (bench/stages.py)
    .venv/bin/python bench/backfill.py --database-url postgresql://postgres@127.0.0.1:5432/test

The simulator runs in a child process, so this process's peak RSS is the pipeline's; the flow
runs under `prefect_test_harness()` (its API server is another child process). A throwaway
database `wfm_bench_<random>` is created on the server of `--database-url` (default
WFM_DATABASE_URL, else the system PostgreSQL) and dropped at the end; the lake is a temp dir.

1. wfm:        `sync_stream("agent_status_intervals", start, end)` on an empty database;
2. wfm rerun:  the same with force=True (every row conflicts, nothing changes);
3. floor:      the same windows with httpx + orjson (4 in flight, like the flow's task runner),
               rows COPY'd with `copy.write_row` into a staging table then
               `INSERT ... ON CONFLICT DO NOTHING`, and `pyarrow.dataset.write_dataset`
               partitioned by date; its time is the sum of the stages. Run twice (empty, all
               conflicts), medians over `--reps` when asked for more.
"""

from __future__ import annotations

import argparse
import datetime as dt
import os
import resource
import shutil
import sys
import tempfile
from concurrent.futures import ThreadPoolExecutor

import common
import stages
import httpx
import orjson
import psycopg
import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.dataset as ds

from connectors import contact_center as cc
from connectors import streams
from connectors.settings import CONTACT_CENTER, SourceSettings

STREAM = cc.AGENT_STATUS_INTERVALS
COLUMNS = ("agent_id", "service_id", "group_id", "started_at", "ended_at", "state_code", "state_name")
FLOOR_DDL = """
CREATE SCHEMA IF NOT EXISTS floor;
CREATE TABLE IF NOT EXISTS floor.agent_status_intervals (
  agent_id text NOT NULL, service_id text NOT NULL, group_id text NOT NULL, started_at timestamptz NOT NULL,
  ended_at timestamptz, state_code text NOT NULL, state_name text,
  PRIMARY KEY (agent_id, service_id, group_id, started_at, state_code));
"""


def peak_rss_mib() -> float:
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024


def run_flow(start: dt.date, end: dt.date, force: bool) -> tuple[float, dict | str]:
    from flows.sync import sync_stream

    try:
        return common.timed(sync_stream, STREAM.name, start, end, force=force)
    except Exception as exc:   # a failed run still has a duration worth printing
        return float("nan"), f"FAILED: {str(exc).splitlines()[0]}"


def floor_extract(cc_url: str, windows: list[streams.Window], in_flight: int = 4) -> list[tuple]:
    """Every state as a tuple of strings, in window order."""
    def get(window: streams.Window) -> list[tuple]:
        req = STREAM.request(window)
        response = http.get(req.path, params=req.params)
        if response.status_code == 404:
            return []
        response.raise_for_status()
        return [(e["agentId"], e.get("serviceId") or "", e.get("groupId") or "", s["startDate"], s["endDate"],
                 s["stateCode"], s.get("stateName")) for e in orjson.loads(response.content) for s in e["states"]]

    limits = httpx.Limits(max_connections=in_flight, max_keepalive_connections=in_flight)
    with httpx.Client(base_url=cc_url, limits=limits, timeout=60) as http, \
            ThreadPoolExecutor(max_workers=in_flight) as pool:
        return [row for rows in pool.map(get, windows) for row in rows]


def floor_load(database_url: str, rows: list[tuple]) -> int:
    """COPY into a staging table, then one INSERT ... ON CONFLICT DO NOTHING; rows inserted."""
    with psycopg.connect(database_url) as conn, conn.transaction():
        conn.execute(FLOOR_DDL)
        conn.execute("CREATE TEMP TABLE stage ON COMMIT DROP AS SELECT * FROM floor.agent_status_intervals "
                     "WITH NO DATA")
        with conn.cursor() as cur, cur.copy(f"COPY stage ({', '.join(COLUMNS)}) FROM STDIN") as copy:
            for row in rows:
                copy.write_row(row)
        return conn.execute("INSERT INTO floor.agent_status_intervals SELECT * FROM stage "
                            "ON CONFLICT DO NOTHING").rowcount


def floor_lake(lake: str, rows: list[tuple]) -> None:
    """Typed Arrow columns and one Parquet dataset partitioned by the UTC date of started_at."""
    columns = list(zip(*rows)) if rows else [[] for _ in COLUMNS]
    arrays = [pa.array(col, pa.string()) for col in columns]
    for i in (3, 4):
        arrays[i] = arrays[i].cast(pa.timestamp("us", tz="UTC"))
    table = pa.Table.from_arrays(arrays, names=list(COLUMNS))
    date = pc.cast(pc.cast(table["started_at"], pa.timestamp("us")), pa.date32())
    table = table.append_column("date", date)
    ds.write_dataset(table, os.path.join(lake, "floor", STREAM.name), format="parquet", partitioning=["date"],
                     partitioning_flavor="hive", existing_data_behavior="delete_matching")


def run_floor(cc_url: str, database_url: str, lake: str, windows: list[streams.Window], fresh: bool) -> dict:
    if fresh:   # not timed: the first floor run of each repetition starts from an empty table
        with psycopg.connect(database_url, autocommit=True) as conn:
            conn.execute("DROP SCHEMA IF EXISTS floor CASCADE")
    extract, rows = common.timed(floor_extract, cc_url, windows)
    load, inserted = common.timed(floor_load, database_url, rows)
    parquet, _ = common.timed(floor_lake, lake, rows)
    return {"extract": extract, "load": load, "lake": parquet, "total": extract + load + parquet,
            "rows": len(rows), "inserted": inserted}


def plan_windows(cc_url: str, start: dt.date, days: int) -> list[streams.Window]:
    with SourceSettings(CONTACT_CENTER, cc_url).client() as client:
        agents = cc.personnel_ids(client)["agents"]
    first = dt.datetime.combine(start, dt.time(), common.UTC)
    return streams.windows(STREAM, first, first + dt.timedelta(days=days), agents)


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--agents", type=int, default=1000)
    parser.add_argument("--days", type=int, default=30)
    parser.add_argument("--start", type=dt.date.fromisoformat, default=common.DEFAULT_START)
    parser.add_argument("--database-url", default=common.default_database_url(),
                        help="any database on the server to use; a throwaway one is created beside it")
    parser.add_argument("--reps", type=int, default=1, help="floor repetitions (medians)")
    parser.add_argument("--no-rerun", action="store_true", help="skip the force=True rerun")
    parser.add_argument("--no-floor", action="store_true", help="skip the floor (e.g. under a profiler)")
    parser.add_argument("--stages", action="store_true", help="print wall time per stage (bench/stages.py)")
    args = parser.parse_args(argv)
    end = args.start + dt.timedelta(days=args.days - 1)
    print(f"# {common.machine(args.database_url)}; commit {common.git_head()}")
    print(f"# agent_status_intervals backfill, {args.agents} agents × {args.days} days, {args.start}..{end}")
    lake = tempfile.mkdtemp(prefix="wfm-bench-lake-")
    rss_start = peak_rss_mib()
    try:
        with common.simulator(args.agents, args.days, args.start) as sim, \
                common.throwaway_database(args.database_url) as db:
            os.environ.update(WFM_CC_URL=sim.cc_url, WFM_ONEC_URL=sim.onec_url, WFM_DATABASE_URL=db,
                              WFM_LAKE_PATH=lake, WFM_DATA_DIR=os.path.join(lake, "data"))
            os.environ.pop("WFM_USE_BLOCKS", None)
            windows = plan_windows(sim.cc_url, args.start, args.days)
            print(f"# {len(windows)} windows; simulator in a child process; peak RSS after imports "
                  f"{rss_start:.0f} MiB", flush=True)
            results = measure(args, sim, db, lake, windows, end)
    finally:
        shutil.rmtree(lake, ignore_errors=True)
    summarize(results)


def measure(args, sim: common.Simulator, db: str, lake: str, windows, end: dt.date) -> dict:
    from prefect.testing.utilities import prefect_test_harness
    from tasks.sync import close_clients

    out: dict = {}
    if args.stages:
        stages.instrument()
    with prefect_test_harness(server_startup_timeout=120):
        out["wfm"] = run_flow(args.start, end, force=False)
        out["rss_wfm"] = peak_rss_mib()
        print(f"wfm        {out['wfm'][0]:8.1f} s  peak RSS {out['rss_wfm']:.0f} MiB", flush=True)
        if args.stages:
            print(stages.report("stages of the first run:"), flush=True)
            stages.reset()
        if not args.no_rerun:
            out["rerun"] = run_flow(args.start, end, force=True)
            out["rss_rerun"] = peak_rss_mib()
            print(f"wfm rerun  {out['rerun'][0]:8.1f} s  peak RSS {out['rss_rerun']:.0f} MiB", flush=True)
            if args.stages:
                print(stages.report("stages of the rerun:"), flush=True)
        close_clients()
    if not args.no_floor:
        runs = [[run_floor(sim.cc_url, db, lake, windows, fresh) for fresh in (True, False)]
                for _ in range(args.reps)]
        out["floor"] = {k: common.median([r[0][k] for r in runs]) for k in runs[0][0]}
        out["floor_rerun"] = {k: common.median([r[1][k] for r in runs]) for k in runs[0][1]}
    return out


def summarize(out: dict) -> None:
    seconds, run = out["wfm"]
    if isinstance(run, str):
        print(run)
        return
    landed = run["rows_inserted"] + run["rows_updated"]
    print(f"\nwfm:   {seconds:7.1f} s  fetched {run['rows_fetched']:,}  inserted {run['rows_inserted']:,}  "
          f"duplicates {run['duplicates_removed']:,}  unchanged {run['rows_unchanged']:,}  quarantined {run['rows_quarantined']:,}  "
          f"windows {run['windows_landed']}/{run['windows_planned']}  api_calls {run['api_calls']}  "
          f"{landed / seconds:,.0f} rows/s landed  peak RSS {out['rss_wfm']:.0f} MiB")
    if "rerun" in out:
        r_seconds, rerun = out["rerun"]
        detail = rerun if isinstance(rerun, str) else (
            f"inserted {rerun['rows_inserted']:,} updated {rerun['rows_updated']:,} "
            f"unchanged {rerun['rows_unchanged']:,}")
        print(f"rerun: {r_seconds:7.1f} s  (force=True) {detail}  peak RSS {out['rss_rerun']:.0f} MiB")
    for name in ("floor", "floor_rerun"):
        if name in out:
            f = out[name]
            print(f"{name + ':':12} {f['total']:7.1f} s = extract {f['extract']:.1f} + load {f['load']:.1f} + "
                  f"parquet {f['lake']:.1f}  ({f['rows']:,.0f} rows, {f['inserted']:,.0f} inserted)")
    if "floor" in out:
        print(f"ratio wfm/floor = {seconds / out['floor']['total']:.1f}x;  "
              f"wfm landed {landed / seconds:,.0f} rows/s vs floor {out['floor']['inserted'] / out['floor']['total']:,.0f}")
        if "rerun" in out and not isinstance(out["rerun"][1], str):
            print(f"ratio wfm rerun/floor rerun = {out['rerun'][0] / out['floor_rerun']['total']:.1f}x")


if __name__ == "__main__":
    sys.exit(main())
