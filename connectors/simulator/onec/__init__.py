"""The simulated 1C:ZUP HTTP service (`/hs/wfm`), following /work/shared/source-api/onec-zup.md.

`OneCSystem.handle` answers one request whose path is relative to the service base
(`/agents/2024-01-01/2024-01-31`, `/getNormHours` ...). Like the real service it answers only
200 or 500: an unknown path or method gets 500 with an empty body, an unreadable request 500
with a plain-text reason; business refusals of the send methods are 200 with `result` false.

The roster and the seeded timesheet come from `onec_data`; the schedules and fact documents
the WFM sends are kept here, under a lock (the HTTP server is multi-threaded), and shown in
`getTimetypeInfo` so that a WFM can check whether a send whose answer was lost was stored.

Variants (dialects of real installations), applied to every answer:
- "parent_department_underscore": `parent_departmentId` instead of `parentDepartmentId`;
- "agent_id_caps": `agentID` instead of `agentId`;
- "numbers_as_strings": rate, normWeek, vacation, normHours, hours and half*_ as strings ("0.5");
- "decimal_comma": the same numbers as strings with a decimal comma ("0,5");
- "result_bool": `result` of sendSchedule as a boolean instead of the string "true"/"false";
- "next_year_calendar_missing": the production calendar of the years after clock()'s year is
  not loaded (as in 1C before HR loads it in December).
"""

from __future__ import annotations

import copy
import datetime as dt
import threading
from typing import Any, Callable

import orjson

import connectors.simulator.onec.calendar_ru as calendar_ru
from connectors.simulator.base import Clock, SimResponse
from connectors.simulator.onec.data import Employee, OneCRoster, add_months, month_end
from connectors.simulator.onec.timesheet import (
    MS_PER_HOUR,
    fact_document,
    is_night,
    local_day,
    parse_instant,
    plan_hours,
    timesheet,
)
from connectors.simulator.world import World

NUMERIC_FIELDS = frozenset({"rate", "normWeek", "vacation", "normHours", "hours",
                            "half1_days", "half1_hours", "half2_days", "half2_hours"})
SLOT_MS = 900_000                      # one loginfo slot: at most 15 minutes
PERIOD_MONTHS = {"month": 1, "quarter": 3, "year": 12}
MAX_TIMESHEET_DAYS = 366


class BadRequest(Exception):
    """The request cannot be read; 1C answers 500 with this text."""


def _date(value: object) -> dt.date:
    try:
        return dt.date.fromisoformat(str(value))
    except ValueError:
        raise BadRequest(f"Invalid date: {value!r}") from None


def _number(value: object) -> float:
    """A number as 1C clients send it: 40, 0.5, "40" or "0,5"."""
    return float(str(value).replace(",", ".")) if isinstance(value, str) else float(value)  # type: ignore[arg-type]


def _agent_id(entry: dict[str, Any]) -> str:
    return str(entry.get("agentId") or entry.get("agentID") or "")


def _slices(start: dt.date, end: dt.date, mode: str) -> list[tuple[dt.date, dt.date]]:
    """[start, end] cut at month, quarter or year boundaries."""
    months = PERIOD_MONTHS[mode]
    out, day = [], start
    while day <= end:
        first = day.replace(month=(day.month - 1) // months * months + 1, day=1)
        last = add_months(first, months) - dt.timedelta(days=1)
        out.append((day, min(last, end)))
        day = last + dt.timedelta(days=1)
    return out


def _text_number(value: float, comma: bool) -> str:
    text = str(int(value)) if float(value).is_integer() else str(value)
    return text.replace(".", ",") if comma else text


class OneCSystem:
    """1C:ZUP for one simulated world: personnel, norms, timesheets, and the WFM's sends.

    `variants` are listed in the module docstring; `unloaded_years` are years whose production
    calendar this 1C lacks (besides those the `holidays` package has no decree for).
    """

    def __init__(self, world: World, clock: Clock, variants: frozenset[str] = frozenset(),
                 unloaded_years: frozenset[int] = frozenset()):
        self.roster = OneCRoster(world)
        self.clock = clock
        self.variants = frozenset(variants)
        self.unloaded_years = frozenset(unloaded_years)
        self._lock = threading.Lock()
        self._plans: dict[str, dict[str, list[dict[str, Any]]]] = {}   # employee -> "YYYY-MM" -> shifts
        self._documents: list[dict[str, Any]] = []

    # ---- inspection, for tests and the simulator's operators ---------------------------------

    def schedules(self, employee_id: str) -> dict[str, list[dict[str, Any]]]:
        """The stored individual schedules of an employee: "YYYY-MM" -> shifts as sent."""
        with self._lock:
            return copy.deepcopy(self._plans.get(employee_id, {}))

    def documents(self, employee_id: str | None = None) -> list[dict[str, Any]]:
        """The documents `sendFactWorkTime` created, oldest first, of one employee or of all."""
        with self._lock:
            return [copy.deepcopy(d) for d in self._documents if employee_id in (None, d["employee_id"])]

    def part_month_employees(self) -> frozenset[str]:
        """Employees whose schedules 1C refuses: a part-month schedule is already held for them."""
        return self.roster.part_month_ids

    def calendar_loaded(self, year: int) -> bool:
        """Whether this 1C has the production calendar of `year`."""
        if "next_year_calendar_missing" in self.variants and year > self.clock().year:
            return False
        return calendar_ru.calendar_loaded(year) and year not in self.unloaded_years

    # ---- HTTP ---------------------------------------------------------------------------------

    def handle(self, method: str, path: str, query: dict[str, str], body: bytes) -> SimResponse:
        """Answer one request to the service; `path` is relative to `/hs/wfm`."""
        parts = [p for p in path.split("/") if p]
        routes: dict[tuple[str, str], Callable[[Any], object]] = {
            ("POST", "getNormHours"): self._norm_hours,
            ("POST", "getTimetypeInfo"): self._timetype_info,
            ("POST", "sendSchedule"): self._send_schedule,
            ("POST", "sendFactWorkTime"): self._send_fact_work_time,
        }
        try:
            if method.upper() == "GET" and len(parts) == 3 and parts[0] == "agents":
                payload = self._agents(_date(parts[1]), _date(parts[2]))
            elif len(parts) == 1 and (method.upper(), parts[0]) in routes:
                payload = routes[(method.upper(), parts[0])](self._json(body))
            else:
                return SimResponse(500)
        except BadRequest as error:
            return SimResponse.text(500, str(error))
        except (AttributeError, KeyError, TypeError, ValueError) as error:   # a request of the wrong shape
            return SimResponse.text(500, f"Invalid request: {error!r}")
        return SimResponse.json(200, self._dialect(payload))

    @staticmethod
    def _json(body: bytes) -> Any:
        try:
            request = orjson.loads(body)
        except orjson.JSONDecodeError as error:
            raise BadRequest(f"Invalid JSON: {error}") from None
        if not isinstance(request, dict):
            raise BadRequest("Invalid JSON: an object is expected")
        return request

    def _dialect(self, value: Any) -> Any:
        """Rewrite an answer in the configured variants' spelling."""
        if isinstance(value, list):
            return [self._dialect(v) for v in value]
        if not isinstance(value, dict):
            return value
        renames = {}
        if "agent_id_caps" in self.variants:
            renames["agentId"] = "agentID"
        if "parent_department_underscore" in self.variants:
            renames["parentDepartmentId"] = "parent_departmentId"
        comma = "decimal_comma" in self.variants
        as_text = comma or "numbers_as_strings" in self.variants
        out = {}
        for key, item in value.items():
            if as_text and key in NUMERIC_FIELDS and isinstance(item, (int, float)) and not isinstance(item, bool):
                item = _text_number(item, comma)
            out[renames.get(key, key)] = self._dialect(item)
        return out

    # ---- GET /agents/{startDate}/{endDate} ------------------------------------------------------

    def _agents(self, start: dt.date, end: dt.date) -> list[dict[str, Any]]:
        if end < start:
            raise BadRequest(f"The period end {end} is before its start {start}")
        departments = [{"departmentId": d.id, "department": d.name, "parentDepartmentId": d.parent_id}
                       for d in self.roster.departments]
        agents = [self._agent(e, start, end) for e in self.roster.listed(start)]
        return [{"AR_departments": departments, "AR_agents": agents}]

    def _agent(self, e: Employee, start: dt.date, end: dt.date) -> dict[str, Any]:
        p = e.person
        return {
            "agentId": e.id, "tabN": p.tab_n, "lastname": p.last_name, "firstname": p.first_name,
            "secondname": p.second_name, "startwork": e.startwork.isoformat(),
            "finishwork": e.finishwork.isoformat() if e.finishwork else None,
            "positionId": e.position_id, "position": e.position,
            "positionChangeDate": e.position_change_date.isoformat(), "departmentId": e.department_id,
            "rate": e.rate, "Login": p.login, "normWeek": e.norm_week,
            "normWeekChangeDate": e.norm_week_change_date.isoformat(), "SN": e.sn, "Db_ID": e.db_id,
            "area": p.site, "AR_vacation": self.roster.vacation_balances(e, start, end),
        }

    # ---- POST /getNormHours ---------------------------------------------------------------------

    def _norm_hours(self, request: dict[str, Any]) -> list[dict[str, Any]]:
        start, end = _date(request.get("startDate")), _date(request.get("endDate"))
        mode = request.get("calculationMode")
        if mode not in PERIOD_MONTHS or end < start:
            raise BadRequest(f"Invalid calculationMode {mode!r} or period {start} - {end}")
        for year in range(start.year, end.year + 1):
            if not self.calendar_loaded(year):
                raise BadRequest(f"The production calendar for {year} is not loaded")
        rows = []
        for agent in request.get("AR_agents") or []:
            agent_id = _agent_id(agent)
            employee = self.roster.by_id.get(agent_id)
            try:
                norms = [(_date(n["changeDate"]), _number(n["normWeek"])) for n in agent.get("AR_norms") or []]
            except (KeyError, TypeError, ValueError):
                raise BadRequest(f"Invalid AR_norms of agent {agent_id}") from None
            if not norms and employee:      # nothing sent: 1C uses the norm it holds itself
                norms = [(employee.norm_week_change_date, employee.norm_week)]
            hire, dismissal = (employee.startwork, employee.finishwork) if employee else (None, None)
            for first, last in _slices(start, end, mode):
                hours = calendar_ru.norm_hours(first, last, norms, hire, dismissal) if norms else 0.0
                rows.append({"agentId": agent_id, "normHours": int(hours) if hours.is_integer() else hours,
                             "startDate": first.isoformat(), "endDate": last.isoformat()})
        return rows

    # ---- POST /getTimetypeInfo ------------------------------------------------------------------

    def _timetype_info(self, request: dict[str, Any]) -> list[dict[str, Any]]:
        try:
            start, end = parse_instant(request["date_start"]), parse_instant(request["date_end"])
        except (KeyError, TypeError, ValueError):
            raise BadRequest("Invalid date_start or date_end") from None
        out = []
        for agent in request.get("AR_agents") or []:
            employee = self.roster.by_id.get(_agent_id(agent))
            if employee is None:            # 1C leaves out ids it does not know
                continue
            tz = employee.person.timezone
            first, last = local_day(start, tz), local_day(end, tz)
            if (last - first).days >= MAX_TIMESHEET_DAYS:
                raise BadRequest(f"The period is longer than {MAX_TIMESHEET_DAYS} days")
            days = [first + dt.timedelta(days=n) for n in range((last - first).days + 1)]
            with self._lock:
                plans = copy.deepcopy(self._plans.get(employee.id, {}))
                docs = [copy.deepcopy(d) for d in self._documents if d["employee_id"] == employee.id]
            out.append({"agentId": employee.id, **timesheet(self.roster, employee, days, plans, docs)})
        return out

    # ---- POST /sendSchedule ---------------------------------------------------------------------

    def _schedule_answer(self, ok: bool, message: str) -> dict[str, Any]:
        result: object = ok if "result_bool" in self.variants else ("true" if ok else "false")
        return {"result": result, "message": message}

    def _send_schedule(self, request: dict[str, Any]) -> dict[str, Any]:
        agent_id = _agent_id(request)
        employee = self.roster.by_id.get(agent_id)
        if employee is None:
            return self._schedule_answer(False, f"Employee {agent_id!r} not found")
        tz = employee.person.timezone
        try:
            first = local_day(parse_instant(request["period1"]), tz)
            last = local_day(parse_instant(request["period2"]), tz)
            sent = [{"date_start": str(s["date_start"]), "daily_hours": int(s["daily_hours"]),
                     "night_hours": int(s["night_hours"])} for s in request.get("shift") or []]
            days = [local_day(parse_instant(s["date_start"]), tz) for s in sent]
        except (KeyError, TypeError, ValueError) as error:
            return self._schedule_answer(False, f"Invalid period or shift: {error}")
        if last < first or any(s["daily_hours"] < 0 or s["night_hours"] < 0 for s in sent):
            return self._schedule_answer(False, "Invalid period or shift: reversed period or negative hours")
        shifts = [s for s, day in zip(sent, days) if first <= day <= last]   # others are ignored
        if not shifts:
            return self._schedule_answer(False, f"No shifts for the employee in {first} - {last}")
        if employee.id in self.part_month_employees():
            return self._schedule_answer(False, "A part-month individual schedule is already held in 1C "
                                                "for the employee; it must be cancelled first")
        months = self._months(first, last)
        current = local_day(self.clock(), tz).strftime("%Y-%m")
        if months[0] < current:
            return self._schedule_answer(False, f"Past period: {months[0]} is before the current month {current}")
        for year in sorted({int(m[:4]) for m in months}):
            if not self.calendar_loaded(year):
                return self._schedule_answer(False, f"The production calendar for {year} is not loaded")
        self._store(employee, months, first, last, shifts)
        return self._schedule_answer(True, f"Individual schedules have been created for {employee.person.tab_n}: "
                                           + ", ".join(months))

    @staticmethod
    def _months(first: dt.date, last: dt.date) -> list[str]:
        months, day = [], first.replace(day=1)
        while day <= last:
            months.append(day.strftime("%Y-%m"))
            day = month_end(day) + dt.timedelta(days=1)
        return months

    def _store(self, employee: Employee, months: list[str], first: dt.date, last: dt.date,
               shifts: list[dict[str, Any]]) -> None:
        """Replace each month's shifts inside [first, last]; shifts outside the period stay."""
        tz = employee.person.timezone

        def day_of(shift: dict[str, Any]) -> dt.date:
            return local_day(parse_instant(shift["date_start"]), tz)

        with self._lock:
            plans = self._plans.setdefault(employee.id, {})
            for month in months:
                kept = [s for s in plans.get(month, []) if not first <= day_of(s) <= last]
                sent = [s for s in shifts if day_of(s).strftime("%Y-%m") == month]
                plans[month] = sorted(kept + sent, key=lambda s: (day_of(s), s["date_start"]))

    # ---- POST /sendFactWorkTime -----------------------------------------------------------------

    def _send_fact_work_time(self, request: dict[str, Any]) -> dict[str, Any]:
        refused = {"result": False, "doc": None}
        employee = self.roster.by_id.get(_agent_id(request))
        if employee is None:
            return refused
        tz = employee.person.timezone
        try:
            day = local_day(parse_instant(request["date_start"]), tz)
            slots = [(parse_instant(s["start"]), int(s["time"])) for s in request.get("loginfo") or []]
        except (KeyError, TypeError, ValueError):
            return refused
        if not employee.employed_on(day) or any(not 0 <= ms <= SLOT_MS for _, ms in slots):
            return refused
        night = sum(ms for start, ms in slots if is_night(start, tz)) / MS_PER_HOUR
        daytime = sum(ms for start, ms in slots if not is_night(start, tz)) / MS_PER_HOUR
        with self._lock:    # plan read and document written in one step
            month_plan = self._plans.get(employee.id, {}).get(day.strftime("%Y-%m"))
            document = fact_document(plan_hours(self.roster, employee, day, month_plan), daytime, night)
            if document is None:
                return refused
            name, rows = document
            self._documents.append({
                "number": f"{len(self._documents) + 1:06d}", "employee_id": employee.id,
                "date": day.isoformat(), "doc": name,
                "rows": [{"timetype": code, "hours": hours} for code, hours in rows],
                "initiator_name": request.get("initiator_name"), "created_at": self.clock().isoformat(),
            })
        return {"result": True, "doc": name}
