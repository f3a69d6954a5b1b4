"""Prefect's own cost per window: a flow of K trivial tasks submitted the way `sync_stream` submits
`sync_window` (a ThreadPoolTaskRunner of 4, `.submit` then `.wait` in order), against

    sqlite    `prefect_test_harness()`: the ephemeral SQLite API server, as in the backfill runs;
    postgres  a real `prefect server` on PostgreSQL, started like `make server`
              (`python -m deployments.server`) on a free port with a throwaway database.

Per-task overhead = (wall of K tasks − wall of an empty flow) / K, each the median of a few runs
after one warm-up run.
"""

from __future__ import annotations

import os
import signal
import socket
import subprocess
import sys
import tempfile
import time
from contextlib import contextmanager
from pathlib import Path

import common

ROOT = Path(__file__).resolve().parent.parent


def _measure(tasks: int, reps: int) -> dict:
    from prefect import flow, task
    from prefect.task_runners import ThreadPoolTaskRunner

    @task
    def trivial_window(i: int) -> int:
        return i

    @flow(task_runner=ThreadPoolTaskRunner(max_workers=4))
    def trivial_windows(k: int) -> int:
        futures = [trivial_window.submit(i) for i in range(k)]
        for future in futures:
            future.wait()
        return sum(f.result() for f in futures)

    trivial_windows(4)   # warm-up: first-run registration of the flow and task
    empty = common.median([common.timed(trivial_windows, 0)[0] for _ in range(reps)])
    full = common.median([common.timed(trivial_windows, tasks)[0] for _ in range(reps)])
    return {"tasks": tasks, "empty_flow": empty, "flow": full, "per_task": (full - empty) / tasks}


def overhead(api_url: str | None, tasks: int, reps: int) -> dict:
    """The child-process body: under the test harness when `api_url` is None, else against that server."""
    if api_url:
        os.environ["PREFECT_API_URL"] = api_url
        return _measure(tasks, reps)
    from prefect.testing.utilities import prefect_test_harness

    with prefect_test_harness(server_startup_timeout=120):
        return _measure(tasks, reps)


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


@contextmanager
def postgres_server(database_server: str):
    """A Prefect server on a throwaway PostgreSQL database; yields its API URL, then stops it."""
    import httpx

    port = _free_port()
    api = f"http://127.0.0.1:{port}/api"
    home = tempfile.mkdtemp(prefix="wfm-bench-prefect-")
    env = {k: v for k, v in os.environ.items() if not k.startswith(("PREFECT_", "WFM_"))}
    env.update(PREFECT_HOME=home, DO_NOT_TRACK="1", PREFECT_SERVER_ANALYTICS_ENABLED="false", PREFECT_UI_ENABLED="false",
               PREFECT_SERVER_SERVICES_SCHEDULER_ENABLED="false", PREFECT_SERVER_LOGGING_LEVEL="WARNING")
    with common.throwaway_database(database_server) as db, open(os.path.join(home, "server.log"), "wb") as log:
        server = subprocess.Popen([sys.executable, "-m", "deployments.server", "--host", "127.0.0.1", "--port",
                                   str(port), "--database", db], env=env, cwd=ROOT, stdout=log,
                                  stderr=subprocess.STDOUT, start_new_session=True)
        try:
            deadline = time.monotonic() + 120
            while not _healthy(httpx, api):
                if server.poll() is not None or time.monotonic() > deadline:
                    raise RuntimeError(f"prefect server did not start; see {log.name}")
                time.sleep(0.5)
            yield api
        finally:
            _stop(server)


def _healthy(httpx, api: str) -> bool:
    try:
        return httpx.get(f"{api}/health", timeout=2).status_code == 200
    except httpx.HTTPError:
        return False


def _stop(server: subprocess.Popen) -> None:
    """SIGINT to the server's own process group, then SIGKILL whatever is left of it."""
    if server.poll() is None:
        os.killpg(server.pid, signal.SIGINT)
        try:
            server.wait(timeout=20)
        except subprocess.TimeoutExpired:
            pass
    try:
        os.killpg(server.pid, signal.SIGKILL)
    except ProcessLookupError:
        pass
    server.wait(timeout=10)


def compare(database_server: str, tasks: int, reps: int, server: bool = True) -> dict:
    """Per-task overhead on both API backends (SQLite only unless `server`), each in a child process."""
    out = {"sqlite": common.in_child(overhead, None, tasks, reps)}
    if server:
        with postgres_server(database_server) as api:
            out["postgres"] = common.in_child(overhead, api, tasks, reps)
    return out
