"""What every chaos scenario stands on: a PostgreSQL server, scratch databases, the simulator,
the `WFM_*` environment pointing at them, and the Prefect API a child process should use."""

from __future__ import annotations

import datetime as dt
import os
import tempfile
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

from connectors.simulator import ServerConfig, SimConfig, start_simulator
from engine import database

UTC = dt.timezone.utc
SIM_START = dt.date(2026, 11, 9)     # the simulated fortnight of the test suite
SIM_NOW = dt.datetime(2026, 11, 16, 12, tzinfo=UTC)
ONEC_USER = ("wfm", "wfm")


def postgres_server() -> str:
    """`WFM_TEST_DATABASE_URL`, else an embedded PostgreSQL started for this process."""
    url = os.environ.get("WFM_TEST_DATABASE_URL")
    if url:
        return url
    return database.embedded_database_url(Path(tempfile.mkdtemp(prefix="wfm-chaos-pg-")) / "pg")


fresh_database = database.scratch_database


@contextmanager
def environment(values: dict[str, str | None]) -> Iterator[None]:
    """Set (or, for None, unset) variables for the block, restoring what was there."""
    saved = {name: os.environ.get(name) for name in values}
    try:
        for name, value in values.items():
            _put(name, value)
        yield
    finally:
        for name, value in saved.items():
            _put(name, value)


def _put(name: str, value: str | None) -> None:
    if value is None:
        os.environ.pop(name, None)
    else:
        os.environ[name] = value


@contextmanager
def simulator(agents: int = 12, days: int = 7, faults: str = "", seed: int = 7, fault_seed: int = 0,
              start: dt.date = SIM_START, clock: dt.datetime | None = SIM_NOW, **config) -> Iterator:
    """A seeded simulated contact center and 1C on loopback, its clock after its history."""
    world = SimConfig(seed=seed, agents=agents, services=2, groups_per_service=2, start=start, days=days)
    with start_simulator(ServerConfig(sim=world, faults=faults, fault_seed=fault_seed, **config)) as running:
        if clock is not None:
            running.set_clock(clock)
        yield running


def wfm_variables(sim, database_url: str, lake: Path | str, **extra: str) -> dict[str, str | None]:
    """The `WFM_*` variables of a run against `sim`, one database and one lake."""
    return {"WFM_CC_URL": sim.cc_url, "WFM_ONEC_URL": sim.onec_url, "WFM_ONEC_USERNAME": ONEC_USER[0],
            "WFM_ONEC_PASSWORD": ONEC_USER[1], "WFM_DATABASE_URL": database_url, "WFM_LAKE_PATH": str(lake),
            "WFM_USE_BLOCKS": None, **extra}


@contextmanager
def pointed_at(sim, database_url: str, lake: Path | str, **extra: str) -> Iterator[None]:
    """Run the block with the `WFM_*` environment of `wfm_variables`, HTTP clients closed after."""
    from engine.landing.window import close_clients

    with environment(wfm_variables(sim, database_url, lake, **extra)):
        close_clients()
        try:
            yield
        finally:
            close_clients()


@contextmanager
def prefect_api() -> Iterator[None]:
    """A Prefect API for flow runs: the one already configured, else a temporary test server."""
    from prefect.settings import PREFECT_API_URL

    if PREFECT_API_URL.value():
        yield
        return
    from prefect.testing.utilities import prefect_test_harness

    with prefect_test_harness(server_startup_timeout=240):
        yield


def prefect_api_url() -> str | None:
    """The URL child processes should report their flow runs to."""
    from prefect.settings import PREFECT_API_URL

    return PREFECT_API_URL.value()
