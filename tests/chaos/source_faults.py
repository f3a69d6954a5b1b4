"""Source faults: a multi-day backfill through a storm of HTTP faults equals a fault-free one.

The storm holds every kind the simulator injects, on both systems: 5xx, 429 with `Retry-After`
in both forms, client timeouts, dropped and reset connections, answers lost after the request
was handled, truncated bodies, restated intervals and damaged records (1C knows only its own
kinds: 500, 502, 503, drop, reset, timeout; the simulator turns the others into 500s there).
A run whose window ran out of retry attempts, or was held back by its damaged records, fails in
one line and is simply run again, as a scheduler would.

Restatements and damaged records change what the source said after the fact, so — as the next
scheduled syncs would — `passes - 1` more passes re-read the period (`force`) with the transport
faults still on: every pass is a full set of requests through the storm, which is where the
fault count comes from (`force` lands every window in full again, so the later passes also
re-check that a re-landing through the storm changes nothing). More agents mean more id batches
per window (100 ids a request), so more requests — and faults — per pass for the same fixed cost
of a window's landing. Then the tables must equal those of a fault-free run into a second
database, and the lake must equal PostgreSQL.
"""

from __future__ import annotations

import datetime as dt
import tempfile
from pathlib import Path

import psycopg

from . import Outcome
from .compare import differences, lake_problems
from .lab import SIM_START, fresh_database, pointed_at, simulator

STORM = ("500=0.07,502=0.06,503=0.07,504=0.04,429=0.07,timeout=0.03,drop=0.06,reset=0.06,truncate=0.06,"
         "drop_after=0.04,restate=0.3,corrupt=0.01,retry_after=1,retry_after_form=mixed,slow_seconds=1.5")
AFTER_THE_FACT = ("restate=", "corrupt=")      # the source changed: the later passes re-read without these
STREAMS = ("cc_personnel", "service_group_intervals", "agent_status_intervals", "agent_logins", "employees")
MAX_RUNS = 4


def source_faults(server: str, days: int = 2, streams: tuple[str, ...] = STREAMS, agents: int = 12,
                  storm: str = STORM, seed: int = 1, passes: int = 2) -> Outcome:
    """Backfill `days` days of `streams` through the storm, `passes` times, and compare with a
    fault-free landing."""
    first, last = SIM_START, SIM_START + dt.timedelta(days=days - 1)
    outcome = Outcome("source faults", 0, 0, "faults injected")
    with simulator(agents=agents, days=max(days, 7), fault_seed=seed) as sim, \
            fresh_database(server) as stormy, fresh_database(server) as calm, \
            tempfile.TemporaryDirectory(prefix="wfm-chaos-") as scratch:
        lakes = Path(scratch) / "stormy", Path(scratch) / "calm"
        # 12 attempts a request: a pass re-reads every window, and at the storm's fault rate six
        # attempts give up often enough that no pass of ~80 windows would ever complete
        with pointed_at(sim, stormy, lakes[0], WFM_HTTP_TIMEOUT="1", WFM_HTTP_ATTEMPTS="12"):
            sim.set_faults(storm)
            runs = _until_complete(list(streams), first, last, force=False, must=False)
            sim.set_faults(_transport_only(storm))
            for _ in range(passes - 1):
                runs += _until_complete(list(streams), first, last, force=True)
            counted, places = sim.stats()["faults"], sim.stats()["faultPlaces"]
            sim.set_faults("")
        with pointed_at(sim, calm, lakes[1]):
            _until_complete(list(streams), first, last, force=False, attempts=1)
        outcome.problems = differences(stormy, calm) + lake_problems(stormy, lakes[0])
        missing = sorted(kind for kind in _kinds(storm) if not counted.get(kind))
        # at full counts every kind must have struck (a short run may draw none of a rare one)
        if missing and sum(counted.values()) > 300:
            outcome.problems.append(f"the storm injected no {', '.join(missing)}")
        outcome.problems += [f"no faults on {s}" for s in ("cc", "onec") if not places.get(s)] \
            if any(s in ("employees", "timesheet_days", "onec_personnel") for s in streams) else []
        injected = sum(counted.values())
        outcome.tried = injected
        outcome.held = injected if not outcome.problems and runs else 0
        outcome.exact = not outcome.problems
        outcome.detail = (f"{days} day(s), {len(streams)} stream(s), {agents} agents, {passes} pass(es), {runs} run(s) "
                          f"of the sync; {_spread(counted, places, stormy)}")
    return outcome


def _until_complete(streams: list[str], first: dt.date, last: dt.date, force: bool, attempts: int = MAX_RUNS,
                    must: bool = True) -> int:
    """Run the sync until it completes (a failed window lands on a later run); the number of runs.

    With `must` False the last failure is let go: a later pass lands what this one could not."""
    from flows.sync import SyncFailed, sync

    for run in range(1, attempts + 1):
        try:
            sync(streams, first, last, force=force)
            return run
        except SyncFailed:
            if run == attempts and must:
                raise
    return attempts


def _transport_only(storm: str) -> str:
    return ",".join(item for item in storm.split(",") if not item.startswith(AFTER_THE_FACT))


def _kinds(storm: str) -> list[str]:
    from connectors.simulator.faults import KINDS

    return [item.split("=")[0] for item in storm.split(",") if item.split("=")[0] in KINDS]


def _spread(counted: dict[str, int], places: dict[str, dict[str, int]], database_url: str) -> str:
    """Where the faults fell: per system and endpoint count, windows retried, kinds."""
    with psycopg.connect(database_url) as conn:
        retried = conn.execute("SELECT count(DISTINCT (stream, window_start, ids_hash)) FROM wfm_meta.sync_windows "
                               "WHERE retries > 0").fetchone()[0]
    systems = ", ".join(f"{system} {sum(paths.values())} over {len(paths)} endpoint(s)"
                        for system, paths in sorted(places.items()))
    kinds = " ".join(f"{kind} {n}" for kind, n in sorted(counted.items(), key=lambda kv: -kv[1]))
    return f"{systems}; {retried} window(s) retried; {kinds}"
