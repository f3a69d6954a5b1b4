"""Deviations: plan against fact in 15-minute slots, and sendFactWorkTime exactly once."""

from __future__ import annotations

import datetime as dt

import psycopg
import pytest
from typer.testing import CliRunner

from connectors import contact_center as cc
from connectors import onec
from engine.derived import AGENT_EMPLOYEE_MAP
from engine.landing import warehouse
from engine.push import outbox
from engine.push.deviations import build_deviations, classify, confirm
from flows.push import push_deviations, push_schedules, timesheet_days
from wfm.cli import app

from .test_push_schedules import REGULAR, SINCE, day_shift, employee, land_employees, local, onec_client, plan

pytestmark = pytest.mark.usefixtures("prefect_harness")
UTC = dt.timezone.utc
H = 3_600_000
FIRST, LAST = dt.date(2026, 11, 17), dt.date(2026, 11, 22)
# (day, planned hours, actual presence as (local start hour, hours)) -> what 1C will book
SCENARIOS = {
    "2026-11-17": (8, None, [("НН", 8.0)]),                  # plan 8 / fact 0
    "2026-11-18": (8, (9, 4), [("НН", 4.0)]),                # plan 8 / fact 4
    "2026-11-19": (8, (9, 10), [("С", 2.0)]),                # plan 8 / fact 10
    "2026-11-20": (8, (9, 8), []),                           # as planned: no deviation
    "2026-11-21": (0, (9, 8), [("РВ", 8.0)]),                # plan 0 / fact 8 by day
    "2026-11-22": (0, (22, 4), [("РВН", 4.0)]),              # plan 0 / fact 4 at night
}


def test_the_contract_table():
    assert classify(0, 0, 8 * H, 0) == [("РВ", 8.0)]
    assert classify(0, 0, 0, 4 * H) == [("РВН", 4.0)]
    assert classify(8 * H, 0, 0, 0) == [("НН", 8.0)]
    assert classify(8 * H, 0, 4 * H, 0) == [("НН", 4.0)]
    assert classify(8 * H, 0, 10 * H, 0) == [("С", 2.0)]
    assert classify(6 * H, 2 * H, 6 * H, 2 * H) == []
    assert classify(0, 0, 5 * H, 3 * H) == [("РВ", 5.0), ("РВН", 3.0)]


def land_logins(database_url: str, agent_id: str, employee_id: str, sessions: list[tuple[dt.datetime, dt.datetime]]):
    with psycopg.connect(database_url) as conn:
        for stream in (cc.AGENT_LOGINS, AGENT_EMPLOYEE_MAP):
            warehouse.ensure_table(conn, stream)
        with conn.transaction():
            conn.execute("""INSERT INTO wfm.agent_employee_map (site, agent_id, employee_id, matched_by, _run_id,
                            _extracted_at) VALUES ('default', %s, %s, 'tab_n', gen_random_uuid(), now())
                            ON CONFLICT DO NOTHING""",
                         (agent_id, employee_id))
            for start, end in sessions:
                conn.execute("""INSERT INTO wfm.agent_logins (source, agent_id, login_at, logout_at, duration_ms,
                                _run_id, _extracted_at) VALUES ('default', %s, %s, %s, %s, gen_random_uuid(), now())""",
                             (agent_id, start, end, int((end - start).total_seconds() * 1000)))


def prepare(sim, database_url: str, days: dict = SCENARIOS) -> str:
    """Employees, the plan in 1C, and the logins of the regular employee for the given days."""
    sim.set_clock(dt.datetime(2026, 11, 24, 12, tzinfo=UTC))
    land_employees(sim, database_url)
    person = employee(sim, REGULAR)
    plan(database_url, [day_shift(sim, REGULAR, d, hours=h) for d, (h, _, _) in days.items() if h])
    assert push_schedules(SINCE)["sent"] == 1
    sessions = [(local(sim, REGULAR, d, fact[0]), local(sim, REGULAR, d, fact[0] + fact[1]))
                for d, (_, fact, _) in days.items() if fact]
    land_logins(database_url, person.person.agent_id, person.id, sessions)
    return person.id


def build(database_url: str, tmp_path) -> dict:
    return build_deviations(database_url, str(tmp_path / "lake"), FIRST, LAST)


def booked(sim, employee_id: str) -> dict[str, list[tuple[str, float]]]:
    documents = sim.simulation.onec.documents(employee_id)
    return {d["date"]: [(r["timetype"], r["hours"]) for r in d["rows"]] for d in documents}


def test_each_row_of_the_contract_table_reaches_1c_once(wfm_env, database_url, tmp_path):
    sim = wfm_env
    employee_id = prepare(sim, database_url)
    plan(database_url, [day_shift(sim, 6, "2026-11-18")])           # planned, but has no agent account mapped
    assert build(database_url, tmp_path)["deviations"] == 5
    with psycopg.connect(database_url) as conn:
        rows = dict(conn.execute("SELECT work_date::text, time_types || ' ' || deviation_hours FROM wfm.deviations"))
    expected = {d: " ".join(f"{c} {h:g}" for c, h in want) for d, (_, _, want) in SCENARIOS.items() if want}
    assert rows == expected
    with psycopg.connect(database_url, autocommit=True) as conn:
        assert confirm(conn, "Иванов И.И.", last=dt.date(2026, 11, 21)) == 4
    result = push_deviations()
    assert result["sent"] == 4 and "2026-11-22" not in booked(sim, employee_id)     # unconfirmed: not sent
    cli = CliRunner().invoke(app, ["deviations", "confirm", employee_id, "2026-11-22", "--by", "Петров П.П."])
    assert cli.exit_code == 0, cli.output
    assert push_deviations()["sent"] == 1
    assert booked(sim, employee_id) == {d: e for d, (_, _, e) in SCENARIOS.items() if e}
    assert {d["initiator_name"] for d in sim.simulation.onec.documents(employee_id)} == {"Иванов И.И.", "Петров П.П."}
    build(database_url, tmp_path)                                  # rebuild and resend change nothing in 1C
    assert push_deviations() == {} and len(sim.simulation.onec.documents(employee_id)) == 5
    shown = CliRunner().invoke(app, ["deviations"], env={"COLUMNS": "250"}).output
    assert "РВН 4" in shown and "sent" in shown


def test_a_deviation_waits_for_its_schedule_in_1c(wfm_env, database_url, tmp_path):
    sim = wfm_env
    employee_id = prepare(sim, database_url, {"2026-11-19": SCENARIOS["2026-11-19"]})
    with psycopg.connect(database_url) as conn:
        conn.execute("UPDATE wfm_meta.push_outbox SET state = 'refused', sent_hash = NULL")   # 1C holds no plan of ours
    build(database_url, tmp_path)
    with psycopg.connect(database_url, autocommit=True) as conn:
        confirm(conn, "wfm")
    assert push_deviations() == {"waiting_for_schedule": 1} and not sim.simulation.onec.documents(employee_id)
    with psycopg.connect(database_url) as conn:     # logins landed only up to 19 Nov 06:00: the 19th is not built
        conn.execute("""INSERT INTO wfm_meta.watermarks (stream, source, value)
                        VALUES ('agent_logins', 'default', '2026-11-19T06:00Z')""")
    assert build(database_url, tmp_path)["through"] == "2026-11-18"


def test_an_answer_lost_after_1c_stored_it_makes_one_document(wfm_env, database_url, tmp_path):
    sim = wfm_env
    employee_id = prepare(sim, database_url, {"2026-11-19": SCENARIOS["2026-11-19"]})
    build(database_url, tmp_path)
    with psycopg.connect(database_url, autocommit=True) as conn:
        confirm(conn, "wfm")
    sim.set_faults("drop_after=1,drop_after_path=/sendFactWorkTime")
    result = push_deviations(settle_after_seconds=0)
    assert result == {"sending": 1, "resolved_sent": 1}
    assert [r["fault"] for r in sim.requests() if r["path"].endswith("/sendFactWorkTime")] == ["drop_after"]
    sim.set_faults("")
    assert push_deviations(settle_after_seconds=0) == {}
    assert booked(sim, employee_id) == {"2026-11-19": [("С", 2.0)]}
    with psycopg.connect(database_url) as conn:
        state, message = conn.execute("SELECT state, message FROM wfm_meta.push_outbox WHERE kind = 'fact'").fetchone()
        trail = [r[0] for r in conn.execute("SELECT to_state FROM wfm_meta.push_log l JOIN wfm_meta.push_outbox o "
                                            "ON o.id = l.outbox_id WHERE o.kind = 'fact' ORDER BY l.id")]
    assert state == "sent" and message.startswith("stored by 1C (the answer was lost): timesheet С +2")
    assert trail == ["pending", "sending", "sent"]


def claim_one(sim, database_url: str) -> tuple[outbox.Entry, object]:
    """What a run does up to the HTTP call: offer, read the timesheet, commit `sending`."""
    from engine.push.deviations import confirmed

    client = onec_client(sim)
    with psycopg.connect(database_url, autocommit=True) as conn:
        outbox.ensure_outbox(conn)
        (item,) = confirmed(conn)
        outbox.offer(conn, "fact", item["employee_id"], item["work_date"].isoformat(), item["payload"],
                     item["content_hash"])
        (entry,) = outbox.entries(conn, "fact", ("pending",))
        before = timesheet_days(client, {(entry.employee_id, entry.period)})[(entry.employee_id, entry.period)]
        assert outbox.claim(conn, entry, before)
    return entry, client


@pytest.mark.parametrize("sent_before_crash", [True, False])
def test_a_crash_mid_send_is_resolved_from_the_timesheet(wfm_env, database_url, tmp_path, sent_before_crash):
    sim = wfm_env
    employee_id = prepare(sim, database_url, {"2026-11-18": SCENARIOS["2026-11-18"]})
    build(database_url, tmp_path)
    with psycopg.connect(database_url, autocommit=True) as conn:
        confirm(conn, "wfm")
    entry, client = claim_one(sim, database_url)
    with client:
        if sent_before_crash:           # 1C got it; the process died before recording the answer
            assert onec.send_fact_work_time(client, entry.payload).accepted
    assert push_deviations() == {}      # too fresh to judge: neither resolved nor sent again
    assert len(sim.simulation.onec.documents(employee_id)) == int(sent_before_crash)
    result = push_deviations(settle_after_seconds=0)
    assert result == ({"resolved_sent": 1} if sent_before_crash else {"resolved_pending": 1, "sent": 1})
    assert booked(sim, employee_id) == {"2026-11-18": [("НН", 4.0)]}
