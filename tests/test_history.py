"""Complete history: agents who left and groups that were removed are still fetched for the past,
and a roster change in the middle of a backfill re-fetches only the windows that did not land."""

from __future__ import annotations

import datetime as dt

import httpx
import psycopg
import pytest

from connectors import contact_center as cc
from connectors import streams
from connectors.settings import SourceSettings
from flows.sync import sync_stream

from .conftest import SIM_START, _point_at, sim_clock

pytestmark = pytest.mark.usefixtures("prefect_harness")
UTC = dt.timezone.utc
DAYS = 7


@pytest.fixture
def turnover_env(database_url, tmp_path, monkeypatch):
    """A contact center whose staff changes during its week of history."""
    from connectors.simulator import ServerConfig, start_simulator
    from connectors.simulator.world import SimConfig
    from engine.landing.window import close_clients

    config = ServerConfig(sim=SimConfig(seed=5, agents=10, services=2, groups_per_service=2, start=SIM_START,
                                        days=DAYS, departed=3, hired=2, removed_groups=2))
    with start_simulator(config) as running:
        _point_at(running, database_url, tmp_path, monkeypatch)
        yield running
        close_clients()


def midnight(day: dt.date) -> dt.datetime:
    return dt.datetime.combine(day, dt.time(), UTC)


def truth(sim, stream: streams.Stream, ids: list[str], first: dt.date, last: dt.date) -> set[tuple]:
    """The keys the source holds for these ids over the days, asked by id in one window per day."""
    keys: set[tuple] = set()
    with SourceSettings(cc.SYSTEM, sim.cc_url).client() as client:
        for window in streams.windows(stream, midnight(first), midnight(last) + dt.timedelta(days=1), ids):
            keys |= {tuple(r[c] for c in stream.key) for r in streams.fetch(client, stream, window).table.to_pylist()}
    return keys


def landed(database_url: str, stream: streams.Stream, column: str, ids: list[str]) -> set[tuple]:
    with psycopg.connect(database_url) as conn:
        rows = conn.execute(f"SELECT {', '.join(stream.key)} FROM wfm.{stream.name} WHERE {column} = ANY(%s)",
                            (ids,)).fetchall()
    return {tuple(r) for r in rows}


def test_a_backfill_lands_the_history_of_agents_who_left_and_groups_that_were_removed(turnover_env, database_url):
    sim = turnover_env
    roster = httpx.get(f"{sim.url}/_sim/roster").json()
    departed = [a["id"] for a in roster["departed"]]
    removed = [g["id"] for g in roster["removed_groups"]]
    sim.set_clock(sim_clock(days=1))       # the pipeline ran while they were still there
    sync_stream("cc_agents")
    sync_stream("cc_groups")
    sim.set_clock(sim_clock(days=DAYS))    # today: they are gone from /personnel
    personnel = httpx.get(f"{sim.cc_url}/personnel").json()
    listed = {a["id"] for a in personnel["agents"]}
    listed_groups = {g["id"] for s in personnel["services"] for g in s["serviceGroups"]}
    assert not listed & set(departed) and not listed_groups & set(removed)

    last = SIM_START + dt.timedelta(days=DAYS - 1)
    sync_stream("agent_logins", SIM_START, last)
    sync_stream("service_group_intervals", SIM_START, last)
    logins = truth(sim, cc.AGENT_LOGINS, departed, SIM_START, last)
    intervals = truth(sim, cc.SERVICE_GROUP_INTERVALS, removed, SIM_START, last)
    assert logins and intervals
    assert landed(database_url, cc.AGENT_LOGINS, "agent_id", departed) == logins
    assert landed(database_url, cc.SERVICE_GROUP_INTERVALS, "group_id", removed) == intervals
    with psycopg.connect(database_url) as conn:     # the roster is the connection's, by name (not its URL)
        assert conn.execute("SELECT DISTINCT source, kind FROM wfm_meta.source_ids ORDER BY 2").fetchall() == [
            ("default", "agents"), ("default", "groups")]


def test_a_roster_change_mid_backfill_refetches_only_the_windows_that_did_not_land(turnover_env, database_url):
    sim = turnover_env
    hires = httpx.get(f"{sim.url}/_sim/roster").json()["hired"]
    first_hire = min(dt.date.fromisoformat(h["hired_on"]) for h in hires)
    half = first_hire - dt.timedelta(days=1)             # the first half ends before anyone was hired
    last = SIM_START + dt.timedelta(days=DAYS - 1)
    sim.set_clock(sim_clock(day=half, days=0, hour=23))
    first = sync_stream("agent_logins", SIM_START, half)
    assert first["windows_landed"] == (half - SIM_START).days + 1

    sim.set_clock(sim_clock(days=DAYS))                  # meanwhile: new hires, and the roster sync saw them
    sync_stream("cc_agents")
    sim.reset_stats()
    second = sync_stream("agent_logins", SIM_START, last)
    asked = [midnight(dt.date.fromisoformat(r["query"]["startDate"][:10])) for r in sim.requests()
             if r["path"] == "/cc/historic/agentLoginData"]
    assert asked and min(asked) > midnight(half), "a landed window was fetched again"
    assert second["windows_skipped"] == first["windows_landed"]
    assert second["windows_landed"] == (last - half).days
    with psycopg.connect(database_url) as conn:   # the skipped windows did hold a changed id list
        counts = conn.execute("""SELECT run_id = %s, id_count FROM wfm_meta.sync_windows
                                 WHERE window_start = %s""", (second["run_id"], midnight(SIM_START))).fetchall()
    assert dict(counts)[True] > dict(counts)[False]
    hired = [h["id"] for h in hires]
    assert landed(database_url, cc.AGENT_LOGINS, "agent_id", hired) == truth(sim, cc.AGENT_LOGINS, hired,
                                                                              SIM_START, last) != set()
