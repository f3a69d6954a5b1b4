"""Seconds per stage of a wfm run, read from the engine's own timing hooks (`connectors/timing.py`).

The engine marks its stages with `timing.stage(name)`; this module turns a run's snapshot into
the profile the runner prints. In-process (the backfill child) the benchmark calls `enable()` and
`reset()` around each flow; a `wfm sync` in a process of its own writes its snapshot to the file
named by `WFM_STAGE_TIMES` at exit (`cli_env`, `read`).

Stage seconds are thread-seconds (four windows in flight overlap), so they can add up to more
than the wall time. Three rows are not stages of the engine but the time around them:
"imports + Prefect start-up" (from the start of the timed call — a fresh `wfm sync` process, or
the flow call in the backfill child — to the flow's first stage: importing, the API, the flow
run), "Prefect flow end + exit" (after its last stage) and "idle" (between the first and the last
stage, no thread in any stage: task orchestration, waiting). The backfill child also reports what
it paid before its first flow call (imports and the test harness' API), outside the wall time.
"""

from __future__ import annotations

import json
import os

from connectors import timing

BEFORE = "imports + harness, before the flow (not in wall)"
STARTUP, SHUTDOWN, IDLE = "imports + Prefect start-up", "Prefect flow end + exit", "idle"
ORDER = ("wall", BEFORE, STARTUP, "planning + run ledger", "source slot wait", "fetch", "parse into Arrow",
         "drift + content hash", "GX import", "GX", "COPY + upsert", "ledger + quarantine", "reconciliation",
         "lake publication", "finish (run ledger, artifact, webhooks)", SHUTDOWN, IDLE)


def enable() -> None:
    timing.enable()
    timing.reset()


def reset() -> None:
    timing.reset()


def profile(snapshot: dict, started: float, ended: float, before: float | None = None) -> dict[str, float]:
    """{stage: seconds} of one run between the epoch moments `started` and `ended`; `before` is
    what the process paid before `started` (imports, a test harness), if it is to be shown."""
    out = dict(snapshot["stages"])
    first, last = snapshot.get("first"), snapshot.get("last")
    if before is not None:
        out[BEFORE] = before
    out[STARTUP] = (first - started) if first else ended - started
    out[SHUTDOWN] = (ended - last) if last else 0.0
    out[IDLE] = snapshot.get("idle", 0.0)
    return out


def current(started: float, ended: float, before: float | None = None) -> dict[str, float]:
    return profile(timing.snapshot(), started, ended, before)


def cli_env(env: dict[str, str], path: str) -> dict[str, str]:
    """`env` for a `wfm sync` that writes its stage snapshot to `path` at exit."""
    return {**env, timing.ENV: path}


def read(path: str) -> dict:
    with open(path) as f:
        snapshot = json.load(f)
    os.unlink(path)
    return snapshot


def table(profiles: dict[str, dict[str, float]]) -> list[str]:
    """One row per stage, one column per run: the stage profile the runner prints."""
    names = list(profiles)
    stages = [s for s in ORDER if any(s in p for p in profiles.values())]
    stages += sorted({s for p in profiles.values() for s in p} - set(stages))
    width = max(12, *(len(n) for n in names))
    lines = [f"  {'stage (thread-seconds)':50}" + "".join(f" {n:>{width}}" for n in names)]
    for name in stages:
        lines.append(f"  {name:50}" + "".join(
            f" {profiles[n][name]:{width}.2f}" if name in profiles[n] else f" {'—':>{width}}" for n in names))
    return lines
