"""wfm-pipelines as users run it: the `sync_stream` flow for backfills, the `wfm` CLI for an incremental run.

    backfill   `sync_stream("agent_status_intervals", start, end)` on an empty database, under
               `prefect_test_harness()` (its SQLite API server is a child process); then the same
               with force=True (every row conflicts, nothing changes); then two incremental runs
               in the same process, the second timed (nothing new, in a long-lived process); and
               one day of service_group_intervals landed in full (a stream run's fixed cost);
    incremental `wfm sync agent_status_intervals` in a fresh process (Prefect's ephemeral API
               started by it), once to set the watermark and once more, timed, with nothing new.

Every run carries its stage profile (`bench/stages.py`, from the engine's timing hooks). Run on
its own for profiling, in this process (e.g. under py-spy), printing the profile:

    .venv/bin/python bench/wfm_runs.py --agents 1000 --days 30 --stages
"""

from __future__ import annotations

import argparse
import datetime as dt
import os
import shutil
import subprocess
import sys
import tempfile
import time
import uuid
from pathlib import Path

import common
import replay
import stages

STREAM = "agent_status_intervals"
SMALL_STREAM = "service_group_intervals"   # one day of it: a few thousand rows, one window
ROOT = Path(__file__).resolve().parent.parent


def environment(cc_url: str, database_url: str, workdir: str) -> dict[str, str]:
    """What wfm reads: the source, the warehouse, the lake and its data dir (no Prefect blocks)."""
    return {"WFM_CC_URL": cc_url, "WFM_DATABASE_URL": database_url, "WFM_LAKE_PATH": os.path.join(workdir, "lake"),
            "WFM_DATA_DIR": os.path.join(workdir, "data")}


def _flow(start: dt.date | None, end: dt.date | None, force: bool, before: float | None = None,
          stream: str = STREAM) -> dict:
    from flows.sync import sync_stream

    stages.reset()
    began = time.time()
    seconds, run = common.timed(sync_stream, stream, start, end, force=force)
    return {"seconds": seconds, "rows": run["rows_fetched"], "inserted": run["rows_inserted"],
            "updated": run["rows_updated"], "unchanged": run["rows_unchanged"],
            "quarantined": run["rows_quarantined"], "windows": run["windows_landed"], "rss": common.peak_rss_mib(),
            "stages": stages.current(began, time.time(), before)}


def backfill(env: dict[str, str], start: dt.date, end: dt.date, rerun: bool = True, show: bool = False) -> dict:
    """The child-process body: the first backfill and (optionally) the forced rerun, with peak RSS and
    the stage profile of each; the first one's also says what the imports and the test harness cost."""
    began = time.perf_counter()
    os.environ.update(env)
    os.environ.pop("WFM_USE_BLOCKS", None)
    from prefect.testing.utilities import prefect_test_harness

    import flows.sync  # noqa: F401  (the imports a user's process pays, timed as start-up)
    from engine.landing.window import close_clients
    from engine.quality import gate

    gate.preload()   # GX is imported by the first validation: here, so the flow's time is the flow's

    stages.enable()
    out: dict = {"rss_imports": common.peak_rss_mib()}
    with prefect_test_harness(server_startup_timeout=120):
        out["first"] = _flow(start, end, force=False, before=time.perf_counter() - began)
        if rerun:
            out["rerun"] = _flow(start, end, force=True)
            # a long-lived process (`wfm serve`, a worker): the incremental run that sets the
            # watermark, then the timed one with nothing new, imports and GX already paid
            _flow(None, None, force=False)
            out["nothing new, long-lived"] = _flow(None, None, force=False)
            # the fixed cost of a stream run: one small window landed in full, less what the source took
            small = _flow(end, end, force=True, stream=SMALL_STREAM)
            small["fixed"] = small["seconds"] - sum(small["stages"].get(s, 0.0) for s in ("fetch", "source slot wait"))
            out["one small window"] = small
        close_clients()
    if show:
        print("\n".join(stages.table({name: out[name]["stages"] for name in ("first", "rerun") if name in out})))
    return out


def cli_environment(env: dict[str, str], prefect_home: str) -> dict[str, str]:
    """A user's shell: no Prefect API configured (the ephemeral one), telemetry off, wfm's variables."""
    clean = {k: v for k, v in os.environ.items() if not k.startswith(("PREFECT_", "WFM_"))}
    return {**clean, **env, "PREFECT_HOME": prefect_home, "DO_NOT_TRACK": "1",
            "PREFECT_SERVER_ANALYTICS_ENABLED": "false"}


def cli_sync(env: dict[str, str], workdir: str) -> tuple[float, dict[str, float]]:
    """Wall seconds of `wfm sync agent_status_intervals` in a fresh process, start to exit, and its stages."""
    path = os.path.join(workdir, f"stages-{uuid.uuid4().hex}.json")
    began, started = time.time(), time.perf_counter()
    done = subprocess.run([str(Path(sys.executable).with_name("wfm")), "sync", STREAM],
                          env=stages.cli_env(env, path), cwd=ROOT, capture_output=True, text=True, timeout=900)
    seconds, ended = time.perf_counter() - started, time.time()
    if done.returncode:
        raise RuntimeError(f"wfm sync exited {done.returncode}: {(done.stderr or done.stdout).strip()[-500:]}")
    return seconds, stages.profile(stages.read(path), began, ended)


def incremental(env: dict[str, str], workdir: str, api_url: str | None = None) -> dict:
    """Two incremental CLI runs after a backfill: the first sets the watermark, the second has nothing new.

    Without `api_url` the CLI starts its own local Prefect API (a user with no server); with it,
    the CLI talks to that running server (what deployments and a configured shell have).
    """
    cli_env = cli_environment(env, os.path.join(workdir, "prefect-home"))
    if api_url:
        cli_env["PREFECT_API_URL"] = api_url
    setup, _ = cli_sync(cli_env, workdir)
    seconds, profile = cli_sync(cli_env, workdir)
    return {"seconds": seconds, "setup": setup, "stages": profile}


def scaling(agents: int, days: int, database_server: str, source: str = "replay") -> dict:
    """The child-process body of the memory-scaling step: its own source, database and lake, first backfill only."""
    start = dt.date.today() - dt.timedelta(days=days - 1)
    workdir = tempfile.mkdtemp(prefix="wfm-bench-")
    try:
        with replay.source(source, agents, days, start) as (src, _), \
                common.throwaway_database(database_server) as db:
            out = backfill(environment(src.cc_url, db, workdir), start, start + dt.timedelta(days=days - 1),
                           rerun=False)
    finally:
        shutil.rmtree(workdir, ignore_errors=True)
    return out


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--agents", type=int, default=1000)
    parser.add_argument("--days", type=int, default=30)
    parser.add_argument("--database-url", default=common.default_database_url())
    parser.add_argument("--no-rerun", action="store_true")
    parser.add_argument("--source", choices=("replay", "simulator"), default="replay")
    parser.add_argument("--stages", action="store_true", help="print the stage profile (bench/stages.py)")
    args = parser.parse_args(argv)
    start = dt.date.today() - dt.timedelta(days=args.days - 1)
    end = start + dt.timedelta(days=args.days - 1)
    workdir = tempfile.mkdtemp(prefix="wfm-bench-")
    try:
        with replay.source(args.source, args.agents, args.days, start) as (src, _), \
                common.throwaway_database(args.database_url) as db:
            out = backfill(environment(src.cc_url, db, workdir), start, end, not args.no_rerun, args.stages)
    finally:
        shutil.rmtree(workdir, ignore_errors=True)
    for name in ("first", "rerun"):
        if name in out:
            run = out[name]
            print(f"{name:6} {run['seconds']:7.1f} s  fetched {run['rows']:,}  inserted {run['inserted']:,}  "
                  f"updated {run['updated']:,}  unchanged {run['unchanged']:,}  peak RSS {run['rss']:.0f} MiB")


if __name__ == "__main__":
    sys.exit(main())
