"""The 1C:ZUP simulator, called directly through `OneCSystem.handle` (no HTTP server needed)."""

from __future__ import annotations

import datetime as dt
import threading
from typing import Any

import orjson
import pytest

from connectors.simulator.onec import OneCSystem, calendar_ru
from connectors.simulator.onec.data import Employee, add_months, month_end
from connectors.simulator.world import SimConfig, World

D = dt.date
START = D(2024, 3, 4)                         # the simulated period: 4-11 March 2024
NOW = dt.datetime(2024, 3, 5, 9, 0, tzinfo=dt.timezone.utc)
HOUR = 3_600_000
WORLD = World(SimConfig(seed=11, start=START, days=8))


def make(variants: frozenset[str] = frozenset(), **kwargs: Any) -> OneCSystem:
    return OneCSystem(WORLD, lambda: NOW, variants, **kwargs)


def call(system: OneCSystem, method: str, path: str, payload: object = None) -> tuple[int, Any]:
    response = system.handle(method, path, {}, b"" if payload is None else orjson.dumps(payload))
    if response.status == 200:
        return 200, orjson.loads(response.body)
    return response.status, response.body.decode()


def steady_employee(system: OneCSystem, timezone: str = "Europe/Moscow") -> Employee:
    """An employee in post all of March 2024, with no vacation or sick leave that month."""
    march = [D(2024, 3, n) for n in range(1, 32)]
    return next(e for e in system.roster.employees
                if e.person.timezone == timezone and e.finishwork is None and e.startwork < D(2024, 1, 1)
                and e.id not in system.part_month_employees()
                and not any(system.roster.absence(e, day) for day in march))


def moscow(day: int, hour: int, minute: int = 0) -> str:
    """A Moscow local time of March 2024 written in UTC."""
    return (dt.datetime(2024, 3, day, hour, minute) - dt.timedelta(hours=3)).strftime("%Y-%m-%dT%H:%M:%SZ")


def schedule(agent_id: str, shifts: list[tuple[str, float, float]], month: str = "2024-03") -> dict[str, Any]:
    last = month_end(D.fromisoformat(f"{month}-01"))
    return {"agentId": agent_id, "period1": f"{month}-01T00:00:00Z", "period2": f"{last}T00:00:00Z",
            "shift": [{"date_start": s, "daily_hours": int(d * HOUR), "night_hours": int(n * HOUR)}
                      for s, d, n in shifts]}


def fact(agent_id: str, start: str, hours: float) -> dict[str, Any]:
    begin = dt.datetime.fromisoformat(start.replace("Z", "+00:00"))
    slots = [{"start": (begin + dt.timedelta(minutes=15 * n)).strftime("%Y-%m-%dT%H:%M:%SZ"), "time": 900_000}
             for n in range(int(hours * 4))]
    return {"agentId": agent_id, "initiator_name": "Ivanov I.I.", "date_start": start, "loginfo": slots}


def timesheet(system: OneCSystem, agent_id: str, first: int, last: int) -> dict[str, Any]:
    body = {"date_start": f"2024-03-{first:02d}T00:00:00Z", "date_end": f"2024-03-{last:02d}T00:00:00Z",
            "AR_agents": [{"agentId": agent_id}]}
    status, answer = call(system, "POST", "/getTimetypeInfo", body)
    assert status == 200
    return answer[0]


def rows_on(entry: dict[str, Any], day: int) -> dict[str, float]:
    stamp = moscow(day, 0)
    return {r["timetype"]: r["hours"] for r in entry["AR_date"] if r["date"] == stamp}


# ---- GET /agents ---------------------------------------------------------------------------------

def test_agents_answer_shape() -> None:
    system = make()
    status, answer = call(system, "GET", "/agents/2024-03-01/2024-04-30")
    assert status == 200 and isinstance(answer, list) and len(answer) == 1
    departments, agents = answer[0]["AR_departments"], answer[0]["AR_agents"]
    roots = {d["departmentId"] for d in departments if d["parentDepartmentId"] == ""}
    children = [d for d in departments if d["parentDepartmentId"]]
    assert len(roots) == len({p.site for p in WORLD.employees})
    assert all(c["parentDepartmentId"] in roots for c in children)
    assert all(2 <= sum(c["parentDepartmentId"] == r for c in children) <= 3 for r in roots)
    site_of = {d.id: d.site for d in system.roster.departments}
    people = {p.employee_id: p for p in WORLD.employees}
    mandatory = {"agentId", "tabN", "lastname", "firstname", "secondname", "startwork", "positionId",
                 "position", "departmentId", "normWeek", "normWeekChangeDate"}
    for agent in agents:
        person = people[agent["agentId"]]
        assert mandatory <= agent.keys()
        assert (agent["tabN"], agent["Login"], agent["area"]) == (person.tab_n, person.login, person.site)
        assert agent["departmentId"] not in roots and site_of[agent["departmentId"]] == person.site
        assert {agent["rate"], agent["normWeek"]} in ({1, 40}, {1, 36}, {0.75, 30}, {0.5, 20})
        for balance in agent["AR_vacation"]:
            assert "2024-03-01" <= balance["date"] <= "2024-04-30"
            assert round(balance["vacation"], 2) == balance["vacation"]
    assert any(D.fromisoformat(a["startwork"]) >= START for a in agents)      # hired in the period


def test_dismissed_employees_stay_one_month_after_finishwork() -> None:
    system = make()
    dismissed = [e for e in system.roster.employees if e.finishwork]
    for start in (D(2023, 9, 1), START, D(2024, 6, 1)):
        _, answer = call(system, "GET", f"/agents/{start}/{start + dt.timedelta(days=30)}")
        listed = {a["agentId"]: a for a in answer[0]["AR_agents"]}
        for e in dismissed:
            assert (e.id in listed) == (add_months(e.finishwork, 1) >= start)   # type: ignore[arg-type]
            if e.id in listed:
                assert listed[e.id]["finishwork"] == e.finishwork.isoformat()  # type: ignore[union-attr]
    _, answer = call(system, "GET", f"/agents/{START}/{START}")
    listed = {a["agentId"] for a in answer[0]["AR_agents"]}
    assert any(e.id in listed for e in dismissed) and any(e.id not in listed for e in dismissed)


@pytest.mark.parametrize(("method", "path", "body"), [
    ("GET", "/agents/2024-13-01/2024-03-31", "Invalid date"), ("GET", "/agents/2024-03-31/2024-03-01", "before"),
    ("GET", "/unknown", ""), ("POST", "/agents/2024-03-01/2024-03-31", ""), ("GET", "/getNormHours", "")])
def test_only_200_or_500(method: str, path: str, body: str) -> None:
    status, text = call(make(), method, path)
    assert status == 500 and body in text and (text == "") == (body == "")


# ---- variants ------------------------------------------------------------------------------------

def test_variant_parent_department_underscore() -> None:
    _, answer = call(make(frozenset({"parent_department_underscore"})), "GET", "/agents/2024-03-01/2024-03-31")
    assert all("parent_departmentId" in d and "parentDepartmentId" not in d for d in answer[0]["AR_departments"])


def test_variant_agent_id_caps_in_every_answer() -> None:
    system = make(frozenset({"agent_id_caps"}))
    agent_id = steady_employee(system).id
    _, agents = call(system, "GET", "/agents/2024-03-01/2024-03-31")
    _, norms = call(system, "POST", "/getNormHours", {"startDate": "2024-03-01", "endDate": "2024-03-31",
                    "calculationMode": "month", "AR_agents": [{"agentId": agent_id, "AR_norms": []}]})
    entry = timesheet(system, agent_id, 1, 3)
    for item in agents[0]["AR_agents"] + norms + [entry]:
        assert "agentID" in item and "agentId" not in item


def test_variants_numbers_as_strings_and_decimal_comma() -> None:
    system = make(frozenset({"numbers_as_strings"}))
    _, answer = call(system, "GET", "/agents/2024-03-01/2024-03-31")
    agent = answer[0]["AR_agents"][0]
    assert isinstance(agent["rate"], str) and isinstance(agent["normWeek"], str)
    assert all(isinstance(v["vacation"], str) for v in agent["AR_vacation"])
    entry = timesheet(system, steady_employee(system).id, 1, 20)
    assert all(isinstance(r["hours"], str) for r in entry["AR_date"])
    assert all(isinstance(entry[k], str) for k in ("half1_days", "half1_hours", "half2_days", "half2_hours"))

    _, answer = call(make(frozenset({"decimal_comma"})), "GET", "/agents/2024-03-01/2024-03-31")
    part_time = [a for a in answer[0]["AR_agents"] if a["rate"] != "1"]
    assert part_time and all(a["rate"] in ("0,5", "0,75") for a in part_time)


def test_variant_result_bool() -> None:
    system = make(frozenset({"result_bool"}))
    agent_id = steady_employee(system).id
    _, ok = call(system, "POST", "/sendSchedule", schedule(agent_id, [(moscow(11, 9), 8, 0)]))
    _, refused = call(system, "POST", "/sendSchedule", schedule(agent_id, []))
    assert ok["result"] is True and refused["result"] is False
    _, default = call(make(), "POST", "/sendSchedule", schedule(agent_id, []))
    assert default["result"] == "false"


# ---- POST /getNormHours --------------------------------------------------------------------------

@pytest.mark.parametrize(("mode", "slices"), [("month", 12), ("quarter", 4), ("year", 1)])
def test_norm_hours_match_the_calendar(mode: str, slices: int) -> None:
    system = make()
    employee = steady_employee(system)
    norms = [{"normWeek": 40, "changeDate": "2024-03-01"}, {"normWeek": "36", "changeDate": "2024-07-01"}]
    _, rows = call(system, "POST", "/getNormHours", {"startDate": "2024-01-01", "endDate": "2024-12-31",
                   "calculationMode": mode, "AR_agents": [{"agentId": employee.id, "AR_norms": norms}]})
    assert len(rows) == slices
    for row in rows:
        expected = calendar_ru.norm_hours(D.fromisoformat(row["startDate"]), D.fromisoformat(row["endDate"]),
                                          [(D(2024, 3, 1), 40), (D(2024, 7, 1), 36)])
        assert row["agentId"] == employee.id and row["normHours"] == expected
    assert rows[0]["startDate"] == "2024-01-01" and rows[-1]["endDate"] == "2024-12-31"


def test_norm_hours_reference_clipping_and_errors() -> None:
    system = make()
    request = {"startDate": "2018-01-01", "endDate": "2018-12-31", "calculationMode": "year",
               "AR_agents": [{"agentId": "unknown", "AR_norms": [{"normWeek": 36, "changeDate": "2018-01-01"}]}]}
    assert call(system, "POST", "/getNormHours", request)[1][0]["normHours"] == 1772.4
    hired = next(e for e in system.roster.employees if e.startwork >= START)
    request = {"startDate": "2024-03-01", "endDate": "2024-05-15", "calculationMode": "month",
               "AR_agents": [{"agentId": hired.id, "AR_norms": [{"normWeek": 40, "changeDate": "2024-01-01"}]}]}
    _, rows = call(system, "POST", "/getNormHours", request)
    assert [r["endDate"] for r in rows] == ["2024-03-31", "2024-04-30", "2024-05-15"]
    assert rows[0]["normHours"] == calendar_ru.norm_hours(hired.startwork, D(2024, 3, 31), [(D(2024, 1, 1), 40)])
    assert call(make(unloaded_years=frozenset({2024})), "POST", "/getNormHours", request)[0] == 500
    assert call(make(frozenset({"next_year_calendar_missing"})), "POST", "/getNormHours",
                {**request, "endDate": "2025-01-31"})[1] == "The production calendar for 2025 is not loaded"
    assert system.handle("POST", "/getNormHours", {}, b"{not json").status == 500
    assert call(system, "POST", "/getTimetypeInfo", {"date_start": "2024-03-01", "date_end": "2024-03-02",
                                                     "AR_agents": ["not an object"]})[0] == 500


# ---- POST /getTimetypeInfo -----------------------------------------------------------------------

@pytest.mark.parametrize(("timezone", "stamp"), [("Europe/Moscow", "2024-03-03T21:00:00Z"),
                                                 ("Asia/Novosibirsk", "2024-03-03T17:00:00Z")])
def test_timesheet_dates_are_local_midnights_in_utc(timezone: str, stamp: str) -> None:
    system = make()
    entry = timesheet(system, steady_employee(system, timezone).id, 4, 10)
    assert entry["AR_date"][0]["date"] == stamp
    assert len({r["date"] for r in entry["AR_date"]}) == 7


def test_timesheet_summaries_agree_with_rows_and_do_not_depend_on_the_range() -> None:
    system = make()
    ids = [e.id for e in system.roster.employees if e.startwork < D(2024, 1, 1)]
    _, answer = call(system, "POST", "/getTimetypeInfo", {"date_start": "2024-01-01T00:00:00Z",
                     "date_end": "2024-03-31T00:00:00Z", "AR_agents": [{"agentId": i} for i in ids]})
    codes = {r["timetype"] for entry in answer for r in entry["AR_date"]}
    assert {"Я", "Н", "В", "ОТ", "Б", "С", "НН"} <= codes
    for entry in answer:
        worked = [r for r in entry["AR_date"] if r["timetype"] in ("Я", "Н", "С") and r["hours"] > 0]
        halves = {1: [r for r in worked if _local_day(r["date"]) <= 15],
                  2: [r for r in worked if _local_day(r["date"]) > 15]}
        for n, rows in halves.items():
            assert entry[f"half{n}_days"] == len({r["date"] for r in rows})
            assert entry[f"half{n}_hours"] == pytest.approx(sum(r["hours"] for r in rows))
        for summary in entry["AR_N"]:
            days = {r["date"] for r in entry["AR_date"] if r["timetype"] == summary["timetype_N"]}
            assert summary["hours_N"].split("(")[0] == str(len(days))
    agent_id = steady_employee(system).id
    stamps = {moscow(day, 0) for day in (10, 11, 12)}
    whole = next(entry for entry in answer if entry["agentId"] == agent_id)
    assert timesheet(system, agent_id, 10, 12)["AR_date"] == [r for r in whole["AR_date"] if r["date"] in stamps]


def _local_day(stamp: str) -> int:
    """The day of month of a local midnight written in UTC (any Russian time zone is UTC+2..+12)."""
    return (dt.datetime.fromisoformat(stamp.replace("Z", "+00:00")) + dt.timedelta(hours=12)).day


# ---- POST /sendSchedule --------------------------------------------------------------------------

def test_send_schedule_refusals() -> None:
    system = make()
    agent_id = steady_employee(system).id
    part_month = next(iter(system.part_month_employees()))
    cases = [
        (schedule(agent_id, [("2024-02-12T06:00:00Z", 8, 0)], "2024-02"), "Past period"),
        (schedule(agent_id, []), "No shifts"),
        (schedule(part_month, [(moscow(11, 9), 8, 0)]), "part-month"),
        (schedule("no-such-employee", [(moscow(11, 9), 8, 0)]), "not found"),
    ]
    for request, reason in cases:
        status, answer = call(system, "POST", "/sendSchedule", request)
        assert status == 200 and answer["result"] == "false" and reason in answer["message"]
    unloaded = make(frozenset({"next_year_calendar_missing"}))
    answer = call(unloaded, "POST", "/sendSchedule", schedule(agent_id, [("2025-01-10T06:00:00Z", 8, 0)], "2025-01"))[1]
    assert answer == {"result": "false", "message": "The production calendar for 2025 is not loaded"}
    assert system.schedules(agent_id) == {} and unloaded.schedules(agent_id) == {}
    assert system.handle("POST", "/sendSchedule", {}, b"[").status == 500


def test_send_schedule_stores_and_replaces_a_month() -> None:
    system = make()
    agent_id = steady_employee(system).id
    first = schedule(agent_id, [(moscow(11, 9), 8, 0), (moscow(12, 9), 8, 0)])
    _, answer = call(system, "POST", "/sendSchedule", first)
    assert answer["result"] == "true" and answer["message"].startswith("Individual schedules have been created")
    call(system, "POST", "/sendSchedule", first)                        # idempotent
    assert [s["date_start"] for s in system.schedules(agent_id)["2024-03"]] == [moscow(11, 9), moscow(12, 9)]
    call(system, "POST", "/sendSchedule", schedule(agent_id, [(moscow(13, 22), 3.5, 7.5)]))
    assert system.schedules(agent_id) == {"2024-03": [
        {"date_start": moscow(13, 22), "daily_hours": int(3.5 * HOUR), "night_hours": int(7.5 * HOUR)}]}


def test_timesheet_shows_the_stored_plan() -> None:
    system = make()
    agent_id = steady_employee(system).id
    call(system, "POST", "/sendSchedule", schedule(agent_id, [(moscow(11, 9), 8, 0), (moscow(13, 22), 3.5, 7.5)]))
    entry = timesheet(system, agent_id, 11, 14)
    assert [rows_on(entry, d) for d in (11, 12, 13, 14)] == [{"Я": 8}, {"В": 0}, {"Я": 3.5, "Н": 7.5}, {"В": 0}]


# ---- POST /sendFactWorkTime ----------------------------------------------------------------------

@pytest.mark.parametrize(("day", "start", "hours", "doc", "rows"), [
    (12, (12, 9), 8, "Work on a day off", {"РВ": 8}),
    (12, (12, 22), 4, "Work on a day off", {"РВН": 4}),
    (11, (11, 9), 0, "Absence", {"НН": 8}),
    (11, (11, 9), 4, "Absence", {"НН": 4, "Я": 4}),
    (11, (11, 9), 10, "Overtime work", {"С": 2, "Я": 8}),
])
def test_fact_work_time_documents(day: int, start: tuple[int, int], hours: float, doc: str,
                                  rows: dict[str, float]) -> None:
    system = make()
    agent_id = steady_employee(system).id
    call(system, "POST", "/sendSchedule", schedule(agent_id, [(moscow(11, 9), 8, 0)]))   # plan 8 on 11, 0 on 12
    assert call(system, "POST", "/sendFactWorkTime", fact(agent_id, moscow(*start), hours)) == \
        (200, {"result": True, "doc": doc})
    [document] = system.documents(agent_id)
    assert document["doc"] == doc and document["date"] == f"2024-03-{day}"
    assert rows_on(timesheet(system, agent_id, day, day), day) == rows


def test_fact_work_time_without_a_deviation_or_invalid() -> None:
    system = make()
    agent_id = steady_employee(system).id
    call(system, "POST", "/sendSchedule", schedule(agent_id, [(moscow(11, 9), 8, 0)]))
    too_long = fact(agent_id, moscow(11, 9), 9)
    too_long["loginfo"][0]["time"] = 900_001
    for request in (fact(agent_id, moscow(11, 9), 8), too_long, fact("no-such-employee", moscow(11, 9), 9)):
        assert call(system, "POST", "/sendFactWorkTime", request) == (200, {"result": False, "doc": None})
    assert system.documents() == []


def test_sending_the_same_fact_twice_creates_two_documents() -> None:
    system = make()
    agent_id = steady_employee(system).id
    call(system, "POST", "/sendSchedule", schedule(agent_id, [(moscow(11, 9), 8, 0)]))
    for _ in range(2):
        call(system, "POST", "/sendFactWorkTime", fact(agent_id, moscow(11, 9), 10))
    assert [d["doc"] for d in system.documents(agent_id)] == ["Overtime work", "Overtime work"]
    assert rows_on(timesheet(system, agent_id, 11, 11), 11) == {"Я": 8, "С": 4}


def test_fact_without_a_sent_plan_uses_the_seeded_schedule() -> None:
    system = make()
    employee = steady_employee(system)
    planned = system.roster.default_day(employee, D(2024, 3, 11))
    hours = sum(h for code, h in planned if code != "В")
    answer = call(system, "POST", "/sendFactWorkTime", fact(employee.id, moscow(11, 9), hours + 1))[1]
    assert answer == {"result": True, "doc": "Overtime work"}


def test_concurrent_sends_are_all_recorded() -> None:
    system = make()
    agent_id = steady_employee(system).id
    call(system, "POST", "/sendSchedule", schedule(agent_id, [(moscow(11, 9), 8, 0)]))
    request = fact(agent_id, moscow(11, 9), 9)
    threads = [threading.Thread(target=call, args=(system, "POST", "/sendFactWorkTime", request)) for _ in range(8)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert sorted(d["number"] for d in system.documents()) == [f"{n:06d}" for n in range(1, 9)]
