"""The production calendar of the Russian Federation and the working-time norm built on it.

The calendar comes from the `holidays` package, which models the government's yearly transfer
decrees: public holidays, days off moved onto working days ("Day off (substituted from ...)"),
holidays that fall on a weekend and are observed on the next working day ("... (observed)"),
and Saturdays made working days (`weekend_workdays`).

- A **working day** is a weekday or a weekend workday that is not in the holiday set.
- A **pre-holiday day** is shortened by one hour (Labour Code art. 95): a working day
  immediately followed by a proper public holiday (not an observed or substituted day off),
  or a weekend workday whose own substituted day off is immediately followed by a proper
  public holiday (2018: Apr 28 -> Apr 30 -> May 1).
- The **norm** of a period (1C's `getNormHours`) is normWeek / 5 x working days − 1 hour per
  pre-holiday day, the same one hour whatever the normWeek (this reproduces the official 2018
  table: 1970 / 1772.4 / 1476 hours for 40 / 36 / 30 hours a week).

A year is *loaded* when the installed `holidays` release carries that year's transfer decree;
asking about any other year raises `CalendarNotLoaded` rather than silently counting weekdays.
"""

from __future__ import annotations

import datetime as dt
import re
from decimal import ROUND_HALF_UP, Decimal
from functools import lru_cache

import holidays
from holidays.countries.russia import Russia, RussiaStaticHolidays

__all__ = [
    "CalendarNotLoaded", "calendar_loaded", "is_working_day", "is_pre_holiday",
    "working_days", "pre_holidays", "norm_hours",
]

FIRST_YEAR = Russia.start_year
LAST_YEAR = max(RussiaStaticHolidays.special_public_holidays)   # the newest decree shipped

_SUBSTITUTED_FROM = re.compile(r"substituted from (\d{2})/(\d{2})/(\d{4})")
_ONE_DAY = dt.timedelta(days=1)


class CalendarNotLoaded(ValueError):
    """The production calendar of a year is not known (no transfer decree for it)."""

    def __init__(self, year: int):
        super().__init__(f"the production calendar for {year} is not loaded")
        self.year = year


def calendar_loaded(year: int) -> bool:
    """True when the transfer decree of `year` is known to the installed `holidays` release."""
    return FIRST_YEAR <= year <= LAST_YEAR


@lru_cache(maxsize=64)
def _year(year: int) -> tuple[dict[dt.date, str], frozenset[dt.date], dict[dt.date, dt.date]]:
    """Holidays (date -> name), weekend workdays, and weekend workday -> its substituted day off."""
    calendar = holidays.country_holidays("RU", years=year, language="en_US")
    names = dict(calendar.items())
    workdays = frozenset(d for d in calendar.weekend_workdays if d.year == year)
    moved: dict[dt.date, dt.date] = {}
    for day, name in names.items():
        for month, mday, y in _SUBSTITUTED_FROM.findall(name):
            source = dt.date(int(y), int(month), int(mday))
            if source in workdays:
                moved[source] = day
    return names, workdays, moved


def _checked(day: dt.date) -> dt.date:
    if not calendar_loaded(day.year):
        raise CalendarNotLoaded(day.year)
    return day


def _working(day: dt.date) -> bool:
    names, workdays, _ = _year(day.year)
    return (day.weekday() < 5 or day in workdays) and day not in names


def _public_holiday(day: dt.date) -> bool:
    """A holiday by law, as opposed to a day off moved or observed because of one."""
    name = _year(day.year)[0].get(day)
    if name is None:
        return False
    return any("(observed)" not in part and "substituted" not in part for part in name.split("; "))


def is_working_day(day: dt.date) -> bool:
    """True for a working day of the five-day week."""
    return _working(_checked(day))


def is_pre_holiday(day: dt.date) -> bool:
    """True for a working day shortened by one hour because a public holiday follows it."""
    if not is_working_day(day):
        return False
    # the day after 31 Dec is always 1 Jan, a holiday in every year: no decree needed for it
    if _public_holiday(day + _ONE_DAY):
        return True
    moved_to = _year(day.year)[2].get(day)
    return moved_to is not None and _public_holiday(moved_to + _ONE_DAY)


def _days(start: dt.date, end: dt.date) -> list[dt.date]:
    return [start + dt.timedelta(days=n) for n in range((end - start).days + 1)]


def working_days(start: dt.date, end: dt.date) -> list[dt.date]:
    """The working days in [start, end], both ends included."""
    return [d for d in _days(start, end) if is_working_day(d)]


def pre_holidays(start: dt.date, end: dt.date) -> list[dt.date]:
    """The pre-holiday (shortened) working days in [start, end], both ends included."""
    return [d for d in _days(start, end) if is_pre_holiday(d)]


def _norm_segments(start: dt.date, end: dt.date,
                   norms: list[tuple[dt.date, float]]) -> list[tuple[dt.date, dt.date, float]]:
    """Split [start, end] by change dates: each norm holds from its change date to the next.

    Before the first change date the first norm applies, so a norm whose change date falls
    after the period start (1C often records the change date of the current rate only) still
    covers the whole period up to the next change.
    """
    ordered = sorted(norms, key=lambda n: n[0])
    segments = []
    for i, (changed, week) in enumerate(ordered):
        seg_start = start if i == 0 else max(start, changed)
        seg_end = end if i == len(ordered) - 1 else min(end, ordered[i + 1][0] - _ONE_DAY)
        if seg_start <= seg_end:
            segments.append((seg_start, seg_end, week))
    return segments


def norm_hours(start: dt.date, end: dt.date, norms: list[tuple[dt.date, float]],
               hire: dt.date | None = None, dismissal: dt.date | None = None) -> float:
    """The working-time norm of [start, end] in hours, rounded to one decimal place.

    `norms` lists (changeDate, normWeek) pairs applied piecewise (see `_norm_segments`); the
    period is clipped to the hire and dismissal dates, and an empty remainder gives 0.0.
    """
    if not norms:
        raise ValueError("at least one (changeDate, normWeek) pair is needed")
    start = max(start, hire) if hire else start
    end = min(end, dismissal) if dismissal else end
    total = Decimal(0)
    for seg_start, seg_end, week in _norm_segments(start, end, norms):
        days = len(working_days(seg_start, seg_end))
        total += Decimal(str(week)) * days / 5 - len(pre_holidays(seg_start, seg_end))
    return float(total.quantize(Decimal("0.1"), rounding=ROUND_HALF_UP))
