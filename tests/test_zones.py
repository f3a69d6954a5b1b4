"""Time zones are explicit: an unknown area refuses push-back; the site's working day is a column."""

from __future__ import annotations

import datetime as dt
import uuid

import psycopg
import pyarrow as pa
import pyarrow.dataset as ds
import pytest

from connectors import contact_center as cc
from engine import zones
from engine.landing import lake, ledger, warehouse
from engine.push.deviations import compute
from flows.push import PushFailed, push_schedules

from .test_push_schedules import NEW_HIRE, REGULAR, SINCE, day_shift, employee, land_employees, outbox_rows, plan

pytestmark = pytest.mark.usefixtures("prefect_harness")
UTC = dt.timezone.utc


def set_area(database_url: str, employee_id: str, area: str | None) -> None:
    with psycopg.connect(database_url, autocommit=True) as conn:
        conn.execute("UPDATE wfm.employees SET area = %s WHERE employee_id = %s", (area, employee_id))


def test_an_unknown_area_is_refused_with_the_reason_until_configured(wfm_env, database_url, monkeypatch):
    sim = wfm_env
    land_employees(sim, database_url)
    omsk, regular = employee(sim, NEW_HIRE), employee(sim, REGULAR)
    set_area(database_url, omsk.id, "Омск")
    plan(database_url, [day_shift(sim, NEW_HIRE, "2026-11-20"), day_shift(sim, REGULAR, "2026-11-20")])
    with pytest.raises(PushFailed) as failed:
        push_schedules(SINCE)
    message = str(failed.value)
    assert "\n" not in message and f"employee {omsk.id} 2026-11" in message
    assert "employees.area 'Омск' has no time zone: add it to WFM_AREA_TIMEZONES" in message
    states = outbox_rows(database_url)
    assert states[(omsk.id, "2026-11")][0] == "refused" and "'Омск'" in states[(omsk.id, "2026-11")][1]
    assert states[(regular.id, "2026-11")][0] == "sent"                      # the others are sent
    assert "2026-11" not in sim.simulation.onec.schedules(omsk.id)           # nothing sent for that employee
    with pytest.raises(PushFailed):                                          # still an error, still nothing sent
        push_schedules(SINCE)
    assert "2026-11" not in sim.simulation.onec.schedules(omsk.id)
    monkeypatch.setenv("WFM_AREA_TIMEZONES", f"Омск={omsk.person.timezone}")   # where this person really works
    result = push_schedules(SINCE)
    assert result.get("sent") == 1, (result, outbox_rows(database_url))
    (shift,) = sim.simulation.onec.schedules(omsk.id)["2026-11"]
    assert outbox_rows(database_url)[(omsk.id, "2026-11")][0] == "sent"
    assert shift["date_start"] == day_shift(sim, NEW_HIRE, "2026-11-20")[1].strftime("%Y-%m-%dT%H:%M:%SZ")


def test_an_empty_area_is_refused_too(wfm_env, database_url):
    sim = wfm_env
    land_employees(sim, database_url)
    regular = employee(sim, REGULAR)
    set_area(database_url, regular.id, None)
    plan(database_url, [day_shift(sim, REGULAR, "2026-11-20")])
    with pytest.raises(PushFailed, match="employees.area is empty"):
        push_schedules(SINCE)
    assert outbox_rows(database_url)[(regular.id, "2026-11")][0] == "refused"
    with psycopg.connect(database_url) as conn:                         # and no deviations are guessed for them
        warehouse.ensure_table(conn, cc.AGENT_LOGINS)
        unplaced: dict[str, str] = {}
        from engine.push.deviations import ensure_tables
        ensure_tables(conn)
        conn.execute("""INSERT INTO wfm.agent_employee_map (site, agent_id, employee_id, matched_by, _run_id, _extracted_at)
                        VALUES ('default', 'a1', %s, 'number', gen_random_uuid(), now())""", (regular.id,))
        assert compute(conn, dt.date(2026, 11, 20), dt.date(2026, 11, 20), unplaced) == []
    assert "employees.area is empty" in unplaced[regular.id]


def rows(stream, values: list[dict]) -> pa.Table:
    base = {f.column: None for f in stream.fields}
    return pa.Table.from_pylist([{**base, **v} for v in values], stream.schema)


def test_local_date_is_the_sites_working_day_in_tables_and_the_lake(database_url, tmp_path, monkeypatch):
    lake_path = str(tmp_path / "lake")
    late = dt.datetime(2026, 11, 20, 22, 30, tzinfo=UTC)          # 01:30 on the 21st in Moscow, 05:30 in Omsk
    with psycopg.connect(database_url, autocommit=True) as conn:
        ledger.ensure_meta(conn)
        warehouse.ensure_table(conn, cc.AGENT_LOGINS)
        with conn.transaction():
            warehouse.upsert(conn, cc.AGENT_LOGINS, rows(cc.AGENT_LOGINS, [
                {"agent_id": "1", "login_at": late, "logout_at": late + dt.timedelta(hours=1)},
                {"agent_id": "2", "login_at": late - dt.timedelta(hours=3), "logout_at": late}]),
                uuid.uuid4(), late)
            ledger.mark_partitions(conn, "agent_logins", ["date=2026-11-20"], uuid.uuid4())
        assert conn.execute("SELECT agent_id, local_date FROM wfm.agent_logins ORDER BY 1").fetchall() == [
            ("1", dt.date(2026, 11, 21)), ("2", dt.date(2026, 11, 20))]
        lake.publish(conn, cc.AGENT_LOGINS, lake_path)
    table = ds.dataset(f"{lake_path}/agent_logins", partitioning="hive").to_table()
    assert sorted(zip(table["agent_id"].to_pylist(), table["local_date"].to_pylist())) == [
        ("1", dt.date(2026, 11, 21)), ("2", dt.date(2026, 11, 20))]
    monkeypatch.setenv("WFM_SITE_TIMEZONE", "Asia/Omsk")              # the site's zone is configuration
    with psycopg.connect(database_url, autocommit=True) as conn:
        warehouse.ensure_table(conn, cc.AGENT_LOGINS)
        assert conn.execute("SELECT local_date FROM wfm.agent_logins WHERE agent_id = '2'").fetchone()[0] == \
            dt.date(2026, 11, 21)
        assert ledger.pending_partitions(conn, "agent_logins")[0][0] == "date=2026-11-20"   # lake rebuilt next


def test_an_existing_table_gets_local_date_in_place(database_url, tmp_path):
    """A warehouse from before the column: every row stays, gains its local date, and is re-published."""
    lake_path = str(tmp_path / "lake")
    start = dt.datetime(2026, 11, 20, 21, 15, tzinfo=UTC)
    with psycopg.connect(database_url, autocommit=True) as conn:
        ledger.ensure_meta(conn)
        warehouse.ensure_table(conn, cc.AGENT_LOGINS)
        conn.execute("ALTER TABLE wfm.agent_logins DROP COLUMN local_date")      # as an older release left it
        with conn.transaction():
            warehouse.upsert(conn, cc.AGENT_LOGINS, rows(cc.AGENT_LOGINS, [
                {"agent_id": str(n), "login_at": start + dt.timedelta(hours=n)} for n in range(5)]), uuid.uuid4(), start)
        before = conn.execute("SELECT agent_id, login_at, _run_id FROM wfm.agent_logins ORDER BY 1").fetchall()
        warehouse.ensure_table(conn, cc.AGENT_LOGINS)
        after = conn.execute("SELECT agent_id, login_at, _run_id, local_date FROM wfm.agent_logins ORDER BY 1"
                             ).fetchall()
        assert [r[:3] for r in after] == before
        assert [r[3] for r in after] == [dt.date(2026, 11, 21)] * 5           # 00:15.. Moscow the next day
        assert [p for p, _ in ledger.pending_partitions(conn, "agent_logins")] == ["date=2026-11-20",
                                                                                  "date=2026-11-21"]
        assert len(lake.publish(conn, cc.AGENT_LOGINS, lake_path)) == 2
    assert zones.has_local_date(cc.AGENT_LOGINS) and not zones.has_local_date(cc.CC_AGENTS)
