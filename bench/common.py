"""Shared pieces of the benchmarks: quiet telemetry, the simulator, a throwaway database, stats.

Import this module before anything that imports Prefect: it sets the telemetry variables.
"""

from __future__ import annotations

import datetime as dt
import multiprocessing as mp
import os
import platform
import resource
import statistics
import subprocess
import time
import traceback
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass

os.environ["DO_NOT_TRACK"] = "1"
os.environ["PREFECT_SERVER_ANALYTICS_ENABLED"] = "false"
os.environ["PREFECT_LOGGING_LEVEL"] = "WARNING"

SYSTEM_POSTGRES = "postgresql://postgres@127.0.0.1:5432/test"
UTC = dt.timezone.utc
DEFAULT_START = dt.date(2026, 1, 5)   # a fixed simulated period; the simulator's clock is set after it


def default_database_url() -> str:
    return os.environ.get("WFM_DATABASE_URL") or SYSTEM_POSTGRES


@dataclass(frozen=True)
class Simulator:
    """Where a running simulator answers; `mode` is "process" or "thread"."""

    url: str
    cc_url: str
    onec_url: str
    mode: str


def _sim_config(agents: int, days: int, start: dt.date):
    from connectors.simulator import ServerConfig
    from connectors.simulator.world import SimConfig

    return ServerConfig(sim=SimConfig(seed=42, agents=agents, start=start, days=days))


def _clock(start: dt.date, days: int) -> dt.datetime:
    """A moment after the whole simulated history, so every record is served."""
    return dt.datetime.combine(start + dt.timedelta(days=days + 1), dt.time(12), UTC)


def _serve(agents: int, days: int, start: dt.date, conn, stop) -> None:
    from connectors.simulator import start_simulator

    with start_simulator(_sim_config(agents, days, start)) as running:
        running.set_clock(_clock(start, days))
        conn.send((running.url, running.cc_url, running.onec_url))
        stop.wait()


@contextmanager
def simulator(agents: int, days: int, start: dt.date = DEFAULT_START, mode: str = "process") -> Iterator[Simulator]:
    """A simulator in a child process (its own GIL and RSS) or in a thread of this process."""
    if mode == "thread":
        from connectors.simulator import start_simulator

        with start_simulator(_sim_config(agents, days, start)) as running:
            running.set_clock(_clock(start, days))
            yield Simulator(running.url, running.cc_url, running.onec_url, "thread")
        return
    ctx = mp.get_context("spawn")
    parent, child = ctx.Pipe()
    stop = ctx.Event()
    proc = ctx.Process(target=_serve, args=(agents, days, start, child, stop), daemon=True)
    proc.start()
    try:
        if not parent.poll(60):
            raise RuntimeError("simulator process did not start")
        yield Simulator(*parent.recv(), "process")
    finally:
        stop.set()
        proc.join(10)
        if proc.is_alive():
            proc.terminate()


def throwaway_database(server_url: str):
    """A fresh database `wfm_bench_<random>` on the server of `server_url`, dropped afterwards."""
    from engine.database import scratch_database

    return scratch_database(server_url, prefix="wfm_bench")


def plan_windows(cc_url: str, start: dt.date, days: int) -> list:
    """The agent-status requests of `days` days from `start` (every agent the source lists), one per
    request of <= 100 ids: a wfm window holds up to 10 of them (`streams.requests_of`)."""
    from connectors import contact_center as cc
    from connectors import streams
    from connectors.settings import CONTACT_CENTER, SourceSettings

    with SourceSettings(CONTACT_CENTER, cc_url).client() as client:
        agents = cc.personnel_ids(client)["agents"]
    first = dt.datetime.combine(start, dt.time(), UTC)
    stream = cc.AGENT_STATUS_INTERVALS
    return [part for window in streams.windows(stream, first, first + dt.timedelta(days=days), agents)
            for part in streams.requests_of(stream, window)]


def peak_rss_mib() -> float:
    """This process's peak RSS so far (ru_maxrss; children not included)."""
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024


def _child(conn, fn, args, kwargs) -> None:
    try:
        conn.send(("ok", fn(*args, **kwargs)))
    except BaseException:   # the parent prints it; a crash must not look like a result
        conn.send(("error", traceback.format_exc()))


def in_child(fn, *args, **kwargs):
    """`fn(*args, **kwargs)` in a fresh spawned process, so its peak RSS is its own; the return value.

    `fn` must be a module-level function of an importable module; an exception in the child is
    raised here as a RuntimeError carrying the child's traceback.
    """
    ctx = mp.get_context("spawn")
    parent, child = ctx.Pipe(duplex=False)
    proc = ctx.Process(target=_child, args=(child, fn, args, kwargs))
    proc.start()
    child.close()
    try:
        status, value = parent.recv()
    except EOFError:
        status, value = "error", f"child process died (exit code {proc.join() or proc.exitcode})"
    proc.join()
    if status != "ok":
        raise RuntimeError(f"{fn.__module__}.{fn.__name__} failed in its child process:\n{value}")
    return value


def timed(fn, *args, **kwargs) -> tuple[float, object]:
    started = time.perf_counter()
    result = fn(*args, **kwargs)
    return time.perf_counter() - started, result


def median(values: list[float]) -> float:
    return statistics.median(values) if values else float("nan")


def machine(database_url: str | None = None) -> str:
    """One line: cores, memory, CPU, Python, PostgreSQL."""
    mem_gib = os.sysconf("SC_PAGE_SIZE") * os.sysconf("SC_PHYS_PAGES") / 2**30
    cpu = next((line.split(":", 1)[1].strip() for line in open("/proc/cpuinfo") if line.startswith("model name")),
               platform.processor())
    pg = ""
    if database_url:
        import psycopg

        with psycopg.connect(database_url) as conn:
            pg = ", PostgreSQL " + conn.execute("SHOW server_version").fetchone()[0]
    load = ", load %.2f" % os.getloadavg()[0]
    return f"{os.cpu_count()} cores ({cpu}), {mem_gib:.0f} GiB, Python {platform.python_version()}{pg}{load}"


def git_head() -> str:
    try:
        return subprocess.run(["git", "rev-parse", "--short", "HEAD"], capture_output=True, text=True,
                              cwd=os.path.dirname(__file__)).stdout.strip()
    except OSError:
        return "?"
