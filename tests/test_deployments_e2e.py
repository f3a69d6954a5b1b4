"""End to end on loopback: a Prefect server on PostgreSQL (`make server`'s path), the work pool,
`prefect deploy --all` from deployments/, two process workers, and runs of two deployments that
land simulator data in the warehouse and the lake, with at most two requests in flight.

Everything started here is stopped at the end, workers before the server; a process that does
not stop in time has its whole process group killed.
"""

from __future__ import annotations

import datetime as dt
import os
import signal
import socket
import subprocess
import sys
import time
import uuid
from collections.abc import Callable
from pathlib import Path

import httpx
import psycopg
import pytest

from deployments.catalog import WORK_POOL
from engine.database import with_database

from .conftest import SIM_START

pytestmark = pytest.mark.slow
ROOT = Path(__file__).resolve().parent.parent
BIN = Path(sys.executable).parent
FIRST, LAST = SIM_START, SIM_START + dt.timedelta(days=2)
WORKERS = ("e2e-worker-1", "e2e-worker-2")
IN_FLIGHT = 2


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def wait_until(check: Callable[[], object], timeout: float, what: str, logs: list[Path] = ()) -> object:
    """Poll `check` until it returns something truthy; fail naming `what` (with log tails) after `timeout`."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        try:
            found = check()
        except Exception:  # not up yet
            found = None
        if found:
            return found
        time.sleep(0.25)
    tails = "\n".join(f"--- {p.name}\n{p.read_text(errors='replace')[-3000:]}" for p in logs if p.exists())
    pytest.fail(f"{what}: not within {timeout:.0f} s\n{tails}")


class Processes:
    """Background processes, each in its own process group, stopped tier by tier (highest first)."""

    def __init__(self, logs: Path):
        self.logs = logs
        self.started: list[tuple[int, subprocess.Popen]] = []

    def start(self, name: str, command: list[str], env: dict[str, str], tier: int = 0) -> Path:
        log = self.logs / f"{name}.log"
        with log.open("wb") as out:
            process = subprocess.Popen(command, env=env, cwd=ROOT, stdout=out, stderr=subprocess.STDOUT,
                                       start_new_session=True)
        self.started.append((tier, process))
        return log

    def stop_all(self) -> None:
        for tier in sorted({t for t, _ in self.started}, reverse=True):   # workers, then the server
            group = [p for t, p in self.started if t == tier]
            for process in group:
                if process.poll() is None:
                    os.killpg(process.pid, signal.SIGINT)
            for process in group:
                try:
                    process.wait(timeout=20)
                except subprocess.TimeoutExpired:
                    pass
                try:
                    os.killpg(process.pid, signal.SIGKILL)   # the stubborn, and children left behind
                except ProcessLookupError:
                    pass
                process.wait(timeout=10)


@pytest.fixture
def processes(tmp_path):
    running = Processes(tmp_path)
    yield running
    running.stop_all()


@pytest.fixture
def prefect_database(postgres_server):
    url = with_database(postgres_server, f"prefect_e2e_{uuid.uuid4().hex[:10]}")
    yield url
    with psycopg.connect(postgres_server, autocommit=True) as admin:
        admin.execute(f'DROP DATABASE IF EXISTS "{url.rsplit("/", 1)[1]}" WITH (FORCE)')


def prefect_env(api: str, home: Path, **extra: str) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith(("PREFECT_", "WFM_"))}
    env.update(PREFECT_API_URL=api, PREFECT_HOME=str(home), DO_NOT_TRACK="1",
               PREFECT_SERVER_ANALYTICS_ENABLED="false", **extra)
    return env


def run_env(sim, database_url: str, tmp_path: Path) -> dict[str, str]:
    """What the flow runs need: the job variables' `env`."""
    return {"WFM_CC_URL": sim.cc_url, "WFM_ONEC_URL": sim.onec_url, "WFM_ONEC_USERNAME": "wfm",
            "WFM_ONEC_PASSWORD": "wfm", "WFM_DATABASE_URL": database_url,
            "WFM_LAKE_PATH": str(tmp_path / "lake"), "WFM_DATA_DIR": str(tmp_path / "data"),
            "WFM_SOURCE_MAX_IN_FLIGHT": str(IN_FLIGHT)}


def test_deployments_run_on_workers_and_land_data(simulator, database_url, prefect_database, processes, tmp_path):
    from prefect.client.orchestration import get_client
    from prefect.deployments import run_deployment
    from prefect.settings import PREFECT_API_URL, temporary_settings

    port = free_port()
    api = f"http://127.0.0.1:{port}/api"
    env = prefect_env(api, tmp_path / "prefect-home", PREFECT_UI_ENABLED="false",
                      PREFECT_SERVER_SERVICES_SCHEDULER_ENABLED="false", PREFECT_WORKER_QUERY_SECONDS="1",
                      PREFECT_SERVER_LOGGING_LEVEL="WARNING")
    server_log = processes.start("server", [sys.executable, "-m", "deployments.server", "--host", "127.0.0.1",
                                            "--port", str(port), "--database", prefect_database], env)
    wait_until(lambda: httpx.get(f"{api}/health", timeout=2).status_code == 200, 60, "server health", [server_log])
    cli = str(BIN / "prefect")
    subprocess.run([cli, "work-pool", "create", WORK_POOL, "--type", "process"], env=env, check=True,
                   capture_output=True, timeout=60)
    worker_logs = [processes.start(name, [cli, "worker", "start", "--pool", WORK_POOL, "--type", "process",
                                          "--name", name], env, tier=1) for name in WORKERS]
    deployed = subprocess.run([cli, "--no-prompt", "deploy", "--all"], cwd=ROOT / "deployments", env=env,
                              capture_output=True, text=True, timeout=180)
    assert deployed.returncode == 0, deployed.stdout[-3000:] + deployed.stderr[-3000:]

    simulator.set_faults("timeout=1.0,slow_seconds=0.1")   # answers take 100 ms: concurrent requests overlap
    simulator.reset_stats()
    with temporary_settings({PREFECT_API_URL: api}), get_client(sync_client=True) as client:
        wait_until(lambda: {w.name for w in client.read_workers_for_work_pool(WORK_POOL)
                            if w.status == "ONLINE"} >= set(WORKERS), 60, "both workers online", worker_logs)
        job = {"env": run_env(simulator, database_url, tmp_path)}
        runs = [run_deployment("sync-cc-personnel/daily", job_variables=job, timeout=0),
                run_deployment("sync/ad-hoc", parameters={"streams": ["agent_logins"], "start": FIRST, "end": LAST},
                               job_variables=job, timeout=0),
                run_deployment("sync/ad-hoc", parameters={"streams": ["agent_calls"], "start": FIRST, "end": LAST},
                               job_variables=job, timeout=0)]

        def finished():
            states = [client.read_flow_run(run.id).state for run in runs]
            return states if all(s.is_final() for s in states) else None

        states = wait_until(finished, 120, "flow runs finished", worker_logs)
        assert [s.type.value for s in states] == ["COMPLETED"] * 3, [s.message for s in states]
        limit = client.read_global_concurrency_limit_by_name(f"source:127.0.0.1:{simulator.port}")

    worker_output = "".join(log.read_text(errors="replace") for log in worker_logs)
    assert all(str(run.id) in worker_output for run in runs), "a run did not go through our workers"
    with psycopg.connect(database_url) as conn:
        agents = conn.execute("SELECT count(*) FROM wfm.cc_agents").fetchone()[0]
        landed = dict(conn.execute("""SELECT stream, sum(windows_landed) FROM wfm_meta.sync_runs
                                      WHERE status = 'completed' GROUP BY stream""").fetchall())
        logins = conn.execute("SELECT count(*) FROM wfm.agent_logins").fetchone()[0]
    assert agents == 12 and logins > 0
    assert landed["agent_logins"] == landed["agent_calls"] == 3   # three days, one batch of agents
    assert list((tmp_path / "lake" / "agent_logins").glob("source=*/date=*/part-0.parquet"))
    # the runs ran as separate processes on two workers; the server-side limit held them to two
    assert limit.limit == IN_FLIGHT and limit.active_slots == 0
    assert 1 <= simulator.stats()["maxInFlight"] <= IN_FLIGHT
