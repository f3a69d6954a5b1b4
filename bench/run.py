"""The benchmark of issue 9: wfm-pipelines against the floor and dlt, in one run, on the same data.

    make bench          # 1000 agents × 30 days (~1.3M agent-status rows), 3 repetitions, 5M-row memory step
    make bench-quick    # 100 agents × 2 days, 1 repetition, no 5M step (CI)
    .venv/bin/python bench/run.py --only wfm,floor --reps 1      # a subset

One simulator (seed 42, a child process) generates the period that ends today, so that the CLI's
incremental run finds landed data in its lookback. By default every contender reads the replay
source (`bench/replay.py`): each answer recorded once from the simulator, untimed, and served as
stored bytes by a process of its own; `--source simulator` reads the simulator itself. The
"source floor" line is fetching and decoding every page and nothing else. Every contender runs in a spawned child
process of its own, so its peak RSS (`ru_maxrss`) is its own, against a throwaway database
`wfm_bench_<random>` and a temp dir; the repetitions alternate the contenders. Times are
medians over the repetitions, ratios are of numbers measured in this run, and a missed target
is printed, never raised: the exit status is non-zero only on a crash.
"""

from __future__ import annotations

import argparse
import datetime as dt
import shutil
import sys
import tempfile
from collections import defaultdict

import common
import floor
import replay
import stages

CONTENDERS = ("wfm", "floor", "dlt", "prefect", "memory")


def arguments(argv: list[str] | None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--agents", type=int, default=1000)
    parser.add_argument("--days", type=int, default=30)
    parser.add_argument("--reps", type=int, default=3)
    parser.add_argument("--big-agents", type=int, default=1000, help="memory step: agents")
    parser.add_argument("--big-days", type=int, default=117, help="memory step: days (0: skip the step)")
    parser.add_argument("--tasks", type=int, default=300, help="trivial tasks per flow in the Prefect step")
    parser.add_argument("--dlt-configs", default="default,fastest",
                        help="dlt configurations to run (issue 17's targets need only 'fastest')")
    parser.add_argument("--source", choices=("replay", "simulator"), default="replay",
                        help="what every contender reads: recorded answers served from memory, or the simulator")
    parser.add_argument("--only", default=",".join(CONTENDERS), help="comma-separated subset of " + ", ".join(CONTENDERS))
    parser.add_argument("--quick", action="store_true",
                        help="100 agents × 2 days, 1 repetition, no memory step, no Prefect server on PostgreSQL")
    parser.add_argument("--no-prefect-server", dest="prefect_server", action="store_false",
                        help="Prefect step: the SQLite harness only")
    parser.add_argument("--database-url", default=common.default_database_url(),
                        help="any database on the server to use; throwaway ones are created beside it")
    args = parser.parse_args(argv)
    if args.quick:
        args.agents, args.days, args.reps, args.big_days, args.tasks = 100, 2, 1, 0, 50
        args.prefect_server = False
    args.only = set(args.only.split(","))
    return args


def measure(args, sim, windows: list, start: dt.date, end: dt.date) -> dict:
    """Every repetition of every contender: {name: {"first"|"rerun"|...: [result per repetition]}}."""
    import dlt_bench
    import prefect_overhead
    import wfm_runs

    runs: dict = defaultdict(lambda: defaultdict(list))
    dlt_version = dlt_bench.installed() if "dlt" in args.only else None
    for rep in range(args.reps):
        print(f"# repetition {rep + 1}/{args.reps}", flush=True)
        if "wfm" in args.only:
            with _scratch(args) as (db, workdir):
                env = wfm_runs.environment(sim.cc_url, db, workdir)
                _keep(runs["wfm"], common.in_child(wfm_runs.backfill, env, start, end))
                _keep(runs["wfm incremental (CLI)"], {"nothing new": wfm_runs.incremental(env, workdir)})
                if args.prefect_server:
                    with prefect_overhead.postgres_server(args.database_url) as api:
                        _keep(runs["wfm incremental (CLI, server up)"],
                              {"nothing new": wfm_runs.incremental(env, workdir, api)})
        if "floor" in args.only:
            with _scratch(args) as (db, workdir):
                _keep(runs["floor"], common.in_child(floor.first_and_rerun, sim.cc_url, db, workdir, windows))
        for config in args.dlt_configs.split(",") if dlt_version else ():
            for target in ("postgres", "filesystem"):
                with _scratch(args) as (db, workdir):
                    _keep(runs[f"dlt {config} → {target}"],
                          common.in_child(dlt_bench.runs, config, target, sim.cc_url, windows, db, workdir))
    return {"runs": runs, "dlt": dlt_version}


class _scratch:
    """A throwaway database and temp dir for one contender's repetition."""

    def __init__(self, args) -> None:
        self.database = common.throwaway_database(args.database_url)

    def __enter__(self) -> tuple[str, str]:
        self.workdir = tempfile.mkdtemp(prefix="wfm-bench-")
        return self.database.__enter__(), self.workdir

    def __exit__(self, *exc) -> None:
        self.database.__exit__(*exc)
        shutil.rmtree(self.workdir, ignore_errors=True)


def _keep(into: dict, result: dict) -> None:
    """Keep the runs (dicts with "seconds") of one child's result and print their times."""
    for run, value in result.items():
        if isinstance(value, dict) and "seconds" in value:
            into[run].append(value)
            print(f"  {run:12} {value['seconds']:8.2f} s", flush=True)


def medians(results: list[dict]) -> dict:
    """Median of every numeric field over the repetitions; peak RSS is the maximum."""
    keys = [k for k, v in results[0].items() if isinstance(v, (int, float))]
    out = {k: common.median([r[k] for r in results]) for k in keys}
    if "rss" in out:
        out["rss"] = max(r["rss"] for r in results)
    return out


def table(runs: dict, rows: int) -> tuple[list[str], dict]:
    """The printed table, and {(contender, run): medians} for the targets."""
    summary = {(name, run): medians(results) for name, by_run in runs.items() for run, results in by_run.items()}
    wfm = {run: summary.get(("wfm", run)) for run in ("first", "rerun")}
    lines = [f"{'contender':34} {'run':11} {'wall s':>8} {'rows/s':>10} {'peak RSS':>9} {'wfm/this':>9}  notes",
             "-" * 118]
    for (name, run), m in summary.items():
        rate = f"{rows / m['seconds']:10,.0f}" if run in ("first", "rerun") else f"{'—':>10}"
        mine = wfm.get(run)
        ratio = f"{mine['seconds'] / m['seconds']:8.2f}x" if mine and not name.startswith("wfm") else f"{'':9}"
        rss = f"{m['rss']:6.0f} MiB" if "rss" in m else f"{'':9}"
        lines.append(f"{name:34} {run:11} {m['seconds']:8.2f} {rate} {rss} {ratio}  {_note(name, m)}")
    return lines, summary


def _note(name: str, m: dict) -> str:
    if name == "floor":
        return f"extract {m['extract']:.1f} + load {m['load']:.1f} + lake {m['lake']:.1f}; max {m['max']:.1f}"
    if name == "wfm" and "fixed" in m:
        return f"fixed cost {m['fixed']:.2f} s (wall less fetch); rows {m['rows']:,.0f}"
    if name == "wfm" and "inserted" in m:
        return f"inserted {m['inserted']:,.0f} updated {m['updated']:,.0f} unchanged {m['unchanged']:,.0f}"
    if "setup" in m:
        return f"in a fresh process; the run before it, which set the watermark: {m['setup']:.1f} s"
    if "rows_after" in m:
        return f"{m['rows_after']:,.0f} rows in the destination after it"
    return ""


def targets(summary: dict, memory: dict | None) -> list[str]:
    """Each target of issue 17 (and issue 9's dlt one) with its numbers: held, missed, or not measured."""
    def get(name, run="first"):
        return summary.get((name, run), {}).get("seconds")

    wfm, rerun, fl, fl_rerun = get("wfm"), get("wfm", "rerun"), get("floor"), get("floor", "rerun")
    fast, default = get("dlt fastest → postgres"), get("dlt default → postgres")
    lake = get("dlt fastest → filesystem")
    cli = get("wfm incremental (CLI)", "nothing new")
    served = get("wfm incremental (CLI, server up)", "nothing new")
    resident = get("wfm", "nothing new, long-lived")
    fixed = summary.get(("wfm", "one small window"), {}).get("fixed")
    both = fast and lake and fast + lake
    checks = [
        ("first backfill ≤ 1.3× the floor (sum of stages)", wfm and fl, lambda: wfm <= 1.3 * fl,
         lambda: f"{wfm:.1f} s vs {fl:.1f} s = {wfm / fl:.2f}x"),
        ("rerun ≤ 1.3× the floor's rerun", rerun and fl_rerun, lambda: rerun <= 1.3 * fl_rerun,
         lambda: f"{rerun:.1f} s vs {fl_rerun:.1f} s = {rerun / fl_rerun:.2f}x"),
        ("first backfill faster than dlt fastest → postgres + dlt fastest → filesystem", wfm and both,
         lambda: wfm < both, lambda: f"{wfm:.1f} s vs {fast:.1f} + {lake:.1f} = {both:.1f} s"),
        ("first backfill ≥ 5× faster than dlt default → postgres (issue 9)", wfm and default,
         lambda: default >= 5 * wfm, lambda: f"dlt {default:.1f} s / wfm {wfm:.1f} s = {default / wfm:.1f}x"),
        ("incremental with nothing new ≤ 8 s, Prefect start included (CLI's own local API)", cli, lambda: cli <= 8,
         lambda: f"{cli:.1f} s (wfm sync in a fresh process, starting the API)"),
        ("incremental with nothing new ≤ 5 s, Prefect start included (a Prefect server running)", served,
         lambda: served <= 5, lambda: f"{served:.1f} s (wfm sync in a fresh process, PREFECT_API_URL set)"),
        ("incremental with nothing new ≤ 5 s in a long-lived process (`wfm serve`, a worker)", resident,
         lambda: resident <= 5, lambda: f"{resident:.1f} s (sync_stream in the process of the backfill)"),
        ("a stream run of one small window ≤ 1 s of fixed cost (its wall less fetch)", fixed is not None,
         lambda: fixed <= 1, lambda: f"{fixed:.2f} s (one day of service_group_intervals, landed in full)"),
    ]
    if memory:
        small, big = memory["small"], memory["big"]
        checks.append(("peak RSS at 5M ≤ 1.2× at 1M and < 1 GB", True,
                       lambda: big <= 1.2 * small and big < 1024,
                       lambda: f"{big:.0f} MiB vs {small:.0f} MiB = {big / small:.2f}x"))
    return [f"  {'HELD  ' if measured and held() else 'MISSED' if measured else 'n/a   '} {what}"
            + (f": {numbers()}" if measured else "") for what, measured, held, numbers in checks]


def main(argv: list[str] | None = None) -> int:
    args = arguments(argv)
    start = dt.date.today() - dt.timedelta(days=args.days - 1)
    end = dt.date.today()
    print(f"# {common.machine(args.database_url)}; commit {common.git_head()}")
    with replay.source(args.source, args.agents, args.days, start) as (src, windows):
        print(f"# agent_status_intervals {args.agents} agents × {args.days} days ({start}..{end}), "
              f"{len(windows)} requests, {args.reps} repetition(s), source: {args.source}", flush=True)
        if args.source == "replay":
            print(f"# replay source: {src.recorded} answers ({src.bytes / 2**20:.0f} MiB) recorded from the "
                  f"simulator in {src.seconds:.1f} s (untimed), served from memory by a process of its own", flush=True)
        else:
            warm = _source_floor(src, windows)
            print(f"# simulator warmed in {warm:.1f} s (untimed): every answer is computed once before any "
                  f"contender runs, so none pays the generation and the first contender is not penalised", flush=True)
        floor_seconds = _source_floor(src, windows)
        print(f"# source floor: {floor_seconds:.2f} s to fetch and decode every page (httpx + orjson, 4 in flight, "
              f"nothing else)", flush=True)
        measured = measure(args, src, windows, start, end)
        if args.source == "replay":
            hits = src.stats()
            print(f"# replay source: {hits['hits']:,} answers from memory, {hits['misses']:,} forwarded to the "
                  f"simulator (the token endpoint, incremental windows ending 'now')", flush=True)
    runs = measured["runs"]
    rows = next((r[0]["rows"] for n, by in runs.items() for r in by.values() if "rows" in r[0]), 0)
    memory = _memory(args, runs)
    overhead = _prefect(args)
    lines, summary = table(runs, rows)
    print(f"\n# {rows:,} rows fetched per run; medians of {args.reps}; peak RSS is each contender's own process; "
          f"source floor {floor_seconds:.2f} s ({args.source})")
    print("\n".join(lines))
    if "dlt" in args.only and not measured["dlt"]:
        print("dlt: not installed (make bench installs the bench extra)")
    elif measured["dlt"]:
        print(f"dlt {measured['dlt']}: filesystem has no merge for plain Parquet (dlt falls back to append)")
    profiles = _profiles(runs)
    if profiles:
        print("\nwfm stage profile (medians; thread-seconds, 4 windows in flight overlap; bench/stages.py):")
        print("\n".join(stages.table(profiles)))
    if memory:
        print(f"\nmemory: wfm first backfill peak RSS {memory['small']:.0f} MiB at {rows:,} rows, "
              f"{memory['big']:.0f} MiB at {memory['big_rows']:,} rows ({memory['big_seconds']:.0f} s)")
    for backend, m in (overhead or {}).items():
        print(f"prefect API on {backend:8}: {m['per_task'] * 1000:6.1f} ms per task ({m['tasks']} trivial tasks "
              f"{m['flow']:.2f} s, empty flow {m['empty_flow']:.2f} s)")
    print("\ntargets:")
    print("\n".join(targets(summary, memory)))
    return 0


def _source_floor(src, windows: list) -> float:
    """Seconds to fetch and decode every page (what the source alone costs a reader)."""
    return common.timed(lambda: sum(1 for _ in floor.pages(src.cc_url, windows, lambda records: None)))[0]


def _profiles(runs: dict) -> dict[str, dict[str, float]]:
    """{column: {stage: median seconds}} of every wfm run that carries a stage profile."""
    out = {}
    for name, by_run in runs.items():
        for run, results in by_run.items():
            found = [r["stages"] for r in results if "stages" in r]
            if name.startswith("wfm") and found:
                column = ({"nothing new, long-lived": "long-lived", "one small window": "small window"}.get(run, run)
                          if name == "wfm"
                          else ("CLI, server" if "server" in name else "CLI, own API"))
                out[column] = {stage: common.median([p.get(stage, 0.0) for p in found])
                               for stage in {s for p in found for s in p}}
                out[column]["wall"] = common.median([r["seconds"] for r in results])
    return out


def _memory(args, runs: dict) -> dict | None:
    if "memory" not in args.only or not args.big_days or not runs.get("wfm"):
        return None
    import wfm_runs

    print(f"# memory step: {args.big_agents} agents × {args.big_days} days in a child process", flush=True)
    big = common.in_child(wfm_runs.scaling, args.big_agents, args.big_days, args.database_url, args.source)["first"]
    return {"small": max(r["rss"] for r in runs["wfm"]["first"]), "big": big["rss"], "big_rows": big["rows"],
            "big_seconds": big["seconds"]}


def _prefect(args) -> dict | None:
    if "prefect" not in args.only:
        return None
    import prefect_overhead

    print(f"# Prefect step: {args.tasks} trivial tasks, SQLite harness"
          + (" vs a server on PostgreSQL" if args.prefect_server else ""), flush=True)
    return prefect_overhead.compare(args.database_url, args.tasks, reps=3, server=args.prefect_server)


if __name__ == "__main__":
    sys.exit(main())
