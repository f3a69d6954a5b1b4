"""The Russian production calendar against the official figures (the contract's 2018 table)."""

from __future__ import annotations

import datetime as dt

import pytest

from connectors.simulator.onec import calendar_ru
from connectors.simulator.onec.calendar_ru import CalendarNotLoaded, norm_hours

D = dt.date

# (start, end, normWeek) -> hours: the reference table of /work/shared/source-api/onec-zup.md
REFERENCE_2018 = [
    (D(2018, 1, 1), D(2018, 12, 31), 40, 1970), (D(2018, 1, 1), D(2018, 12, 31), 36, 1772.4),
    (D(2018, 1, 1), D(2018, 12, 31), 30, 1476),
    (D(2018, 4, 1), D(2018, 12, 31), 40, 1524), (D(2018, 4, 1), D(2018, 12, 31), 36, 1371.2),
    (D(2018, 6, 29), D(2018, 12, 31), 40, 1047), (D(2018, 6, 29), D(2018, 12, 31), 36, 942.2),
    (D(2018, 1, 3), D(2018, 5, 21), 40, 708), (D(2018, 1, 3), D(2018, 5, 21), 36, 636.8),
]


@pytest.mark.parametrize(("start", "end", "week", "hours"), REFERENCE_2018)
def test_reference_table_2018(start: dt.date, end: dt.date, week: int, hours: float) -> None:
    assert norm_hours(start, end, [(start, week)]) == hours


def test_reference_table_day_counts() -> None:
    counts = {(D(2018, 4, 1), D(2018, 12, 31)): (191, 4), (D(2018, 6, 29), D(2018, 12, 31)): (131, 1),
              (D(2018, 1, 3), D(2018, 5, 21)): (89, 4)}
    for (start, end), (days, shortened) in counts.items():
        assert len(calendar_ru.working_days(start, end)) == days
        assert len(calendar_ru.pre_holidays(start, end)) == shortened


def test_2018_has_247_working_days_and_6_pre_holidays() -> None:
    assert len(calendar_ru.working_days(D(2018, 1, 1), D(2018, 12, 31))) == 247
    assert calendar_ru.pre_holidays(D(2018, 1, 1), D(2018, 12, 31)) == [
        D(2018, 2, 22), D(2018, 3, 7), D(2018, 4, 28), D(2018, 5, 8), D(2018, 6, 9), D(2018, 12, 29)]


def test_transfers_and_observed_days() -> None:
    assert calendar_ru.is_working_day(D(2018, 4, 28))          # a Saturday made a working day
    assert not calendar_ru.is_working_day(D(2018, 4, 30))      # ... its day off
    assert not calendar_ru.is_working_day(D(2018, 11, 5))      # Unity Day (observed)
    assert not calendar_ru.is_pre_holiday(D(2018, 11, 2))      # before a weekend, not a holiday
    assert not calendar_ru.is_pre_holiday(D(2018, 2, 23))      # a holiday is not a working day


@pytest.mark.parametrize(("year", "days", "hours"), [
    (2019, 247, 1970), (2020, 248, 1979), (2021, 247, 1972), (2022, 247, 1973),
    (2023, 247, 1973), (2024, 248, 1979), (2025, 247, 1972)])
def test_official_yearly_norms(year: int, days: int, hours: int) -> None:
    """2024 shows both transfer cases: Sat 2 Nov is shortened, Sat 27 Apr and 28 Dec are not."""
    assert len(calendar_ru.working_days(D(year, 1, 1), D(year, 12, 31))) == days
    assert norm_hours(D(year, 1, 1), D(year, 12, 31), [(D(year, 1, 1), 40)]) == hours


def test_norms_apply_piecewise_from_their_change_dates() -> None:
    year = (D(2018, 1, 1), D(2018, 12, 31))
    split = norm_hours(*year, [(D(2018, 7, 1), 36), (D(2018, 1, 1), 40)])
    assert split == norm_hours(D(2018, 1, 1), D(2018, 6, 30), [(D(2018, 1, 1), 40)]) + \
        norm_hours(D(2018, 7, 1), D(2018, 12, 31), [(D(2018, 7, 1), 36)])
    # before the first change date the first norm applies
    assert norm_hours(*year, [(D(2018, 6, 1), 40)]) == 1970


def test_period_is_clipped_to_hire_and_dismissal() -> None:
    year = (D(2018, 1, 1), D(2018, 12, 31))
    assert norm_hours(*year, [(D(2018, 1, 1), 40)], hire=D(2018, 4, 1)) == 1524
    assert norm_hours(*year, [(D(2018, 1, 1), 40)], hire=D(2018, 1, 3), dismissal=D(2018, 5, 21)) == 708
    assert norm_hours(*year, [(D(2018, 1, 1), 40)], dismissal=D(2017, 12, 31)) == 0.0


def test_unknown_years_are_not_loaded() -> None:
    assert calendar_ru.calendar_loaded(2018)
    assert not calendar_ru.calendar_loaded(calendar_ru.LAST_YEAR + 1)
    with pytest.raises(CalendarNotLoaded):
        calendar_ru.is_working_day(D(calendar_ru.LAST_YEAR + 1, 3, 3))
    with pytest.raises(ValueError):
        norm_hours(D(2018, 1, 1), D(2018, 1, 31), [])
