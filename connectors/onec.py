"""1C:ZUP's HTTP service: one declaration per stream of `source-api/onec-zup.md`, and the two pushes.

1C answers only 200 or 500 (a 500 body may be empty, text or JSON) and real installations
disagree on spellings (`agentId`/`agentID`, `parentDepartmentId`/`parent_departmentId`) and
send numbers as strings, sometimes with a decimal comma; every field below accepts all of them.
Periods in 1C requests are inclusive dates, so a window [start, end) asks for start..end-1 day.
"""

from __future__ import annotations

import datetime as dt
from dataclasses import dataclass
from typing import Any

import pyarrow as pa

from .converters import to_bool
from .http import SourceClient
from .records import Field
from .streams import Request, Stream, Window, iso

SYSTEM = "1C:ZUP"
AGENT_ID = ("agentId", "agentID")
PARENT_DEPARTMENT = ("parentDepartmentId", "parent_departmentId")


def _last_day(window: Window) -> dt.date:
    """The inclusive last date of a half-open window."""
    return (window.end - dt.timedelta(microseconds=1)).date()


def agents_request(window: Window) -> Request:
    return Request("GET", f"/agents/{window.start.date().isoformat()}/{_last_day(window).isoformat()}")


def norm_request(window: Window) -> Request:
    norms = window.context.get("norms", {})
    return Request("POST", "/getNormHours", json={
        "startDate": window.start.date().isoformat(), "endDate": _last_day(window).isoformat(),
        "calculationMode": window.context.get("mode", "month"),
        "AR_agents": [{"agentId": i, "AR_norms": [{"normWeek": w, "changeDate": d} for w, d in norms.get(i, ())]}
                      for i in window.ids]})


def timetype_request(window: Window) -> Request:
    return Request("POST", "/getTimetypeInfo", json={
        "date_start": iso(window.start), "date_end": iso(dt.datetime.combine(_last_day(window), dt.time(), dt.timezone.utc)),
        "AR_agents": [{"agentId": i} for i in window.ids]})


def _first(payload: Any) -> dict:
    """`/agents` answers an array holding one object (some installations send the object)."""
    return payload[0] if isinstance(payload, list) else payload


def _local_day(record: dict) -> str:
    """1C writes a local midnight in UTC (Moscow 00:00 = 21:00Z the day before): round to the day."""
    moment = dt.datetime.fromisoformat(record["date"])
    if moment.tzinfo is None:
        return moment.date().isoformat()
    return (moment.astimezone(dt.timezone.utc) + dt.timedelta(hours=12)).date().isoformat()


def with_columns(**values: Any):
    """A `derive` that adds constant columns taken from the window."""
    def derive(table: pa.Table, window: Window) -> pa.Table:
        for name, (kind, pick) in values.items():
            table = table.append_column(name, pa.array([pick(window)] * table.num_rows, kind))
        return table
    return derive


DEPARTMENTS = Stream(
    name="departments", system=SYSTEM, endpoint="GET /agents", request=agents_request, window=None,
    root=lambda p: _first(p)["AR_departments"], key=("department_id",),
    fields=(Field("department_id", "departmentId"), Field("name", "department"),
            Field("parent_department_id", PARENT_DEPARTMENT, required=False, default="")),
)

EMPLOYEES = Stream(
    name="employees", system=SYSTEM, endpoint="GET /agents", request=agents_request, window=None,
    root=lambda p: _first(p)["AR_agents"], key=("employee_id",),
    fields=(Field("employee_id", AGENT_ID), Field("tab_n", "tabN"), Field("last_name", "lastname"),
            Field("first_name", "firstname"), Field("second_name", "secondname", required=False),
            Field("start_work", "startwork", "date"), Field("finish_work", "finishwork", "date", required=False),
            Field("position_id", "positionId"), Field("position", "position"),
            Field("position_change_date", "positionChangeDate", "date", required=False),
            Field("department_id", "departmentId"), Field("rate", "rate", "float", required=False),
            Field("login", "Login", required=False), Field("norm_week", "normWeek", "float"),
            Field("norm_week_change_date", "normWeekChangeDate", "date"),
            Field("sn", "SN", required=False), Field("db_id", "Db_ID", required=False),
            Field("area", "area", required=False)),
)

VACATION_BALANCES = Stream(
    name="vacation_balances", system=SYSTEM, endpoint="GET /agents", request=agents_request, window="month",
    root=lambda p: _first(p)["AR_agents"], explode="AR_vacation", key=("employee_id", "balance_date"),
    partition="balance_date", cursor="balance_date",
    fields=(Field("employee_id", AGENT_ID, parent=True), Field("balance_date", "date", "date"),
            Field("vacation_days", "vacation", "float")),
)

NORM_HOURS = Stream(
    name="norm_hours", system=SYSTEM, endpoint="POST /getNormHours", request=norm_request, window=None,
    ids="employees", key=("employee_id", "calculation_mode", "period_start"), partition="period_start",
    extra=(pa.field("calculation_mode", pa.string()),),
    derive=with_columns(calculation_mode=(pa.string(), lambda w: w.context.get("mode", "month"))),
    fields=(Field("employee_id", AGENT_ID), Field("period_start", "startDate", "date"),
            Field("period_end", "endDate", "date"), Field("norm_hours", "normHours", "float")),
)

TIMESHEET_DAYS = Stream(
    name="timesheet_days", system=SYSTEM, endpoint="POST /getTimetypeInfo", request=timetype_request,
    window="month", ids="employees", explode="AR_date", key=("employee_id", "work_date", "time_type"),
    partition="work_date", cursor="work_date", lookback=dt.timedelta(days=31),
    fields=(Field("employee_id", AGENT_ID, parent=True), Field("work_date", _local_day, "date"),
            Field("day_start", "date", "timestamp"), Field("time_type", "timetype"),
            Field("hours", "hours", "float")),
)

TIMESHEET_SUMMARIES = Stream(
    name="timesheet_summaries", system=SYSTEM, endpoint="POST /getTimetypeInfo", request=timetype_request,
    window="month", ids="employees", key=("employee_id", "period_start"), partition="period_start",
    cursor="period_start", lookback=dt.timedelta(days=31),
    extra=(pa.field("period_start", pa.date32()), pa.field("period_end", pa.date32())),
    derive=with_columns(period_start=(pa.date32(), lambda w: w.start.date()), period_end=(pa.date32(), _last_day)),
    fields=(Field("employee_id", AGENT_ID), Field("absences", "AR_N", "json", required=False),
            *(Field(name, name, "float", required=False)
              for name in ("half1_days", "half1_hours", "half2_days", "half2_hours"))),
)

STREAMS: tuple[Stream, ...] = (DEPARTMENTS, EMPLOYEES, VACATION_BALANCES, NORM_HOURS, TIMESHEET_DAYS,
                               TIMESHEET_SUMMARIES)


@dataclass(frozen=True)
class PushResult:
    """1C's answer to sendSchedule / sendFactWorkTime."""

    accepted: bool
    message: str | None


def send_schedule(client: SourceClient, payload: dict) -> PushResult:
    """sendSchedule is idempotent per employee-month, so transient faults are retried."""
    body = client.request_json("POST", "/sendSchedule", json=payload, label="POST /sendSchedule") or {}
    return PushResult(_accepted(body), body.get("message"))


def send_fact_work_time(client: SourceClient, payload: dict) -> PushResult:
    """One attempt only: a repeated delivery creates a second document in 1C."""
    body = client.request_json("POST", "/sendFactWorkTime", json=payload, label="POST /sendFactWorkTime",
                               retry=False) or {}
    return PushResult(_accepted(body), body.get("doc") or body.get("message"))


def _accepted(body: Any) -> bool:
    try:
        return isinstance(body, dict) and to_bool(body.get("result"))
    except ValueError:
        return False
