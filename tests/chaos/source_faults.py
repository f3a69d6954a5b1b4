"""Source faults: a multi-day backfill through a storm of HTTP faults equals a fault-free one.

The fault run lands with every kind the simulator injects on (5xx, 429 with `Retry-After` in both
forms, client timeouts, dropped and reset connections, truncated bodies, restated intervals).
A run whose window ran out of retry attempts fails in one line and is simply run again, as a
scheduler would. Restatements change the source after the fact, so — as the next scheduled sync
would — a second pass re-reads the period (`force`) with the transport faults still on; then the
tables must equal those of a fault-free run into a second database, and the lake must equal
PostgreSQL.
"""

from __future__ import annotations

import datetime as dt
import tempfile
from pathlib import Path

from . import Outcome
from .compare import differences, lake_problems
from .lab import SIM_START, fresh_database, pointed_at, simulator

STORM = ("500=0.06,502=0.05,503=0.06,504=0.03,429=0.06,timeout=0.03,drop=0.04,reset=0.04,truncate=0.04,"
         "restate=0.3,retry_after=1,retry_after_form=mixed,slow_seconds=1.5")
STREAMS = ("cc_personnel", "service_group_intervals", "agent_status_intervals", "agent_logins", "employees")
MAX_RUNS = 4


def source_faults(server: str, days: int = 2, streams: tuple[str, ...] = STREAMS, agents: int = 12,
                  storm: str = STORM, seed: int = 1) -> Outcome:
    """Backfill `days` days of `streams` through the storm and compare with a fault-free landing."""
    first, last = SIM_START, SIM_START + dt.timedelta(days=days - 1)
    outcome = Outcome("source faults", 0, 0, "faults injected")
    with simulator(agents=agents, days=max(days, 7), fault_seed=seed) as sim, \
            fresh_database(server) as stormy, fresh_database(server) as calm, \
            tempfile.TemporaryDirectory(prefix="wfm-chaos-") as scratch:
        lakes = Path(scratch) / "stormy", Path(scratch) / "calm"
        with pointed_at(sim, stormy, lakes[0], WFM_HTTP_TIMEOUT="1"):
            sim.set_faults(storm)
            runs = _until_complete(list(streams), first, last, force=False)
            sim.set_faults(_without_restate(storm))
            runs += _until_complete(list(streams), first, last, force=True)
            injected = sum(sim.stats()["faults"].values())
            sim.set_faults("")
        with pointed_at(sim, calm, lakes[1]):
            _until_complete(list(streams), first, last, force=False, attempts=1)
        outcome.problems = differences(stormy, calm) + lake_problems(stormy, lakes[0])
        outcome.tried = injected
        outcome.held = injected if not outcome.problems and runs else 0
        outcome.exact = not outcome.problems
        outcome.detail = f"{days} day(s), {len(streams)} stream(s), {runs} run(s) of the sync"
    return outcome


def _until_complete(streams: list[str], first: dt.date, last: dt.date, force: bool, attempts: int = MAX_RUNS) -> int:
    """Run the sync until it completes (a failed window lands on a later run); the number of runs."""
    from flows.sync import SyncFailed, sync

    for run in range(1, attempts + 1):
        try:
            sync(streams, first, last, force=force)
            return run
        except SyncFailed:
            if run == attempts:
                raise
    return attempts


def _without_restate(storm: str) -> str:
    return ",".join(item for item in storm.split(",") if not item.startswith("restate="))
