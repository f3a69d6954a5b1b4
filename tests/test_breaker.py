"""Outages that don't stretch the schedules: a circuit breaker per source, 1C's deterministic 500s,
and maintenance windows that defer runs and pushes."""

from __future__ import annotations

import datetime as dt
import time

import psycopg
import pytest

from blocks import load_settings
from connectors.contact_center import AGENT_LOGINS
from connectors.errors import SourceRejected, SourceUnavailable
from connectors.http import RetryPolicy
from connectors.settings import ONEC, Maintenance, SourceSettings
from flows.online import sync_online
from flows.push import push_schedules
from flows.sync import SyncFailed, sync, sync_stream
from wfm.check import run_checks

from .conftest import SIM_START
from .test_history import landed, truth
from .test_push_schedules import REGULAR, SINCE, day_shift, land_employees, plan, schedule_posts

pytestmark = pytest.mark.usefixtures("prefect_harness")
UTC = dt.timezone.utc
LAST = SIM_START + dt.timedelta(days=6)


def test_a_hanging_source_defers_the_rest_of_the_run_and_the_next_run_lands_them_once(wfm_env, database_url,
                                                                                       monkeypatch):
    monkeypatch.setenv("WFM_HTTP_TIMEOUT", "0.5")
    monkeypatch.setenv("WFM_HTTP_ATTEMPTS", "2")
    monkeypatch.setenv("WFM_BREAKER_FAILURES", "2")
    wfm_env.set_faults("hang=1,path=/historic/agentLoginData")    # accepts, never answers
    started = time.monotonic()
    with pytest.raises(SyncFailed, match=r"deferred"):
        sync_stream("agent_logins", SIM_START, LAST)
    elapsed = time.monotonic() - started
    hung = sum(1 for r in wfm_env.requests() if r["fault"] == "hang")
    with psycopg.connect(database_url) as conn:
        first = dict(conn.execute("SELECT status, count(*) FROM wfm_meta.sync_windows GROUP BY 1").fetchall())
    assert elapsed < 30, f"the run took {elapsed:.0f} s"
    assert first.get("deferred", 0) >= 1 and "landed" not in first
    # two attempts each for the 4 windows in flight and those a thread took up before the second
    # give-up opened the breaker; every later window and retry was not asked at all
    assert hung <= 2 * (4 + 2)

    wfm_env.set_faults("")
    again = sync_stream("agent_logins", SIM_START, LAST)
    assert again["status"] == "completed" and again["windows_landed"] == 7 and again["windows_skipped"] == 0
    with psycopg.connect(database_url) as conn:
        landings = conn.execute("""SELECT window_start, ids_hash, count(*) FROM wfm_meta.sync_windows
                                   WHERE status = 'landed' GROUP BY 1, 2""").fetchall()
    assert len(landings) == 7 and {n for *_, n in landings} == {1}
    agents = [str(1000 + i) for i in range(12)]
    assert landed(database_url, AGENT_LOGINS, "agent_id", agents) == truth(wfm_env, AGENT_LOGINS, agents, SIM_START,
                                                                            LAST)


def test_the_streams_of_one_sync_share_the_breaker_of_a_source(wfm_env, database_url, monkeypatch):
    monkeypatch.setenv("WFM_HTTP_TIMEOUT", "0.5")
    monkeypatch.setenv("WFM_HTTP_ATTEMPTS", "2")
    monkeypatch.setenv("WFM_BREAKER_FAILURES", "2")
    wfm_env.set_faults("hang=1,path=/historic/")
    with pytest.raises(SyncFailed, match="agent_logins"):
        sync(["agent_logins", "agent_calls"], SIM_START, LAST)
    assert not [r for r in wfm_env.requests() if r["path"] == "/cc/historic/agentCallsData"]
    with psycopg.connect(database_url) as conn:
        calls = conn.execute("""SELECT status, windows_deferred FROM wfm_meta.sync_runs
                                WHERE stream = 'agent_calls'""").fetchone()
    assert calls == ("deferred", 7)      # not asked at all: the source was found dead by the stream before


def onec_settings(sim, policy: RetryPolicy) -> SourceSettings:
    return SourceSettings(ONEC, sim.onec_url, "basic", username="wfm", password="wfm", retry=policy)


def test_a_deterministic_1c_500_is_not_retried_but_a_transient_one_is(simulator):
    path = f"/agents/{SIM_START}/{SIM_START}"
    policy = RetryPolicy(attempts=6, initial_wait=0.01, max_wait=0.02, jitter=0, repeat_is_final=True)
    simulator.set_faults("error=1")                 # 1C's own code fails the same way every time
    with onec_settings(simulator, policy).client() as client:
        with pytest.raises(SourceRejected, match="the same error twice in a row"):
            client.request_json("GET", path)
    assert simulator.stats()["requests"] == {f"/zup/hs/wfm{path}": 2}
    simulator.reset_stats()
    simulator.set_faults("500=1")                   # lock conflicts, interrupted sessions, empty bodies
    with onec_settings(simulator, policy).client() as client:
        with pytest.raises(SourceUnavailable, match="gave up after 6 attempts"):
            client.request_json("GET", path)
    assert simulator.stats()["requests"] == {f"/zup/hs/wfm{path}": 6}


def around_now(minutes: int = 60) -> str:
    now = dt.datetime.now(UTC)
    return f"{now - dt.timedelta(minutes=minutes):%H:%M}-{now + dt.timedelta(minutes=minutes):%H:%M} UTC"


def test_maintenance_windows_parse_and_cross_midnight():
    nightly = Maintenance.parse("23:30-01:00 Europe/Moscow, 12:00-12:30")
    assert nightly.active(dt.datetime(2026, 11, 10, 21, 0, tzinfo=UTC)) == "23:30-01:00 Europe/Moscow"  # 00:00 MSK
    assert nightly.active(dt.datetime(2026, 11, 10, 12, 10, tzinfo=UTC)) == "12:00-12:30 UTC"
    assert nightly.active(dt.datetime(2026, 11, 10, 19, 0, tzinfo=UTC)) is None
    for bad, says in (("1:00-4:00 Mars/Olympus", "unknown time zone"), ("25:00-26:00", "impossible time"),
                      ("nightly", "HH:MM-HH:MM")):
        with pytest.raises(ValueError, match=says):
            Maintenance.parse(bad, "WFM_ONEC_MAINTENANCE")


def test_a_maintenance_window_defers_runs_and_pushes_instead_of_failing_them(wfm_env, database_url, monkeypatch):
    sim = wfm_env
    land_employees(sim, database_url)
    plan(database_url, [day_shift(sim, REGULAR, "2026-11-17")])
    sim.reset_stats()
    monkeypatch.setenv("WFM_ONEC_MAINTENANCE", around_now())
    run = sync_stream("employees")
    assert run["status"] == "deferred" and run["windows_deferred"] == 1 and "maintenance window" in run["notice"]
    assert push_schedules(SINCE) == {"deferred": 1}
    assert not [r for r in sim.requests() if r["path"].startswith("/zup/")]     # 1C was not asked at all
    check = run_checks(load_settings(), timeout=5)[1]                           # a person's check still asks
    assert check.status == "OK" and "maintenance window" in check.detail, check
    monkeypatch.delenv("WFM_ONEC_MAINTENANCE")
    assert sync_stream("employees")["status"] == "completed"
    assert push_schedules(SINCE)["sent"] == 1 and schedule_posts(sim) == 1


def test_the_online_snapshot_skips_the_contact_centers_maintenance_window(wfm_env, monkeypatch):
    monkeypatch.setenv("WFM_CC_MAINTENANCE", around_now())
    wfm_env.reset_stats()
    skipped = sync_online()["default"]
    assert skipped["status"] == "skipped" and "maintenance window" in skipped["skipped"], skipped
    assert not [r for r in wfm_env.requests() if r["path"].startswith("/cc/")]
