"""Source protection: no more requests in flight to one source host than its limit allows."""

from __future__ import annotations

import datetime as dt
import os
import subprocess
import sys
import threading
from pathlib import Path

import pytest
from prefect import flow
from prefect.client.orchestration import get_client
from prefect.client.schemas.actions import GlobalConcurrencyLimitUpdate
from prefect.settings import PREFECT_API_URL

from engine.landing import limits
from flows.sync import sync_stream

from .conftest import SIM_START

pytestmark = pytest.mark.usefixtures("prefect_harness")
LAST = SIM_START + dt.timedelta(days=3)
SLOW = "timeout=1.0,slow_seconds=0.15"   # every answer takes 150 ms, so concurrent requests overlap


def test_a_limit_is_named_by_host_and_port_only():
    assert limits.limit_name("https://user:secret@cc.example.ru/api/v2") == "source:cc.example.ru:443"
    assert limits.limit_name("http://10.0.0.5:8080/zup/hs/wfm") == "source:10.0.0.5:8080"
    assert limits.limit_name("http://zup.local/base", "source-rate") == "source-rate:zup.local:80"


def test_the_settings_must_be_positive_integers(monkeypatch):
    assert limits.max_in_flight() == limits.DEFAULT_IN_FLIGHT and limits.max_per_minute() is None
    monkeypatch.setenv("WFM_SOURCE_MAX_IN_FLIGHT", "3")
    assert limits.max_in_flight() == 3
    for bad in ("0", "-1", "two"):
        monkeypatch.setenv("WFM_SOURCE_MAX_IN_FLIGHT", bad)
        with pytest.raises(ValueError, match="WFM_SOURCE_MAX_IN_FLIGHT"):
            limits.max_in_flight()


def run_in_parallel(*streams: str) -> None:
    """Backfill several streams at once, each flow with its own pool of four window threads."""
    errors: list[BaseException] = []

    def backfill(stream: str) -> None:
        try:
            sync_stream(stream, SIM_START, LAST)
        except BaseException as exc:  # surfaced below, in the test's thread
            errors.append(exc)

    threads = [threading.Thread(target=backfill, args=(s,)) for s in streams]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(timeout=120)
    assert not errors, errors


@pytest.mark.parametrize(("limit", "at_least"), [(2, 2), (6, 3)])
def test_parallel_backfills_never_exceed_the_limit_at_the_source(wfm_env, monkeypatch, limit, at_least):
    monkeypatch.setenv("WFM_SOURCE_MAX_IN_FLIGHT", str(limit))
    wfm_env.set_faults(SLOW)
    wfm_env.reset_stats()
    run_in_parallel("agent_logins", "agent_calls")
    stats = wfm_env.stats()
    assert stats["inFlight"] == 0 and sum(stats["requests"].values()) > limit
    # two flows × four threads want up to eight requests at once: the limit caps the high-water
    # mark, and a looser limit lets it climb higher (so the measurement does see overlap)
    assert at_least <= stats["maxInFlight"] <= limit


@pytest.fixture
def shared_server(monkeypatch):
    """Treat the test harness's API as a server shared with other processes."""
    monkeypatch.setattr(limits, "_started_here", lambda url: False)
    monkeypatch.setattr(limits, "_shared", {})


def test_a_missing_server_limit_is_created_and_an_existing_one_rules(shared_server, monkeypatch):
    monkeypatch.setenv("WFM_SOURCE_MAX_IN_FLIGHT", "3")
    name = "source:cc.test:8080"

    @flow
    def slots_of_the_limit() -> int | None:
        return limits._shared_limit(name, limits.max_in_flight())

    assert slots_of_the_limit() == 3
    with get_client(sync_client=True) as client:
        assert client.read_global_concurrency_limit_by_name(name).limit == 3
        client.update_global_concurrency_limit(name, GlobalConcurrencyLimitUpdate(limit=5))
    limits._shared.clear()
    assert slots_of_the_limit() == 5   # the operator's value, not the variable


def test_a_window_holds_a_server_slot_while_its_request_runs(shared_server):
    name = "source:cc.test:9090"

    @flow
    def hold_a_slot() -> tuple[int, int]:
        with limits.source_slot("http://cc.test:9090/cc"):
            with get_client(sync_client=True) as client:
                during = client.read_global_concurrency_limit_by_name(name).active_slots
        with get_client(sync_client=True) as client:
            return during, client.read_global_concurrency_limit_by_name(name).active_slots

    assert hold_a_slot() == (1, 0)


def test_a_rate_limit_decays_its_slots_per_minute(shared_server, monkeypatch):
    monkeypatch.setenv("WFM_SOURCE_MAX_PER_MINUTE", "120")

    @flow
    def one_window() -> None:
        with limits.source_slot("http://zup.test:8081/base"):
            pass

    one_window()
    with get_client(sync_client=True) as client:
        rate = client.read_global_concurrency_limit_by_name("source-rate:zup.test:8081")
    assert (rate.limit, rate.slot_decay_per_second) == (120, 2.0)


def server_limits() -> list[str]:
    with get_client(sync_client=True) as client:
        return sorted(limit.name for limit in client.read_global_concurrency_limits(limit=200, offset=0))


def test_an_api_this_process_started_for_itself_keeps_the_limit_in_process(shared_server, monkeypatch):
    monkeypatch.setattr(limits, "_own_apis", set())
    name = "source:own.test:7070"

    @flow
    def one_window() -> None:
        with limits.source_slot("http://own.test:7070/cc"):
            pass

    limits.own_api(PREFECT_API_URL.value())
    one_window()
    assert name not in server_limits()    # the semaphore alone: no limit asked for on the API
    limits._own_apis.clear()
    one_window()
    assert name in server_limits()        # a server others share: the fleet-wide limit


LIMITER = """
import os, sys
from wfm import prefect_api
prefect_api.start()
prefect_api.ready()
from prefect import flow
from prefect.client.orchestration import get_client
from engine.landing import limits

@flow
def one_window():
    with limits.source_slot("http://cli.test:6060/cc"):
        pass

one_window()
with get_client(sync_client=True) as client:
    names = [limit.name for limit in client.read_global_concurrency_limits(limit=200, offset=0)]
print(limits.serves_this_process(os.environ["PREFECT_API_URL"]), "source:cli.test:6060" in names)
"""


@pytest.mark.slow
@pytest.mark.parametrize("api", ["the CLI's own", "a shared server"])
def test_the_cli_keeps_the_limit_in_process_only_on_its_own_api(tmp_path, api):
    """A real process as `wfm sync` starts one: with no PREFECT_API_URL it starts its own API and
    takes no slot there; pointed at a server (here the harness's, standing for `make server`) it
    takes the server's limit."""
    env = {k: v for k, v in os.environ.items() if not k.startswith("PREFECT_")}
    env.update(PREFECT_HOME=str(tmp_path / "prefect"), DO_NOT_TRACK="1")
    if api == "a shared server":
        env["PREFECT_API_URL"] = PREFECT_API_URL.value()
    done = subprocess.run([sys.executable, "-c", LIMITER], env=env, capture_output=True, text=True, timeout=240,
                          cwd=Path(__file__).resolve().parent.parent)
    assert done.returncode == 0, done.stderr
    assert done.stdout.split()[-2:] == (["True", "False"] if api == "the CLI's own" else ["False", "True"])


def test_without_a_server_the_rate_is_kept_over_a_sliding_minute(monkeypatch):
    clock = [1000.0]
    slept: list[float] = []
    monkeypatch.setattr(limits.time, "monotonic", lambda: clock[0])
    monkeypatch.setattr(limits.time, "sleep", lambda s: (slept.append(s), clock.__setitem__(0, clock[0] + s)))
    for _ in range(3):
        limits._local_rate("source-rate:local.test:1", 2)
        clock[0] += 1
    assert slept == [58.0]   # the third request waits until the first leaves the minute
