"""A day of online snapshots, time-compressed: does the 23:59 snapshot cost what the 00:00 one did?

    python bench/online_day.py                     # 1,000 agents, every 10th of the 1,440 minutes timed
    python bench/online_day.py --every 1           # all 1,440 snapshots through the real path
    python bench/online_day.py --layout rebuild --every 30   # the old layout: the day rebuilt each time

The simulator's clock is driven minute by minute through one simulated day; each minute both
online streams are pulled and landed the way the `every-minute` deployment lands them
(`engine/landing/snapshots.py:land_snapshot`, both streams at once), into a throwaway database
and a temporary lake, and the run is timed. At :05 past each hour the compaction step
(`engine/landing/snapshots.py:compact`, the `compact-online` deployment) runs and is timed apart. With
`--every N` only every Nth minute goes through the real path; the minutes between are copied in
PostgreSQL from the last snapshot, so the tables are as large at each timed minute as a full
day makes them (the lake has no files for those minutes: a snapshot's cost does not depend on
them). The verdict: the median of the last five timed runs against the first five, ≤ 1.5x;
and the lake, read back by DuckDB with no options, holds exactly the rows of the timed snapshots.
"""

from __future__ import annotations

import argparse
import datetime as dt
import os
import sys
import tempfile
import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from bench import common  # noqa: E402  (sets the telemetry variables before Prefect is imported)

UTC = dt.timezone.utc
LIMIT = 1.5
FILL = """INSERT INTO wfm.{t} SELECT {cols}, _run_id, _extracted_at
          FROM (SELECT * FROM wfm.{t} WHERE snapshot_at = %(last)s) s, generate_series(1, %(n)s) AS k
          ON CONFLICT DO NOTHING"""


def _fill(conn, last: dt.datetime, minutes: int) -> None:
    """Copies of the snapshot at `last` for the `minutes` minutes after it (the minutes not timed)."""
    from engine.landing import warehouse
    from engine.landing.snapshots import STREAMS

    for stream in STREAMS:
        names = [n for n, _ in warehouse.columns(stream)]
        cols = ", ".join("snapshot_at + k * interval '1 minute'" if n == "snapshot_at" else n for n in names)
        conn.execute(FILL.format(t=stream.name, cols=cols), {"last": last, "n": minutes})


def run(agents: int, every: int, layout: str) -> int:
    import httpx
    import psycopg

    from connectors.settings import CONTACT_CENTER
    from engine.landing import lake, snapshots
    from engine.settings import resolve_settings

    if layout == "rebuild":   # the layout before issue 15: every snapshot rebuilds its whole day
        lake.appends = lambda stream: False
    day = common.DEFAULT_START + dt.timedelta(days=1)
    database_server = common.default_database_url()
    timed: list[tuple[dt.datetime, float]] = []
    compactions: list[float] = []
    with common.simulator(agents, days=3) as sim, common.throwaway_database(database_server) as url, \
            tempfile.TemporaryDirectory(prefix="wfm-online-day-") as lake_dir:
        os.environ.update(WFM_CC_URL=sim.cc_url, WFM_DATABASE_URL=url, WFM_LAKE_PATH=lake_dir)
        settings = resolve_settings()
        source = settings.source(CONTACT_CENTER)
        snapshots.prepare(url)
        groups = snapshots.group_ids_of(url, source)
        print(f"online day: {agents} agents, {len(groups)} groups, layout {layout}, every {every} minute(s); "
              f"{common.machine(url)}; wfm {common.git_head()}", flush=True)
        pool = ThreadPoolExecutor(max_workers=len(snapshots.STREAMS))
        last = None
        for minute in range(0, 24 * 60, every):
            at = dt.datetime.combine(day, dt.time(), UTC) + dt.timedelta(minutes=minute)
            if last is not None and every > 1:
                with psycopg.connect(url, autocommit=True) as conn:
                    _fill(conn, last, every - 1)
            httpx.post(f"{sim.url}/_sim/clock", json={"now": at.isoformat()}).raise_for_status()
            started = time.perf_counter()
            results = list(pool.map(lambda s, at=at: snapshots.land_snapshot(
                s.name, source, url, lake_dir, at, groups if s.ids else ()), snapshots.STREAMS))
            timed.append((at, time.perf_counter() - started))
            if any(r["status"] != "completed" for r in results):
                raise SystemExit(f"{at}: a snapshot failed: {results}")
            last = at
            if layout == "append" and at.minute <= 5 < at.minute + every and at.hour:   # the hourly deployment
                started = time.perf_counter()
                for stream in snapshots.STREAMS:
                    snapshots.compact(lake_dir, stream, at)
                compactions.append(time.perf_counter() - started)
            if len(timed) % max(1, 60 // every) == 0:
                print(f"  {at:%H:%M}  last run {timed[-1][1] * 1000:6.0f} ms", flush=True)
        pool.shutdown()
        with psycopg.connect(url) as conn:
            in_pg = conn.execute("SELECT count(*) FROM wfm.online_agent_status WHERE snapshot_at = ANY(%s)",
                                 ([t for t, _ in timed],)).fetchone()[0]
            table_rows = conn.execute("SELECT count(*) FROM wfm.online_agent_status").fetchone()[0]
        import duckdb

        in_lake = duckdb.sql(f"SELECT count(*) FROM '{lake_dir}/online_agent_status/**/*.parquet'").fetchall()[0][0]
        files = sum(len(f) for _, _, f in os.walk(f"{lake_dir}/online_agent_status"))
    first = common.median([s for _, s in timed[:5]])
    final = common.median([s for _, s in timed[-5:]])
    ratio = final / first
    print(f"snapshot runs timed: {len(timed)} of 1,440 minutes; online_agent_status {table_rows:,} rows at the end")
    print(f"first five: median {first * 1000:.0f} ms; last five: median {final * 1000:.0f} ms; "
          f"last/first {ratio:.2f}x (limit {LIMIT}x)")
    if compactions:
        print(f"hourly compaction: {len(compactions)} runs, median {common.median(compactions) * 1000:.0f} ms, "
              f"max {max(compactions) * 1000:.0f} ms (apart from the snapshot runs)")
    exact = in_lake == in_pg if layout == "append" or every == 1 else True
    print(f"lake (DuckDB, no options): {in_lake:,} rows in {files} files; PostgreSQL rows of the timed "
          f"snapshots: {in_pg:,} — {'exact' if exact else 'MISMATCH'}")
    return 0 if ratio <= LIMIT and exact else 1


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--agents", type=int, default=1000)
    parser.add_argument("--every", type=int, default=10, help="time every Nth minute (the others are copied); 1: all")
    parser.add_argument("--layout", choices=("append", "rebuild"), default="append")
    args = parser.parse_args()
    return run(args.agents, args.every, args.layout)


if __name__ == "__main__":
    raise SystemExit(main())
