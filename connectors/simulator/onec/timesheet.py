"""The 1C timesheet (`getTimetypeInfo`) and the fact-versus-plan documents (`sendFactWorkTime`).

A timesheet day is assembled in layers, so that what the WFM sent is visible in what 1C shows:
1. nothing outside the employment (before startwork, after finishwork);
2. a seeded vacation (ОТ) or sick leave (Б) takes the whole day, whatever was planned;
3. otherwise the plan: the shifts the WFM stored for that month (Я day hours, Н night hours,
   В 0 for a day without a shift), or 1C's own seeded schedule with its occasional С / НН
   when nothing was sent for the month;
4. every document created by `sendFactWorkTime` for the day adds its rows (an НН document
   takes its hours off Я, then Н, as the absence replaces planned work).
Rows of one code are summed; a В row disappears once the day has any other row.
"""

from __future__ import annotations

import datetime as dt
from collections import defaultdict
from typing import Iterable, Mapping, Sequence
from zoneinfo import ZoneInfo

from connectors.simulator.onec.data import Employee, OneCRoster, Row

MS_PER_HOUR = 3_600_000
WORKED = ("Я", "Н", "РВ", "РВН", "С")
WHOLE_DAY_ABSENCES = ("ОТ", "ОД", "У", "Б", "Т", "ОВ", "НВ")
ABSENCES = WHOLE_DAY_ABSENCES + ("НН", "ПР", "НС", "РП", "НП", "ВП")
DOC_WORK_ON_DAY_OFF, DOC_ABSENCE, DOC_OVERTIME = "Work on a day off", "Absence", "Overtime work"

Shift = Mapping[str, object]     # {"date_start": str, "daily_hours": int ms, "night_hours": int ms}
Document = Mapping[str, object]  # an entry of OneCSystem.documents()


def parse_instant(text: str) -> dt.datetime:
    """An ISO-8601 date-time as 1C accepts it: UTC ("Z"), with an offset, or local (naive)."""
    return dt.datetime.fromisoformat(text.replace("Z", "+00:00"))


def local_day(instant: dt.datetime, timezone: str) -> dt.date:
    """The employee's calendar day of an instant; a naive date-time is already local."""
    return instant.astimezone(ZoneInfo(timezone)).date() if instant.tzinfo else instant.date()


def local_midnight_utc(day: dt.date, timezone: str) -> str:
    """The local day's midnight written in UTC: Moscow 2018-03-28 -> 2018-03-27T21:00:00Z."""
    midnight = dt.datetime.combine(day, dt.time(0), tzinfo=ZoneInfo(timezone))
    return midnight.astimezone(dt.timezone.utc).strftime("%Y-%m-%dT%H:%M:%SZ")


def is_night(instant: dt.datetime, timezone: str) -> bool:
    """Night is 22:00-06:00 local time."""
    hour = (instant.astimezone(ZoneInfo(timezone)) if instant.tzinfo else instant).hour
    return hour >= 22 or hour < 6


def _hours(ms: object) -> float:
    return round(float(ms) / MS_PER_HOUR, 2)  # type: ignore[arg-type]


def planned_rows(roster: OneCRoster, employee: Employee, day: dt.date,
                 month_plan: Sequence[Shift] | None) -> list[Row]:
    """The plan of a day: the stored shifts starting that day, or 1C's own schedule."""
    if month_plan is None:
        return roster.default_day(employee, day)
    tz = employee.person.timezone
    rows: list[Row] = []
    for shift in month_plan:
        if local_day(parse_instant(str(shift["date_start"])), tz) == day:
            rows += [("Я", _hours(shift["daily_hours"])), ("Н", _hours(shift["night_hours"]))]
    return [r for r in rows if r[1] > 0] or [("В", 0)]


def plan_hours(roster: OneCRoster, employee: Employee, day: dt.date, month_plan: Sequence[Shift] | None) -> float:
    """Planned working hours of a day, the yardstick `sendFactWorkTime` measures fact against."""
    return sum(h for code, h in planned_rows(roster, employee, day, month_plan) if code in WORKED)


def _add(rows: list[Row], code: str, hours: float) -> list[Row]:
    """Add a row; an absence (НН) takes its hours off the planned Я, then Н."""
    if code == "НН":
        left, taken = hours, []
        for c, h in rows:
            cut = min(h, left) if c in ("Я", "Н") else 0
            left -= cut
            taken.append((c, h - cut))
        rows = [(c, h) for c, h in taken if h > 0 or c not in ("Я", "Н")]
    return rows + [(code, hours)]


def _settle(rows: Iterable[Row]) -> list[Row]:
    merged: dict[str, float] = {}
    for code, hours in rows:
        merged[code] = round(merged.get(code, 0) + hours, 2)
    if len(merged) > 1:
        merged.pop("В", None)
    return list(merged.items())


def day_rows(roster: OneCRoster, employee: Employee, day: dt.date,
             month_plan: Sequence[Shift] | None, documents: Sequence[Document]) -> list[Row]:
    """The timesheet rows of one day, built in the layers described in the module docstring."""
    if not employee.employed_on(day):
        return []
    absence = roster.absence(employee, day)
    if absence:
        return [(absence, 0)]
    rows = planned_rows(roster, employee, day, month_plan)
    if month_plan is None and rows != [("В", 0)]:
        for code, hours in roster.seeded_events(employee, day):
            rows = _add(rows, code, hours)
    for doc in documents:
        for row in doc["rows"]:  # type: ignore[attr-defined]
            rows = _add(rows, row["timetype"], row["hours"])
    return _settle(rows)


def _count(value: float) -> float:
    return int(value) if float(value).is_integer() else round(value, 2)


def timesheet(roster: OneCRoster, employee: Employee, days: Sequence[dt.date],
              plans: Mapping[str, Sequence[Shift]], documents: Sequence[Document]) -> dict[str, object]:
    """One agent's `getTimetypeInfo` entry: AR_date rows, the AR_N summary and the half totals.

    `plans` maps "YYYY-MM" to the stored shifts of that month. The halves sum the worked days
    and hours of the requested days whose day of month is 1-15 (half1) or 16-31 (half2).
    """
    docs_by_day: dict[str, list[Document]] = defaultdict(list)
    for doc in documents:
        docs_by_day[str(doc["date"])].append(doc)
    tz = employee.person.timezone
    ar_date: list[dict[str, object]] = []
    absences: dict[str, list[float]] = {}
    halves = {"half1": [0, 0.0], "half2": [0, 0.0]}
    for day in days:
        rows = day_rows(roster, employee, day, plans.get(day.strftime("%Y-%m")), docs_by_day[day.isoformat()])
        stamp = local_midnight_utc(day, tz)
        ar_date += [{"date": stamp, "timetype": code, "hours": _count(hours)} for code, hours in rows]
        worked = sum(h for code, h in rows if code in WORKED)
        half = halves["half1" if day.day <= 15 else "half2"]
        half[0] += worked > 0
        half[1] += worked
        for code, hours in rows:
            if code in ABSENCES:
                absences.setdefault(code, [0, 0.0])
                absences[code][0] += 1
                absences[code][1] += hours
    ar_n = [{"timetype_N": code, "hours_N": f"{days_}" if code in WHOLE_DAY_ABSENCES else f"{days_}({_count(hours)})"}
            for code, (days_, hours) in absences.items()]
    return {"AR_date": ar_date, "AR_N": ar_n,
            "half1_days": halves["half1"][0], "half1_hours": _count(round(halves["half1"][1], 2)),
            "half2_days": halves["half2"][0], "half2_hours": _count(round(halves["half2"][1], 2))}


def fact_document(planned: float, day_fact: float, night_fact: float) -> tuple[str, list[Row]] | None:
    """What 1C documents when fact differs from plan: (document name, rows), or None.

    plan 0 and fact > 0 -> "Work on a day off" with РВ (day hours) and РВН (night hours);
    fact below plan -> "Absence" with НН for the missing hours;
    fact above plan -> "Overtime work" with С for the extra hours.
    """
    fact = round(day_fact + night_fact, 2)
    if planned == 0 and fact > 0:
        rows = [("РВ", round(day_fact, 2)), ("РВН", round(night_fact, 2))]
        return DOC_WORK_ON_DAY_OFF, [r for r in rows if r[1] > 0]
    if fact < planned:
        return DOC_ABSENCE, [("НН", round(planned - fact, 2))]
    if fact > planned:
        return DOC_OVERTIME, [("С", round(fact - planned, 2))]
    return None
