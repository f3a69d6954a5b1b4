"""A hanging source: requests accepted and never answered, deterministic 1C errors, a source that
silently serves nothing — the faults the circuit breaker (`connectors/http.py:Breaker`) exists for.

Two disturbed runs of a backfill, each bounded in time: one where every agentLoginData request
hangs (the breaker must open and defer the rest of the stream instead of waiting out every
window), one where a share of all requests hang, 1C answers its deterministic 500 or the
contact center answers "no data". A run may end failed or deferred (one line), never hang, and
must end within `BOUND` seconds. Then the faults stop and the backfill is run again (`force`, as
after the anomaly alert for the empty answers): its tables must equal a fault-free landing, the
lake PostgreSQL.
"""

from __future__ import annotations

import datetime as dt
import tempfile
import time
from pathlib import Path

from . import Outcome
from .compare import differences, lake_problems
from .lab import SIM_START, fresh_database, pointed_at, simulator

STREAMS = ("agent_logins", "agent_status_intervals", "employees")
STORMS = ("hang=1,path=/historic/agentLoginData", "hang=0.25,error=0.1,empty=0.1")
BOUND = 120.0          # seconds a disturbed run may take (a fault-free one takes a few on this world)
QUICK = {"WFM_HTTP_TIMEOUT": "0.5", "WFM_HTTP_ATTEMPTS": "2", "WFM_BREAKER_FAILURES": "2"}


def hanging_source(server: str, days: int = 3, seed: int = 5) -> Outcome:
    from flows.sync import SyncFailed, sync

    outcome = Outcome("hanging source (breaker)", 0, 0, "hung / refused requests")
    first, last = SIM_START, SIM_START + dt.timedelta(days=days - 1)
    with simulator(fault_seed=seed) as sim, fresh_database(server) as db, fresh_database(server) as calm, \
            tempfile.TemporaryDirectory(prefix="wfm-chaos-hang-") as scratch:
        lake = Path(scratch) / "lake"
        with pointed_at(sim, calm, Path(scratch) / "calm-lake"):
            sync(list(STREAMS), first, last)
        with pointed_at(sim, db, lake, **QUICK):
            timings = []
            for storm in STORMS:
                sim.set_faults(storm)
                started = time.monotonic()
                try:
                    sync(list(STREAMS), first, last)
                except SyncFailed as failed:
                    if "\n" in str(failed):
                        outcome.problems.append(f"{storm}: the failure is not one line")
                except Exception as exc:   # noqa: BLE001 - anything else is the finding
                    outcome.problems.append(f"{storm}: {type(exc).__name__}: {str(exc)[:200]}")
                timings.append(time.monotonic() - started)
                if timings[-1] > BOUND:
                    outcome.problems.append(f"{storm}: the run took {timings[-1]:.0f} s (bound {BOUND:.0f} s)")
            counted = sim.stats()["faults"]
            sim.set_faults("")
        with pointed_at(sim, db, lake):
            sync(list(STREAMS), first, last, force=True)
        outcome.problems += differences(db, calm) + lake_problems(db, lake)
    injected = sum(counted.get(kind, 0) for kind in ("hang", "error", "empty"))
    outcome.tried = injected
    outcome.held = injected if not outcome.problems else 0
    outcome.exact = not outcome.problems
    outcome.detail = (f"{', '.join(f'{k} {counted.get(k, 0)}' for k in ('hang', 'error', 'empty'))}; "
                      f"runs ended in {', '.join(f'{t:.0f}' for t in timings)} s")
    return outcome
