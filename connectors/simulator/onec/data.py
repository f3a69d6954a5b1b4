"""The 1C:ZUP side of the simulated world: departments, employees and their seeded timesheet.

Every value here is a pure function of the world's seed and the employee, so any request range
sees the same history. What the WFM sends (schedules, fact documents) is not here: it lives in
`OneCSystem` and is laid over this seeded base by `onec_timesheet`.

Choices a reader should know:
- Departments form two levels: one root per site ("Контакт-центр <site>") whose
  `parentDepartmentId` is the empty string, and 2-3 customer-service groups under each root.
  Employees belong to a group of their own site.
- The rate is already inside normWeek (1C's rule): rate 1 -> 40 (or 36, a shortened week),
  0.75 -> 30, 0.5 -> 20.
- A few employees are dismissed (finishwork inside the simulated period, shortly before it, or
  long before it) and a few are hired inside the simulated period.
- The seeded 1C schedule is the five-day week of the production calendar: normWeek / 5 hours a
  working day, one hour less on a pre-holiday day. "Evening" employees work until midnight, so
  two of those hours are night hours (Н). Vacations (ОТ) and sick leaves (Б) come in blocks of
  calendar days; an occasional overtime (С 2.75) or partial absence (НН 2) marks a working day.
"""

from __future__ import annotations

import datetime as dt
from dataclasses import dataclass
from functools import cached_property

import connectors.simulator.onec.calendar_ru as calendar_ru
from connectors.simulator.world import Person, World, guid_for, rng_for, stable_seed

Row = tuple[str, float]          # one timesheet row: (time type code, hours)

POSITIONS = ("Специалист", "Старший специалист", "Ведущий специалист", "Супервизор")
# (rate, normWeek, weight): the rate is already inside normWeek
RATES = ((1, 40, 0.72), (1, 36, 0.08), (0.75, 30, 0.12), (0.5, 20, 0.08))
EARLIEST_HIRE = dt.date(2014, 1, 1)
VACATION_DAYS_A_YEAR = 28


@dataclass(frozen=True)
class Department:
    id: str
    name: str
    parent_id: str               # "" for a root department
    site: str


@dataclass(frozen=True)
class Employee:
    """One employee record of 1C: the person plus HR facts 1C keeps about them."""

    person: Person
    department_id: str
    position: str
    position_change_date: dt.date
    startwork: dt.date
    finishwork: dt.date | None
    rate: float
    norm_week: float
    norm_week_change_date: dt.date
    sn: str
    db_id: str
    evening: bool                # works until midnight: two night hours a day
    vacation_base: float         # vacation balance (days) at the start of the simulated period

    @property
    def id(self) -> str:
        return self.person.employee_id

    @property
    def position_id(self) -> str:
        return guid_for("position", self.position)

    def employed_on(self, day: dt.date) -> bool:
        return self.startwork <= day and (self.finishwork is None or day <= self.finishwork)


def add_months(day: dt.date, months: int) -> dt.date:
    """The same day `months` later, clipped to the month's end (31 Jan + 1 = 28/29 Feb)."""
    index = day.year * 12 + day.month - 1 + months
    year, month = divmod(index, 12)
    for mday in (day.day, 30, 29, 28):
        try:
            return dt.date(year, month + 1, mday)
        except ValueError:
            continue
    raise AssertionError("unreachable")


def month_end(day: dt.date) -> dt.date:
    return add_months(day.replace(day=1), 1) - dt.timedelta(days=1)


class OneCRoster:
    """Departments and employees 1C holds for one world. Safe to share between threads."""

    def __init__(self, world: World):
        self.world = world
        self.seed = world.config.seed

    @cached_property
    def departments(self) -> tuple[Department, ...]:
        out, number = [], 0
        sites = dict.fromkeys(p.site for p in self.world.employees)
        for site in sites:
            root = Department(guid_for(self.seed, "department", site), f"Контакт-центр {site}", "", site)
            out.append(root)
            for g in range(rng_for(self.seed, "groups", site).choice((2, 3))):
                number += 1
                out.append(Department(guid_for(self.seed, "department", site, g),
                                      f"Группа обслуживания клиентов № {number}", root.id, site))
        return tuple(out)

    @cached_property
    def employees(self) -> tuple[Employee, ...]:
        people = self.world.employees
        # who is dismissed or newly hired is chosen by a seeded shuffle, so every world has some
        order = sorted(people, key=lambda p: stable_seed(self.seed, "hr-event", p.index))
        k = max(3, round(len(people) * 0.08))
        dismissed = {p.index: i for i, p in enumerate(order[:k])}
        hired = {p.index for p in order[k:k + max(2, round(len(people) * 0.08))]}
        return tuple(self._employee(p, dismissed.get(p.index), p.index in hired) for p in people)

    @cached_property
    def by_id(self) -> dict[str, Employee]:
        return {e.id: e for e in self.employees}

    def _employee(self, person: Person, dismissal_kind: int | None, new_hire: bool) -> Employee:
        cfg = self.world.config
        r = rng_for(self.seed, "employee", person.index)
        if new_hire:
            startwork = cfg.start + dt.timedelta(days=r.randint(0, cfg.days - 1))
        else:
            span = (cfg.start - EARLIEST_HIRE).days - 150
            startwork = EARLIEST_HIRE + dt.timedelta(days=r.randint(0, max(span, 0)))
        finishwork = None
        if dismissal_kind is not None:
            # inside the period / within the last month / long ago (gone from the answer)
            offset = (r.randint(0, cfg.days - 1), -r.randint(1, 27), -r.randint(40, 120))[dismissal_kind % 3]
            finishwork = cfg.start + dt.timedelta(days=offset)
        rate, norm_week, _ = r.choices(RATES, weights=[w for *_, w in RATES])[0]
        changed = startwork if new_hire or r.random() < 0.7 else startwork + dt.timedelta(days=r.randint(30, 120))
        children = [d for d in self.departments if d.site == person.site and d.parent_id]
        position = r.choices(POSITIONS, weights=(6, 3, 2, 1))[0]
        return Employee(
            person=person, department_id=r.choice(children).id, position=position,
            position_change_date=changed if position != POSITIONS[0] else startwork,
            startwork=startwork, finishwork=finishwork, rate=rate, norm_week=norm_week,
            norm_week_change_date=changed, sn=f"{r.randint(10**10, 10**11 - 1)}",
            db_id=f"{r.randint(10**11, 10**12 - 1)}", evening=r.random() < 0.2,
            vacation_base=round(r.uniform(0, 24), 2),
        )

    @cached_property
    def part_month_ids(self) -> frozenset[str]:
        """Employees with a part-month individual schedule already held in 1C (a few, never none).

        Chosen among employed agents, so a WFM that sends schedules meets the refusal.
        """
        candidates = [e for e in self.employees if e.finishwork is None and e.person.has_agent]
        order = sorted(candidates, key=lambda e: stable_seed(self.seed, "part-month", e.person.index))
        return frozenset(e.id for e in order[:max(1, round(len(candidates) * 0.05))])

    def listed(self, start: dt.date) -> list[Employee]:
        """Employees in a `/agents` answer: dismissed ones stay one month after finishwork."""
        return [e for e in self.employees if e.finishwork is None or add_months(e.finishwork, 1) >= start]

    def vacation_balances(self, employee: Employee, start: dt.date, end: dt.date) -> list[dict[str, object]]:
        """Vacation balance at each month end inside [start, end] and at `end`, while employed."""
        days, day = [], month_end(start)
        while day < end:
            days.append(day)
            day = month_end(day + dt.timedelta(days=1))
        rows = []
        for day in days + [end]:
            if not employee.employed_on(day):
                continue
            accrued = VACATION_DAYS_A_YEAR / 365 * (day - self.world.config.start).days
            rows.append({"date": day.isoformat(), "vacation": round(max(0.0, employee.vacation_base + accrued), 2)})
        return rows

    def absence(self, employee: Employee, day: dt.date) -> str | None:
        """ОТ or Б when a seeded vacation or sick-leave block covers `day`."""
        for code, chance, first_days, lengths in (("ОТ", 0.12, (1, 20), (5, 14)), ("Б", 0.08, (1, 25), (3, 7))):
            r = rng_for(self.seed, code, employee.person.index, day.year, day.month)
            happens, first, length = r.random() < chance, r.randint(*first_days), r.randint(*lengths)
            if happens and first <= day.day < first + length:
                return code
        return None

    def default_day(self, employee: Employee, day: dt.date) -> list[Row]:
        """The day of 1C's own schedule: Я (and Н for evening workers) or В 0."""
        if not calendar_ru.calendar_loaded(day.year) or not calendar_ru.is_working_day(day):
            return [("В", 0)]
        hours = employee.norm_week / 5 - (1 if calendar_ru.is_pre_holiday(day) else 0)
        if employee.evening:
            return [("Я", hours - 2), ("Н", 2)]
        return [("Я", hours)]

    def seeded_events(self, employee: Employee, day: dt.date) -> list[Row]:
        """Occasional overtime (С 2.75) or partial absence (НН 2) on a working day."""
        roll = rng_for(self.seed, "timesheet-event", employee.person.index, day.isoformat()).random()
        if roll < 0.04:
            return [("С", 2.75)]
        if roll < 0.06:
            return [("НН", 2)]
        return []
