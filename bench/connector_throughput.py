"""Connector throughput: `streams.fetch_all` against plain httpx + orjson on the same URLs.

    .venv/bin/python bench/connector_throughput.py                      # 1000 agents × 7 days
    .venv/bin/python bench/connector_throughput.py --agents 200 --days 2 --reps 1 --server thread

The simulator serves a fixed simulated period (its clock is set after it) in a child process
(`--server process`, its own GIL: the numbers that describe the client) and/or in a thread of
this process (`--server thread`, sharing the GIL as the tests do). For each stream and each
`--in-flight` level the script times, `--reps` times alternately:

- baseline:  httpx.Client GET of every window's URL + `orjson.loads`, same in-flight bound;
- connector: `streams.windows` + `streams.fetch_all` (retries, flatten, Arrow conversion).

It prints medians: requests/s, rows/s, MB/s (response bodies, the same bytes for both) and
connector/baseline time, i.e. what our parsing into Arrow costs on top of transport + JSON.
"""

from __future__ import annotations

import argparse
import datetime as dt
import sys
from concurrent.futures import ThreadPoolExecutor

import common  # noqa: F401  (telemetry variables first)
import httpx
import orjson

from connectors import contact_center as cc
from connectors import streams
from connectors.settings import CONTACT_CENTER, SourceSettings

STREAMS = {"agentStatusData": cc.AGENT_STATUS_INTERVALS, "serviceGroupData": cc.SERVICE_GROUP_INTERVALS}


def plan(sim: common.Simulator, stream: streams.Stream, start: dt.date, days: int) -> list[streams.Window]:
    with SourceSettings(CONTACT_CENTER, sim.cc_url).client() as client:
        ids = cc.personnel_ids(client)[stream.ids]
    first = dt.datetime.combine(start, dt.time(), common.UTC)
    return streams.windows(stream, first, first + dt.timedelta(days=days), ids)


def baseline(sim: common.Simulator, stream: streams.Stream, windows: list[streams.Window],
             in_flight: int) -> tuple[int, int]:
    """(rows, body bytes) with nothing but httpx and orjson; rows are counted, not parsed."""
    nested = stream.explode

    def get(window: streams.Window) -> tuple[int, int]:
        req = stream.request(window)
        response = http.get(req.path, params=req.params)
        response.raise_for_status()
        payload = orjson.loads(response.content)
        return sum(len(item.get(nested) or ()) for item in payload), len(response.content)

    limits = httpx.Limits(max_connections=in_flight, max_keepalive_connections=in_flight)
    with httpx.Client(base_url=sim.cc_url, limits=limits, timeout=60) as http, \
            ThreadPoolExecutor(max_workers=in_flight) as pool:
        results = list(pool.map(get, windows))
    return sum(r for r, _ in results), sum(b for _, b in results)


def connector(sim: common.Simulator, stream: streams.Stream, windows: list[streams.Window],
              in_flight: int) -> tuple[int, int]:
    """(rows, rejects) through the connector, as the sync tasks use it."""
    rows = rejects = 0
    with SourceSettings(CONTACT_CENTER, sim.cc_url).client() as client:
        for _, parsed in streams.fetch_all(client, stream, windows, max_in_flight=in_flight):
            rows += parsed.table.num_rows
            rejects += len(parsed.rejects)
    return rows, rejects


def run_server(args: argparse.Namespace, mode: str) -> None:
    with common.simulator(args.agents, args.days, args.start, mode) as sim:
        for name, stream in STREAMS.items():
            windows = plan(sim, stream, args.start, args.days)
            baseline(sim, stream, windows, 4)                          # warm the simulator's caches
            connector(sim, stream, windows[:2], 1)                     # and our first-call costs
            for in_flight in args.in_flight:
                base_s, conn_s, bodies = [], [], 0
                for _ in range(args.reps):                             # alternate: noise hits both
                    took, (base_rows, bodies) = common.timed(baseline, sim, stream, windows, in_flight)
                    base_s.append(took)
                    took, (rows, rejects) = common.timed(connector, sim, stream, windows, in_flight)
                    conn_s.append(took)
                report(mode, name, in_flight, len(windows), rows, rejects, base_rows, bodies,
                       common.median(base_s), common.median(conn_s))


def report(mode: str, name: str, in_flight: int, requests: int, rows: int, rejects: int, base_rows: int,
           bodies: int, base: float, conn: float) -> None:
    mb = bodies / 1e6
    note = "" if rejects == 0 else f"  ({rejects} rejects)"
    dup = "" if base_rows == rows + rejects else f"  (baseline counted {base_rows} rows)"
    for who, seconds in (("baseline", base), ("connector", conn)):
        print(f"{mode:7} {name:16} {in_flight:>3} {who:9} {seconds:7.2f} s {requests / seconds:8.1f} req/s "
              f"{rows / seconds:10,.0f} rows/s {mb / seconds:7.1f} MB/s", flush=True)
    print(f"{mode:7} {name:16} {in_flight:>3} ratio     connector/baseline = {conn / base:.2f}x   "
          f"[{requests} requests, {rows:,} rows, {mb:.1f} MB]{note}{dup}", flush=True)


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--agents", type=int, default=1000)
    parser.add_argument("--days", type=int, default=7)
    parser.add_argument("--start", type=dt.date.fromisoformat, default=common.DEFAULT_START)
    parser.add_argument("--in-flight", type=int, nargs="+", default=[1, 4, 8])
    parser.add_argument("--reps", type=int, default=3, help="repetitions per measurement; medians are printed")
    parser.add_argument("--server", choices=["process", "thread", "both"], default="both")
    args = parser.parse_args(argv)
    print(f"# {common.machine()}; commit {common.git_head()}")
    print(f"# {args.agents} agents × {args.days} days from {args.start}, medians of {args.reps}")
    print(f"{'server':7} {'stream':16} {'inf':>3} {'who':9} {'time':>9} {'requests':>14} {'rows':>17} {'bytes':>12}")
    for mode in (["process", "thread"] if args.server == "both" else [args.server]):
        run_server(args, mode)


if __name__ == "__main__":
    sys.exit(main())
