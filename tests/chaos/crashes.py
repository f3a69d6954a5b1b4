"""Crashes: a sync or push killed with SIGKILL at a named or random point, then run again.

Each trial kills a child process (`crash_driver`) at one point — while extracting, between the
upsert and its commit, while a Parquet partition is half written, after it is written but before
the rename, after the rename but before the lake queue is cleared, after 1C stored a schedule
but before the outbox heard of it, after 1C made a sendFactWorkTime document but before the
outbox heard of it, after a fact was claimed `sending` but before it was sent, or at a random
moment — then checks, before any repair:

- the watermark is not ahead of committed rows: every row the source holds before a stream's
  watermark is in the table;
- every `*.parquet` file reads whole with pyarrow, and readers of the table directory see no
  partial data (the swap's temporary file is hidden and named `*.tmp`).

The interrupted work is then run again in this process; its result must equal an uninterrupted
run (all `wfm.*` rows, the lake equal to PostgreSQL, the outbox and 1C's stored schedules and
fact documents — each confirmed deviation held once, `facts.py`), and no temporary file may
survive it once it is stale.
"""

from __future__ import annotations

import datetime as dt
import json
import os
import random
import signal
import subprocess
import sys
import tempfile
import time
from contextlib import ExitStack
from pathlib import Path

import psycopg

from engine.paths import PROJECT_ROOT

from . import Outcome
from .compare import LINEAGE, differences, lake_problems, plain, temporary_files
from .facts import fact_problems, fact_reference, prepare_facts, push_facts
from .lab import fresh_database, pointed_at, prefect_api_url, simulator, wfm_variables
from .pushes import PUSH_SINCE, outbox_problems, plan_shifts, push_reference

UTC = dt.timezone.utc
STREAMS = ("agent_logins", "agent_status_intervals")
SYNC_POINTS = ("extract", "commit", "swap-partial", "swap-before-rename", "swap-after-rename", "timer")
FACT_POINTS = ("fact-stored", "fact-claimed")
POINTS = SYNC_POINTS[:-1] + ("push",) + FACT_POINTS + ("timer",)
CURSOR = {"agent_logins": "login_at", "agent_status_intervals": "started_at"}


def crashes(server: str, kills: int = 7, seed: int = 0) -> Outcome:
    """`kills` trials over every point in turn (a random call number or moment each time)."""
    rng = random.Random(seed)
    outcome = Outcome("crashes (SIGKILL)", 0, 0, "kills")
    today = dt.datetime.now(UTC).date()
    live = {"agents": 10, "start": today - dt.timedelta(days=3), "days": 4,
            "clock": dt.datetime.now(UTC).replace(microsecond=0)}
    with ExitStack() as stack:
        scratch = Path(stack.enter_context(tempfile.TemporaryDirectory(prefix="wfm-chaos-crash-")))
        driver = Driver(scratch / "driver.log")     # imports while the reference runs land
        stack.callback(driver.close)
        calm, calm_push = (stack.enter_context(fresh_database(server)) for _ in range(2))
        with simulator(**live) as sim, pointed_at(sim, calm, scratch / "calm-lake"):
            _sync()
        with simulator() as sim:
            push_reference(sim, calm_push, scratch / "calm-push-lake")
        calm_facts = fact_reference(server, scratch) \
            if any(POINTS[t % len(POINTS)] in FACT_POINTS for t in range(kills)) else None
        for trial in range(kills):
            point = POINTS[trial % len(POINTS)]
            after = round(rng.uniform(0.2, 3.0), 2) if point == "timer" else rng.randint(1, 4)
            references = {"push": calm_push, **dict.fromkeys(FACT_POINTS, calm_facts)}
            # a simulator of its own (same seed and clock, so the same data): the source slots a
            # killed run held stay taken until their lease ends (engine/landing/limits.py), per host and port
            with simulator(**({} if point in references else live)) as sim, fresh_database(server) as db:
                _trial(outcome, driver, sim, db, scratch / f"lake-{trial}", point, after,
                       references.get(point, calm))
    outcome.exact = not outcome.problems
    return outcome


def _trial(outcome: Outcome, driver: Driver, sim, db: str, lake: Path, point: str, after: float,
           reference: str) -> None:
    """Kill, check what the kill left, run again, compare with the uninterrupted run."""
    push, facts = point == "push", point in FACT_POINTS
    if push:
        with pointed_at(sim, db, lake):
            plan_shifts(sim, db)
    if facts:
        prepare_facts(sim, db, lake)
    killed = driver.kill(sim, db, lake, point, after)
    label = f"{point}@{after:g}"
    if not killed:
        outcome.detail += f" {label}: finished before the kill;"
        return
    outcome.tried += 1
    found = [] if push or facts else _watermark_problems(db, reference) + _unreadable(lake)
    for path in temporary_files(lake):      # a later run finds the swap's leftovers stale
        os.utime(path, (time.time() - 7200, time.time() - 7200))
    with pointed_at(sim, db, lake):
        if push:
            from flows.push import push_schedules

            push_schedules(PUSH_SINCE)
        elif facts:
            push_facts(settle_after_seconds=120)    # the next night at once: too fresh to judge, nothing sent twice
            push_facts()                            # minutes later (the killed process sends nothing more)
        else:
            _sync()
    if push:
        found += outbox_problems(sim, db, reference)
    elif facts:
        found += fact_problems(sim, db, reference)
    else:
        found += differences(db, reference) + lake_problems(db, lake)
    found += [f"left behind: {p.relative_to(lake)}" for p in temporary_files(lake)]
    outcome.problems += [f"{label}: {p}" for p in found]
    outcome.held += not found


def _sync() -> None:
    from flows.sync import sync

    sync(list(STREAMS))


class Driver:
    """The crash driver serving forked runs (imports paid once); see `crash_driver.serve`."""

    def __init__(self, log: Path):
        env = {**os.environ, "PREFECT_API_URL": prefect_api_url() or "", "PYTHONPATH": str(PROJECT_ROOT)}
        self.log = log.open("a")
        self.process = subprocess.Popen([sys.executable, "-m", "tests.chaos.crash_driver", "--serve"], env=env,
                                        cwd=PROJECT_ROOT, stdin=subprocess.PIPE, stdout=subprocess.PIPE,
                                        stderr=self.log, text=True)

    def kill(self, sim, db: str, lake: Path, point: str, after: float) -> bool:
        """Run one trial until it kills itself; True if it did (False: the run ended first)."""
        work, target = ("push", PUSH_SINCE.isoformat()) if point == "push" else \
            ("facts", "-") if point in FACT_POINTS else ("sync", ",".join(STREAMS))
        env = {k: v for k, v in wfm_variables(sim, db, lake).items() if v is not None}
        return self.run(work, target, point, after, env)

    def run(self, work: str, target: str, point: str, after: float, env: dict[str, str]) -> bool:
        """One forked run of `work` with `env` added, killed at `point`; True if it was."""
        order = {"work": work, "target": target, "point": point, "after": after, "env": env}
        self.process.stdin.write(json.dumps(order) + "\n")
        self.process.stdin.flush()
        answer = self.process.stdout.readline()
        if not answer:
            raise RuntimeError(f"the crash driver died; see {self.log.name}")
        code = json.loads(answer)["exit"]
        if code not in (0, -signal.SIGKILL):
            raise RuntimeError(f"a crash trial failed ({code}) without being killed; see {self.log.name}")
        return code == -signal.SIGKILL

    def close(self) -> None:
        self.process.stdin.close()
        self.process.wait(timeout=60)
        self.log.close()


def _watermark_problems(db: str, reference: str) -> list[str]:
    """Rows of the uninterrupted run that lie before a watermark but are not committed."""
    problems = []
    with psycopg.connect(db) as conn, psycopg.connect(reference) as ref:
        marks = dict(conn.execute("SELECT stream, value FROM wfm_meta.watermarks").fetchall()) \
            if _has(conn, "wfm_meta.watermarks") else {}
        for stream, cursor in CURSOR.items():
            if marks.get(stream) is None:
                continue
            query = f"SELECT * FROM wfm.{stream} WHERE {cursor} < %s"
            expected = _keys(ref, query, marks[stream])
            landed = _keys(conn, query, marks[stream]) if _has(conn, f"wfm.{stream}") else set()
            if expected - landed:
                problems.append(f"watermark of {stream} at {marks[stream]} is ahead of {len(expected - landed)} "
                                "uncommitted row(s)")
    return problems


def _keys(conn: psycopg.Connection, query: str, mark: dt.datetime) -> set[tuple]:
    cur = conn.execute(query, (mark,))
    data = [i for i, c in enumerate(cur.description) if c.name not in LINEAGE]
    return {tuple(plain(r[i]) for i in data) for r in cur}


def _has(conn: psycopg.Connection, table: str) -> bool:
    return conn.execute("SELECT to_regclass(%s) IS NOT NULL", (table,)).fetchone()[0]


def _unreadable(lake: Path) -> list[str]:
    import pyarrow.dataset as ds
    import pyarrow.parquet as pq

    problems = []
    for path in sorted(lake.rglob("*.parquet")) if lake.exists() else []:
        try:
            pq.read_table(path)
        except Exception as exc:
            problems.append(f"partial partition {path.relative_to(lake)}: {exc}")
    for table in (p for p in lake.iterdir() if p.is_dir()) if lake.exists() else []:
        try:
            ds.dataset(table, format="parquet", partitioning="hive").to_table()
        except Exception as exc:
            problems.append(f"a reader of {table.name}/ trips over a leftover: {exc}")
    return problems
