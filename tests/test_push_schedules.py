"""sendSchedule from planned shifts, through the outbox, against the simulated 1C."""

from __future__ import annotations

import datetime as dt
import uuid
from zoneinfo import ZoneInfo

import psycopg
import pytest
from typer.testing import CliRunner

from connectors import onec
from connectors.planning import PLANNED_SHIFTS
from connectors.settings import ONEC, SourceSettings
from connectors.streams import Window, fetch
from engine.landing import warehouse
from engine.push.schedules import schedule_months, shift_hours
from engine.zones import area_timezones
from flows.push import push_schedules, timesheet_days
from wfm.cli import app

pytestmark = pytest.mark.usefixtures("prefect_harness")
UTC = dt.timezone.utc
SINCE = dt.date(2026, 10, 1)
REGULAR, NEW_HIRE, PART_MONTH, DISMISSED = 0, 4, 2, 7     # person indexes of the seed-7 world (see conftest)
H = 3_600_000


def onec_client(sim):
    return SourceSettings(ONEC, sim.onec_url, "basic", username="wfm", password="wfm").client()


def employee(sim, index: int):
    return sim.simulation.onec.roster.employees[index]


def land_employees(sim, database_url: str) -> None:
    """wfm.employees as a sync would land it (straight through the connector, no flow)."""
    with onec_client(sim) as client, psycopg.connect(database_url) as conn:
        window = Window(dt.datetime(2026, 11, 1, tzinfo=UTC), dt.datetime(2026, 12, 1, tzinfo=UTC))
        table = fetch(client, onec.EMPLOYEES, window).table
        warehouse.ensure_table(conn, onec.EMPLOYEES)
        with conn.transaction():
            warehouse.upsert(conn, onec.EMPLOYEES, table, uuid.uuid4(), dt.datetime.now(UTC))


def local(sim, index: int, day: str, hour: float) -> dt.datetime:
    """An instant given as the employee's local date and hour."""
    zone = ZoneInfo(employee(sim, index).person.timezone)
    base = dt.datetime.combine(dt.date.fromisoformat(day), dt.time(), zone)
    return (base + dt.timedelta(hours=hour)).astimezone(UTC)


def plan(database_url: str, rows: list[tuple], replace: bool = False) -> None:
    """Planned shifts (employee, start, end, break minutes) straight into wfm.planned_shifts."""
    with psycopg.connect(database_url) as conn:
        warehouse.ensure_table(conn, PLANNED_SHIFTS)
        with conn.transaction():
            if replace:
                conn.execute("DELETE FROM wfm.planned_shifts")
            for emp, start, end, pause in rows:
                conn.execute("""INSERT INTO wfm.planned_shifts (site, employee_id, shift_start, shift_end,
                                unpaid_break_minutes, source, _run_id, _extracted_at)
                                VALUES ('default', %s, %s, %s, %s, 'test', gen_random_uuid(), now())
                                ON CONFLICT (site, employee_id, shift_start) DO UPDATE SET shift_end = EXCLUDED.shift_end,
                                unpaid_break_minutes = EXCLUDED.unpaid_break_minutes""", (emp, start, end, pause))


def day_shift(sim, index: int, day: str, start: float = 9, hours: float = 8, pause: int = 0) -> tuple:
    return (employee(sim, index).id, local(sim, index, day, start), local(sim, index, day, start + hours), pause)


def outbox_rows(database_url: str, kind: str = "schedule") -> dict[tuple[str, str], tuple]:
    with psycopg.connect(database_url) as conn:
        rows = conn.execute("""SELECT employee_id, period, state, message, updated_at, attempts
                               FROM wfm_meta.push_outbox WHERE kind = %s""", (kind,)).fetchall()
    return {(r[0], r[1]): r[2:] for r in rows}


def schedule_posts(sim) -> int:
    return sum(1 for r in sim.requests() if r["path"].endswith("/sendSchedule"))


def test_break_sits_mid_shift_and_night_is_local():
    moscow = dt.datetime(2018, 8, 1, 19, tzinfo=UTC)                 # 22:00 in Moscow, the contract's example
    assert shift_hours(moscow, moscow + dt.timedelta(hours=11.5), 30, "Europe/Moscow") == (12_600_000, 27_000_000)
    day = dt.datetime(2026, 11, 17, 6, tzinfo=UTC)                    # 09:00-21:00 Moscow, 1 h break
    assert shift_hours(day, day + dt.timedelta(hours=12), 60, "Europe/Moscow") == (11 * H, 0)
    assert shift_hours(day, day + dt.timedelta(hours=12), 60, "Asia/Novosibirsk") == (8 * H, 3 * H)  # 13:00-01:00


def test_area_time_zones_are_configurable(monkeypatch):
    mapping = area_timezones()
    assert mapping["Новосибирск"] == "Asia/Novosibirsk" and "Омск" not in mapping      # no fallback zone
    monkeypatch.setenv("WFM_AREA_TIMEZONES", "Омск=Asia/Omsk, Самара=Europe/Moscow")
    mapping = area_timezones()
    assert mapping["Омск"] == "Asia/Omsk" and mapping["Самара"] == "Europe/Moscow"
    monkeypatch.setenv("WFM_AREA_TIMEZONES", "Омск=Mars/Olympus")
    with pytest.raises(ValueError, match="Mars/Olympus"):
        area_timezones()
    monkeypatch.setenv("WFM_AREA_TIMEZONES", "Омск")
    with pytest.raises(ValueError, match="is not Area=Zone"):
        area_timezones()


def test_new_hire_dismissal_and_regular_months_reach_1c(wfm_env, database_url):
    sim = wfm_env
    land_employees(sim, database_url)
    regular, hire, gone = (employee(sim, i) for i in (REGULAR, NEW_HIRE, DISMISSED))
    assert hire.startwork == dt.date(2026, 11, 12) and gone.finishwork == dt.date(2026, 11, 14)
    night = (regular.id, local(sim, REGULAR, "2026-11-21", 22), local(sim, REGULAR, "2026-11-21", 33.5), 30)
    plan(database_url, [day_shift(sim, REGULAR, "2026-11-17", hours=9, pause=60), night,
                        day_shift(sim, REGULAR, "2026-12-01"),
                        day_shift(sim, NEW_HIRE, "2026-11-10"), day_shift(sim, NEW_HIRE, "2026-11-13"),
                        *(day_shift(sim, DISMISSED, d) for d in ("2026-11-13", "2026-11-14", "2026-11-17")),
                        day_shift(sim, DISMISSED, "2026-12-02")])
    result = push_schedules(SINCE)
    assert result["sent"] == 4
    held = sim.simulation.onec.schedules(regular.id)
    assert sorted(held) == ["2026-11", "2026-12"]
    assert [(s["daily_hours"], s["night_hours"]) for s in held["2026-11"]] == [(8 * H, 0), (12_600_000, 27_000_000)]
    hire_days = [s["date_start"] for s in sim.simulation.onec.schedules(hire.id)["2026-11"]]
    assert hire_days == [local(sim, NEW_HIRE, "2026-11-13", 9).strftime("%Y-%m-%dT%H:%M:%SZ")]   # none before hire
    gone_days = sim.simulation.onec.schedules(gone.id)
    assert list(gone_days) == ["2026-11"] and len(gone_days["2026-11"]) == 2                      # none after dismissal
    states = outbox_rows(database_url)
    assert states[(gone.id, "2026-12")][0] == "skipped" and "dismissed 2026-11-14" in states[(gone.id, "2026-12")][1]
    with onec_client(sim) as client:      # 1C's timesheet now shows the plan; a day without a shift is a day off
        sheet = timesheet_days(client, {(regular.id, "2026-11-21"), (regular.id, "2026-11-18")})
    assert sheet[(regular.id, "2026-11-21")] == {"Я": 3.5, "Н": 7.5}
    assert sheet[(regular.id, "2026-11-18")] == {"В": 0.0}


def test_only_a_changed_month_is_sent_again(wfm_env, database_url):
    sim = wfm_env
    land_employees(sim, database_url)
    regular = employee(sim, REGULAR)
    shifts = [day_shift(sim, REGULAR, d) for d in ("2026-11-17", "2026-11-18", "2026-12-01", "2026-12-02")]
    plan(database_url, shifts)
    push_schedules(SINCE)
    first = outbox_rows(database_url)
    sim.reset_stats()
    assert push_schedules(SINCE) == {"unchanged": 2} and schedule_posts(sim) == 0
    plan(database_url, shifts[:3] + [day_shift(sim, REGULAR, "2026-12-02", start=10, hours=6)], replace=True)
    push_schedules(SINCE)
    assert schedule_posts(sim) == 1
    second = outbox_rows(database_url)
    assert second[(regular.id, "2026-11")] == first[(regular.id, "2026-11")]             # November untouched
    assert second[(regular.id, "2026-12")][0] == "sent" and second[(regular.id, "2026-12")][3] == 2
    december = sim.simulation.onec.schedules(regular.id)["2026-12"]
    assert [s["daily_hours"] for s in december] == [8 * H, 6 * H]


def test_refusals_are_stored_with_1c_message_and_shown(wfm_env, database_url):
    sim = wfm_env
    land_employees(sim, database_url)
    regular, held = employee(sim, REGULAR), employee(sim, PART_MONTH)
    plan(database_url, [day_shift(sim, REGULAR, "2026-10-20"),            # past period (1C's month is November)
                        day_shift(sim, REGULAR, "2028-01-17"),            # calendar of 2028 not loaded
                        day_shift(sim, PART_MONTH, "2026-11-20")])        # part-month schedule held in 1C
    result = push_schedules(SINCE)
    assert result["refused"] == 3 and result.get("sent", 0) == 0
    states = outbox_rows(database_url)
    assert states[(regular.id, "2026-10")][:2] == ("refused",
                                                   "Past period: 2026-10 is before the current month 2026-11")
    assert "production calendar for 2028 is not loaded" in states[(regular.id, "2028-01")][1]
    assert "part-month" in states[(held.id, "2026-11")][1]
    assert push_schedules(SINCE) == {"unchanged": 3}                      # a refusal is not repeated unasked
    output = CliRunner().invoke(app, ["outbox", "--state", "refused"], env={"COLUMNS": "250"}).output
    assert "Past period: 2026-10" in output and "refused" in output and "schedule refused 3" in output


def test_months_before_since_are_not_built(wfm_env, database_url):
    sim = wfm_env
    land_employees(sim, database_url)
    plan(database_url, [day_shift(sim, REGULAR, "2026-09-10"), day_shift(sim, REGULAR, "2026-11-20")])
    with psycopg.connect(database_url) as conn:
        assert [m.month for m in schedule_months(conn, SINCE)] == ["2026-11"]
