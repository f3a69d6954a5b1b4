"""Bulk files: import a generated agent-status CSV and export it back, against raw COPY in the same run.

    .venv/bin/python bench/import_export.py                 # 1M rows
    .venv/bin/python bench/import_export.py --full          # 1M and 5M rows: does peak RSS grow with the file?
    .venv/bin/python bench/import_export.py --rows 200000   # a quick look

Each size gets a throwaway database `wfm_bench_<random>` on the server of `--database-url`
(default WFM_DATABASE_URL, else the system PostgreSQL) and a generated CSV in a temp dir. Every
measured step runs in a child process of its own, so its peak RSS (`ru_maxrss`) is the step's:

1. import:   `bulk_import(file, "agent_status_intervals")` into the empty table (the real flow,
             under `prefect_test_harness()`, whose API server is yet another process);
2. reimport: the same file again: every row unchanged;
3. export:   `export_data` to Parquet and to CSV;
4. COPY:     the baseline — `COPY ... FROM STDIN (FORMAT csv)` of the same file into a plain table
             with the same columns and primary key, and `COPY ... TO STDOUT` back to a file.

Target: the peak RSS of import and export does not grow by more than 20% from 1M to 5M rows.
"""

from __future__ import annotations

import argparse
import json
import os
import resource
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import common  # noqa: F401  (sets the telemetry variables before Prefect is imported)

STREAM = "agent_status_intervals"
COPY_DDL = """CREATE SCHEMA IF NOT EXISTS floor;
CREATE TABLE floor.agent_status_intervals (agent_id text NOT NULL, service_id text NOT NULL,
  group_id text NOT NULL, started_at timestamptz NOT NULL, ended_at timestamptz, state_code text NOT NULL,
  state_name text, PRIMARY KEY (agent_id, service_id, group_id, started_at, state_code))"""


def peak_rss_mib() -> float:
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024


def generate(path: Path, rows: int, slice_rows: int = 250_000) -> None:
    """`rows` agent statuses of 1,000 agents, five minutes each, written a slice at a time."""
    import numpy as np
    import pyarrow as pa
    import pyarrow.compute as pc
    import pyarrow.csv as pacsv

    codes = np.array(["READY", "BUSY", "BREAK", "LUNCH"])
    names = np.array(["Готов", "Занят", "Перерыв", "Обед"])
    writer = None
    for first in range(0, rows, slice_rows):
        i = np.arange(first, min(rows, first + slice_rows))
        start = np.datetime64("2026-01-05T00:00:00") + (i // 1000) * np.timedelta64(300, "s")
        table = pa.table({
            "agent_id": (i % 1000).astype(str), "service_id": np.char.add("s", (i % 3).astype(str)),
            "group_id": np.char.add("g", (i % 7).astype(str)),
            "started_at": pc.strftime(pa.array(start, pa.timestamp("s")), "%Y-%m-%dT%H:%M:%SZ"),
            "ended_at": pc.strftime(pa.array(start + np.timedelta64(240, "s"), pa.timestamp("s")),
                                    "%Y-%m-%dT%H:%M:%SZ"),
            "state_code": codes[i % 4], "state_name": names[i % 4]})
        writer = writer or pacsv.CSVWriter(str(path), table.schema)
        writer.write_table(table)
    writer.close()


def child(step: str, database_url: str, path: Path, out_dir: Path) -> dict:
    """One measured step in this (child) process; returns seconds, rows and peak RSS."""
    os.environ.update(WFM_DATABASE_URL=database_url, WFM_LAKE_PATH=str(out_dir / "lake"),
                      WFM_DATA_DIR=str(out_dir / "data"))
    if step == "copy":
        return copy_baseline(database_url, path, out_dir)
    from prefect.testing.utilities import prefect_test_harness

    from flows.bulk import bulk_import, export_data

    with prefect_test_harness(server_startup_timeout=120):
        base = peak_rss_mib()
        started = time.perf_counter()
        if step in ("import", "reimport"):
            run = bulk_import(path, STREAM)
            result = {"rows": run["rows_fetched"], "inserted": run["rows_inserted"],
                      "unchanged": run["rows_unchanged"], "quarantined": run["rows_quarantined"]}
        else:
            parquet = export_data(STREAM, out_dir / "export.parquet", force=True)
            middle = time.perf_counter()
            text = export_data(STREAM, out_dir / "export.csv", file_format="csv", force=True)
            result = {"rows": parquet["rows"], "parquet_seconds": middle - started,
                      "csv_seconds": time.perf_counter() - middle, "parquet_mib": parquet["bytes"] / 2**20,
                      "csv_mib": text["bytes"] / 2**20}
        return {**result, "seconds": time.perf_counter() - started, "base_rss_mib": base,
                "peak_rss_mib": peak_rss_mib()}


def copy_baseline(database_url: str, path: Path, out_dir: Path) -> dict:
    """Raw COPY in and out of a plain table with the same key: what PostgreSQL alone costs."""
    import psycopg

    with psycopg.connect(database_url, autocommit=True) as conn:
        conn.execute(COPY_DDL)
        started = time.perf_counter()
        copy_in = "COPY floor.agent_status_intervals FROM STDIN (FORMAT csv, HEADER)"
        with conn.cursor() as cur, cur.copy(copy_in) as copy, path.open("rb") as source:
            while block := source.read(1 << 20):
                copy.write(block)
        in_seconds = time.perf_counter() - started
        started = time.perf_counter()
        copy_out = "COPY floor.agent_status_intervals TO STDOUT (FORMAT csv, HEADER)"
        with conn.cursor() as cur, cur.copy(copy_out) as copy, (out_dir / "copy.csv").open("wb") as sink:
            for data in copy:
                sink.write(data)
        rows = conn.execute("SELECT count(*) FROM floor.agent_status_intervals").fetchone()[0]
    return {"rows": rows, "in_seconds": in_seconds, "out_seconds": time.perf_counter() - started,
            "peak_rss_mib": peak_rss_mib()}


def measure(rows: int, server_url: str) -> dict:
    """Generate a file of `rows` rows and run every step on it in its own process."""
    results: dict[str, dict] = {}
    with tempfile.TemporaryDirectory(prefix="wfm-bench-files-") as tmp, common.throwaway_database(server_url) as url:
        path = Path(tmp) / f"agent_status_{rows}.csv"
        generate(path, rows)
        results["file"] = {"rows": rows, "mib": path.stat().st_size / 2**20}
        for step in ("import", "reimport", "export", "copy"):
            done = subprocess.run([sys.executable, __file__, "--child", step, "--database-url", url, "--file",
                                   str(path), "--out", tmp], capture_output=True, text=True)
            if done.returncode:
                raise SystemExit(f"{step} failed:\n{done.stderr[-3000:]}")
            results[step] = json.loads(done.stdout.strip().splitlines()[-1])
    return results


def report(size: int, r: dict) -> None:
    rate = lambda rows, seconds: f"{rows / seconds:>10,.0f} rows/s"  # noqa: E731
    print(f"\n{size:,} rows ({r['file']['mib']:.0f} MiB CSV)")
    print(f"  import     {r['import']['seconds']:7.1f} s {rate(size, r['import']['seconds'])}   "
          f"peak RSS {r['import']['peak_rss_mib']:6.0f} MiB (after start-up {r['import']['base_rss_mib']:.0f})")
    print(f"  reimport   {r['reimport']['seconds']:7.1f} s {rate(size, r['reimport']['seconds'])}   "
          f"peak RSS {r['reimport']['peak_rss_mib']:6.0f} MiB   unchanged {r['reimport']['unchanged']:,}")
    print(f"  export pq  {r['export']['parquet_seconds']:7.1f} s {rate(size, r['export']['parquet_seconds'])}   "
          f"peak RSS {r['export']['peak_rss_mib']:6.0f} MiB   ({r['export']['parquet_mib']:.1f} MiB)")
    print(f"  export csv {r['export']['csv_seconds']:7.1f} s {rate(size, r['export']['csv_seconds'])}")
    print(f"  COPY in    {r['copy']['in_seconds']:7.1f} s {rate(size, r['copy']['in_seconds'])}   (baseline)")
    print(f"  COPY out   {r['copy']['out_seconds']:7.1f} s {rate(size, r['copy']['out_seconds'])}   (baseline)")
    print(f"  import / COPY in: {r['import']['seconds'] / r['copy']['in_seconds']:.1f}x;  "
          f"CSV export / COPY out: {r['export']['csv_seconds'] / r['copy']['out_seconds']:.1f}x")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rows", type=int, default=1_000_000)
    parser.add_argument("--full", action="store_true", help="also 5M rows, for the RSS comparison")
    parser.add_argument("--database-url", default=common.default_database_url())
    parser.add_argument("--child", choices=("import", "reimport", "export", "copy"))
    parser.add_argument("--file", type=Path)
    parser.add_argument("--out", type=Path)
    args = parser.parse_args()
    if args.child:
        print(json.dumps(child(args.child, args.database_url, args.file, args.out)))
        return
    print(f"bulk files: {common.machine(args.database_url)}, commit {common.git_head()}")
    sizes = [args.rows] + ([5 * args.rows] if args.full else [])
    results = {size: measure(size, args.database_url) for size in sizes}
    for size, result in results.items():
        report(size, result)
    if args.full:
        small, large = results[sizes[0]], results[sizes[1]]
        for step in ("import", "export"):
            growth = large[step]["peak_rss_mib"] / small[step]["peak_rss_mib"] - 1
            verdict = "ok" if growth <= 0.20 else "OVER the 20% target"
            print(f"peak RSS {step}: {small[step]['peak_rss_mib']:.0f} MiB at {sizes[0]:,} rows, "
                  f"{large[step]['peak_rss_mib']:.0f} MiB at {sizes[1]:,} rows: {growth:+.1%} ({verdict})")


if __name__ == "__main__":
    main()
