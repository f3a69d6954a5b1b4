"""Acceptance of the push-back per site: two simulated sites whose employee ids collide — each site's
schedules and confirmed deviations reach its own 1C base only, once; a rerun sends nothing; one 1C
down fails that site only, named at the end, and its rows go on the next run."""

from __future__ import annotations

import dataclasses
import datetime as dt
import uuid
from pathlib import Path
from zoneinfo import ZoneInfo

import psycopg
import pytest

from connectors import contact_center as cc
from connectors import onec
from connectors.planning import PLANNED_SHIFTS
from connectors.settings import ONEC, SourceSettings
from connectors.simulator import ServerConfig, start_simulator
from connectors.simulator.fleet import fleet_configs, sites_settings, start_fleet
from connectors.simulator.world import SimConfig
from connectors.streams import Window, fetch
from engine.derived import AGENT_EMPLOYEE_MAP
from engine.landing import warehouse

from .conftest import SIM_START, sim_clock

pytestmark = [pytest.mark.usefixtures("prefect_harness"), pytest.mark.slow]
UTC = dt.timezone.utc
SINCE = dt.date(2026, 11, 1)
SITES = {"north": "zup-north", "south": "zup-south"}
REGULAR = 0          # a person present in the whole fortnight of the seed-7 worlds


@pytest.fixture
def fleet(monkeypatch, tmp_path: Path, database_url: str):
    """Two sites (`north`, `south`) of colliding ids, the settings file naming both, WFM_* set."""
    from engine.landing.window import close_clients

    base = ServerConfig(sim=SimConfig(seed=7, agents=8, services=1, groups_per_service=2, start=SIM_START, days=7))
    configs = fleet_configs(list(SITES), base)
    with start_fleet(configs) as running:
        for sim in running.values():
            sim.set_clock(sim_clock())
        path = tmp_path / "wfm.toml"
        path.write_text(sites_settings(running, "ZUP_PASSWORD"), encoding="utf-8")
        for name, value in {"ZUP_PASSWORD": "wfm", "WFM_CONFIG": str(path), "WFM_DATABASE_URL": database_url,
                            "WFM_LAKE_PATH": str(tmp_path / "lake")}.items():
            monkeypatch.setenv(name, value)
        yield running, configs
        close_clients()


def onec_client(sim):
    return SourceSettings(ONEC, sim.onec_url, "basic", username="wfm", password="wfm").client()


def person(sim, index: int = REGULAR):
    return sim.simulation.onec.roster.employees[index]


def land_employees(sims, database_url: str) -> None:
    """Each 1C base's wfm.employees, owned by its connection, as a sync would land it."""
    with psycopg.connect(database_url) as conn:
        warehouse.ensure_table(conn, onec.EMPLOYEES)
        for site, connection in SITES.items():
            with onec_client(sims[site]) as client:
                window = Window(dt.datetime(2026, 11, 1, tzinfo=UTC), dt.datetime(2026, 12, 1, tzinfo=UTC))
                table = fetch(client, onec.EMPLOYEES, window).table
            with conn.transaction():
                warehouse.upsert(conn, onec.EMPLOYEES, table, uuid.uuid4(), dt.datetime.now(UTC), connection)


def shift(sim, day: str, start: float, hours: float) -> tuple[str, dt.datetime, dt.datetime]:
    """The regular person's shift, given in their local time."""
    zone = ZoneInfo(person(sim).person.timezone)
    base = dt.datetime.combine(dt.date.fromisoformat(day), dt.time(), zone)
    return (person(sim).id, (base + dt.timedelta(hours=start)).astimezone(UTC),
            (base + dt.timedelta(hours=start + hours)).astimezone(UTC))


def plan(database_url: str, site: str, rows: list[tuple[str, dt.datetime, dt.datetime]]) -> None:
    with psycopg.connect(database_url) as conn:
        warehouse.ensure_table(conn, PLANNED_SHIFTS)
        with conn.transaction():
            for employee_id, start, end in rows:
                conn.execute("""INSERT INTO wfm.planned_shifts (site, employee_id, shift_start, shift_end,
                                unpaid_break_minutes, source, _run_id, _extracted_at)
                                VALUES (%s, %s, %s, %s, 0, 'test', gen_random_uuid(), now())""",
                             (site, employee_id, start, end))


def held_starts(sim) -> list[str]:
    """The shift starts the site's 1C holds for the regular person in November."""
    return [s["date_start"] for s in sim.simulation.onec.schedules(person(sim).id).get("2026-11", [])]


def posts(sim, path: str) -> int:
    return sum(1 for r in sim.requests() if r.get("method") == "POST" and str(r.get("path", "")).endswith(path))


def iso(moment: dt.datetime) -> str:
    return moment.strftime("%Y-%m-%dT%H:%M:%SZ")


def outbox(database_url: str, kind: str = "schedule") -> dict[tuple[str, str, str], str]:
    with psycopg.connect(database_url) as conn:
        return {(s, e, p): state for s, e, p, state in conn.execute(
            "SELECT site, employee_id, period, state FROM wfm_meta.push_outbox WHERE kind = %s", (kind,))}


def test_each_site_s_schedules_reach_its_own_1c_once(fleet, database_url):
    from flows.push import push_schedules

    sims, _ = fleet
    north, south = sims["north"], sims["south"]
    assert person(north).id == person(south).id        # the ids collide: one GUID, two people, two bases
    land_employees(sims, database_url)
    plan(database_url, "north", [shift(north, "2026-11-17", 9, 8)])
    plan(database_url, "south", [shift(south, "2026-11-18", 7, 6), shift(south, "2026-11-19", 7, 6)])
    result = push_schedules(SINCE)
    assert result["sent"] == 2, result
    assert held_starts(north) == [iso(shift(north, "2026-11-17", 9, 8)[1])]
    assert held_starts(south) == [iso(shift(south, d, 7, 6)[1]) for d in ("2026-11-18", "2026-11-19")]
    assert posts(north, "/sendSchedule") == posts(south, "/sendSchedule") == 1
    employee_id = person(north).id
    assert outbox(database_url) == {("north", employee_id, "2026-11"): "sent", ("south", employee_id, "2026-11"): "sent"}
    again = push_schedules(SINCE)                        # nothing changed: nothing sent
    assert "sent" not in again and again["unchanged"] == 2, again
    assert posts(north, "/sendSchedule") == posts(south, "/sendSchedule") == 1
    only_south = push_schedules(SINCE, sites=["south"])
    assert only_south == {"unchanged": 1}
    from typer.testing import CliRunner

    from wfm.cli import app
    shown = CliRunner().invoke(app, ["outbox", "--site", "north"], env={"COLUMNS": "200"})
    assert shown.exit_code == 0 and "north" in shown.output and "south" not in shown.output, shown.output
    assert "totals: schedule sent 1" in shown.output, shown.output
    with pytest.raises(ValueError, match="no site named 'east'"):
        push_schedules(SINCE, sites=["east"])


def test_one_1c_down_fails_its_site_only_and_the_next_run_sends_it(fleet, database_url):
    from engine.landing.window import close_clients
    from flows.push import PushFailed, push_schedules

    sims, configs = fleet
    north, south = sims["north"], sims["south"]
    land_employees(sims, database_url)
    plan(database_url, "north", [shift(north, "2026-11-17", 9, 8)])
    plan(database_url, "south", [shift(south, "2026-11-18", 7, 6)])
    south_port = south.port
    south.stop()
    with pytest.raises(PushFailed) as failed:
        push_schedules(SINCE)
    message = str(failed.value)
    assert "south:" in message and "north" not in message and "1 of 2 site(s)" in message, message
    assert held_starts(north) == [iso(shift(north, "2026-11-17", 9, 8)[1])]
    employee_id = person(north).id
    assert outbox(database_url) == {("north", employee_id, "2026-11"): "sent",
                                    ("south", employee_id, "2026-11"): "pending"}
    close_clients()
    with start_simulator(dataclasses.replace(configs["south"], port=south_port)) as back:
        back.set_clock(sim_clock())
        assert push_schedules(SINCE) == {"sent": 1, "unchanged": 2}
        assert held_starts(back) == [iso(shift(back, "2026-11-18", 7, 6)[1])]
        assert posts(north, "/sendSchedule") == 1 and posts(back, "/sendSchedule") == 1   # north: not again
    assert set(outbox(database_url).values()) == {"sent"}


def land_presence(database_url: str, site: str, sessions: list[tuple[dt.datetime, dt.datetime]], employee_id: str,
                  agent_id: str = "1000") -> None:
    """A site's agent mapped to its employee, and the agent's logins at the site's contact center."""
    with psycopg.connect(database_url) as conn:
        for stream in (cc.AGENT_LOGINS, AGENT_EMPLOYEE_MAP):
            warehouse.ensure_table(conn, stream)
        with conn.transaction():
            conn.execute("""INSERT INTO wfm.agent_employee_map (site, agent_id, employee_id, matched_by, _run_id,
                            _extracted_at) VALUES (%s, %s, %s, 'tab_n', gen_random_uuid(), now())""",
                         (site, agent_id, employee_id))
            for start, end in sessions:
                conn.execute("""INSERT INTO wfm.agent_logins (source, agent_id, login_at, logout_at, duration_ms,
                                _run_id, _extracted_at) VALUES (%s, %s, %s, %s, %s, gen_random_uuid(), now())""",
                             (f"cc-{site}", agent_id, start, end, int((end - start).total_seconds() * 1000)))


def test_deviations_stay_inside_their_pairing_and_reach_their_own_1c_once(fleet, database_url, tmp_path):
    from engine.push.deviations import build_deviations, confirm
    from engine.settings import resolve_settings
    from flows.push import push_deviations, push_schedules

    sims, _ = fleet
    north, south = sims["north"], sims["south"]
    employee_id = person(north).id
    land_employees(sims, database_url)
    north_day, south_day = shift(north, "2026-11-17", 9, 8), shift(south, "2026-11-17", 9, 8)
    plan(database_url, "north", [north_day])
    plan(database_url, "south", [south_day])
    # the same agent id at both contact centers: north's worked 4 of 8 hours, south's all 8 and 2 more
    land_presence(database_url, "north", [(north_day[1], north_day[1] + dt.timedelta(hours=4))], employee_id)
    land_presence(database_url, "south", [(south_day[1], south_day[2] + dt.timedelta(hours=2))], employee_id)
    build_deviations(database_url, str(tmp_path / "lake"), dt.date(2026, 11, 17), dt.date(2026, 11, 17),
                     resolve_settings().pairings())
    with psycopg.connect(database_url) as conn:
        found = dict(conn.execute("SELECT site, time_types || ' ' || deviation_hours FROM wfm.deviations"))
        assert found == {"north": "НН 4", "south": "С 2"}
        with pytest.raises(ValueError, match="in sites north, south; give --site"):
            confirm(conn, "Иванов И.И.", employee_id, dt.date(2026, 11, 17))
        assert confirm(conn, "Иванов И.И.", employee_id, dt.date(2026, 11, 17), site="north") == 1
        assert confirm(conn, "Петров П.П.") == 1
    push_schedules(SINCE)
    sent = push_deviations(settle_after_seconds=0)
    assert sent["sent"] == 2, sent
    assert [d["employee_id"] for d in north.simulation.onec.documents()] == [employee_id]
    assert [d["employee_id"] for d in south.simulation.onec.documents()] == [employee_id]
    assert posts(north, "/sendFactWorkTime") == posts(south, "/sendFactWorkTime") == 1
    assert set(outbox(database_url, "fact")) == {("north", employee_id, "2026-11-17"),
                                                ("south", employee_id, "2026-11-17")}
    assert "sent" not in push_deviations(settle_after_seconds=0)      # once: a rerun sends nothing
    assert posts(north, "/sendFactWorkTime") == posts(south, "/sendFactWorkTime") == 1
