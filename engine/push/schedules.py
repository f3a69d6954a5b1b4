"""Planned shifts as 1C's sendSchedule wants them: one payload per employee and month.

Rules (contract `sendSchedule`, and the choices it leaves to us):
- a shift belongs to the local day it starts on, in the employee's time zone (`employees.area`
  through `tasks.zones`); an area without a configured zone is refused for that employee, with
  the reason, and nothing of theirs is sent until it is configured;
- `daily_hours` and `night_hours` are milliseconds net of the unpaid break, split at night
  (22:00–06:00 local). Where the break falls is not planned, so it is taken to sit in the
  middle of the shift: its overlap with the night comes off `night_hours`, the rest off
  `daily_hours` (this reproduces the contract's example: 22:00–09:30 less 30 min is
  night 7.5 h + day 3.5 h);
- a payload always covers the whole month (period1 = the 1st, period2 = the last day, local
  midnights with their offset), so the days without a shift become days off and shifts 1C held
  from an earlier send are replaced;
- shifts outside the employment (before `start_work`, after `finish_work`) are left out; a
  month with no shift left is not sent.
"""

from __future__ import annotations

import calendar
import datetime as dt
import hashlib
from collections import defaultdict
from dataclasses import dataclass, field
from zoneinfo import ZoneInfo

import orjson
import psycopg

from connectors.onec import EMPLOYEES
from connectors.planning import PLANNED_SHIFTS
from connectors.streams import iso
from engine.landing import warehouse
from engine.zones import UnknownArea, area_timezones, zone_of_area

UTC = dt.timezone.utc
MS_PER_HOUR = 3_600_000
NIGHT_START, NIGHT_END = dt.time(22), dt.time(6)
def local_day(moment: dt.datetime, tz: str) -> dt.date:
    return moment.astimezone(ZoneInfo(tz)).date()


def local_midnight(day: dt.date, tz: str) -> dt.datetime:
    return dt.datetime.combine(day, dt.time(), ZoneInfo(tz))


def night_spans(start: dt.datetime, end: dt.datetime, tz: str) -> list[tuple[dt.datetime, dt.datetime]]:
    """The parts of [start, end) that fall between 22:00 and 06:00 local time."""
    zone = ZoneInfo(tz)
    first = local_day(start, tz) - dt.timedelta(days=1)
    spans = []
    for n in range((local_day(end, tz) - first).days + 1):
        day = first + dt.timedelta(days=n)
        night_start = dt.datetime.combine(day, NIGHT_START, zone)
        night_end = dt.datetime.combine(day + dt.timedelta(days=1), NIGHT_END, zone)
        lo, hi = max(start, night_start), min(end, night_end)
        if lo < hi:
            spans.append((lo, hi))
    return spans


def overlap_ms(start: dt.datetime, end: dt.datetime, spans: list[tuple[dt.datetime, dt.datetime]]) -> int:
    return sum(max(0, int((min(end, hi) - max(start, lo)) / dt.timedelta(milliseconds=1))) for lo, hi in spans)


def is_night(moment: dt.datetime, tz: str) -> bool:
    """Whether an instant is night time (22:00–06:00 local): how 1C classes a 15-minute slot."""
    hour = moment.astimezone(ZoneInfo(tz)).hour
    return hour >= NIGHT_START.hour or hour < NIGHT_END.hour


def shift_hours(start: dt.datetime, end: dt.datetime, break_minutes: int, tz: str) -> tuple[int, int]:
    """(daily_ms, night_ms) of one shift, net of its unpaid break placed mid-shift."""
    if end <= start:
        return 0, 0
    spans = night_spans(start, end, tz)
    total_ms = int((end - start) / dt.timedelta(milliseconds=1))
    night_ms = overlap_ms(start, end, spans)
    pause = min(dt.timedelta(minutes=max(0, break_minutes or 0)), end - start)
    middle = start + (end - start) / 2
    pause_start = middle - pause / 2
    pause_night = overlap_ms(pause_start, pause_start + pause, spans)
    pause_ms = int(pause / dt.timedelta(milliseconds=1))
    return total_ms - night_ms - (pause_ms - pause_night), night_ms - pause_night


@dataclass
class ScheduleMonth:
    """One employee-month: the sendSchedule payload and its content hash, or why it is not sent."""

    employee_id: str
    month: str                               # "YYYY-MM"
    payload: dict = field(default_factory=dict)
    content_hash: str = ""
    skipped: str | None = None               # a reason not to send, e.g. no shift within employment
    refused: str | None = None               # a reason it cannot be sent yet, e.g. an area without a zone


def payload_hash(payload: dict) -> str:
    return hashlib.sha256(orjson.dumps(payload, option=orjson.OPT_SORT_KEYS)).hexdigest()


# one site's plans, against the employees of the site's 1C base
SHIFTS = """
SELECT s.employee_id, s.shift_start, s.shift_end, coalesce(s.unpaid_break_minutes, 0),
       e.area, e.start_work, e.finish_work, e.employee_id IS NOT NULL
FROM wfm.planned_shifts s LEFT JOIN wfm.employees e ON e.employee_id = s.employee_id AND e.source = %(onec)s
WHERE s.site = %(site)s AND s.shift_start >= %(since)s - interval '1 day'
  AND (%(until)s::timestamptz IS NULL OR s.shift_start < %(until)s)
ORDER BY s.employee_id, s.shift_start
"""


def schedule_months(conn: psycopg.Connection, since: dt.date, until: dt.date | None = None,
                    site: str = warehouse.DEFAULT, onec: str = warehouse.DEFAULT) -> list[ScheduleMonth]:
    """Every employee-month of the site's plans with shifts starting in [since's month, until):
    payloads to send to the site's 1C base (`onec`, the connection whose employees they are)."""
    for stream in (PLANNED_SHIFTS, EMPLOYEES):
        warehouse.ensure_table(conn, stream)
    mapping = area_timezones()
    first_month = since.replace(day=1)
    rows = conn.execute(SHIFTS, {"since": dt.datetime.combine(first_month, dt.time(), UTC),
                                 "until": dt.datetime.combine(until, dt.time(), UTC) if until else None,
                                 "site": site, "onec": onec}).fetchall()
    months: dict[tuple[str, str], list] = defaultdict(list)
    facts: dict[str, tuple] = {}
    unplaced: dict[tuple[str, str], str] = {}
    for employee_id, start, end, pause, area, hired, dismissed, known in rows:
        try:
            tz = zone_of_area(area, mapping) if known else "UTC"
        except UnknownArea as exc:    # nothing is sent for this employee until the area has a zone
            month = start.astimezone(UTC).strftime("%Y-%m")
            if start.astimezone(UTC).date() >= first_month and not (until and start.date() >= until):
                unplaced[(employee_id, month)] = str(exc)
            continue
        day = local_day(start, tz)
        if day < first_month or (until and day >= until):
            continue
        facts[employee_id] = (tz, hired, dismissed, known)
        months[(employee_id, day.strftime("%Y-%m"))].append((day, start, end, pause))
    out = [_month(employee_id, month, shifts, *facts[employee_id])
           for (employee_id, month), shifts in sorted(months.items())]
    out += [ScheduleMonth(e, m, {}, payload_hash({"refused": why}), refused=why)
            for (e, m), why in sorted(unplaced.items())]
    return out


def _month(employee_id: str, month: str, shifts: list, tz: str, hired: dt.date | None,
           dismissed: dt.date | None, known: bool) -> ScheduleMonth:
    first = dt.date.fromisoformat(f"{month}-01")
    last = first.replace(day=calendar.monthrange(first.year, first.month)[1])   # 9999-12 has no month after it
    employed = [s for s in shifts if (hired is None or s[0] >= hired) and (dismissed is None or s[0] <= dismissed)]
    entries = []
    for _, start, end, pause in employed:
        daily, night = shift_hours(start, end, pause, tz)
        entries.append({"date_start": iso(start), "daily_hours": daily, "night_hours": night})
    payload = {"agentId": employee_id, "period1": local_midnight(first, tz).isoformat(),
               "period2": local_midnight(last, tz).isoformat(), "shift": entries}
    out = ScheduleMonth(employee_id, month, payload, payload_hash(payload))
    if not known:
        out.skipped = "employee not in wfm.employees (sync onec_personnel first)"
    elif not entries:
        gone = f"dismissed {dismissed}" if dismissed and dismissed < last else f"hired {hired}"
        out.skipped = (f"no shift within the employment ({gone}); a schedule sent earlier stays in 1C "
                       "until cancelled there")
    return out
