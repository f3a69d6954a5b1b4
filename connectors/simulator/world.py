"""The simulated organisation shared by both source systems.

One seed gives one world: sites, services and groups of the contact center, and the people who
work there. The contact-center simulator turns people into agent accounts and the 1C simulator
turns them into employees, so that `agentNumber` = `tabN` and `loginSSO` = `Login` line up —
except for the deliberate mismatches a real installation has (agents with no employee record,
employees with no agent account, agents matched only by login).

Staff turnover (`departed`, `hired`, `removed_groups`, all 0 by default): agents who leave during
the history have shifts up to the day before `left_on` and vanish from `/personnel` that day; hired
agents appear on `hired_on`; removed groups (the home group of departed agents) vanish from
`/personnel` on `removed_on`. Their history stays in the historic endpoints, for whoever asks by id.

Everything here is a pure function of `SimConfig`; nothing depends on the order of requests.
"""

from __future__ import annotations

import datetime as dt
import hashlib
import random
import uuid
from dataclasses import dataclass, field
from functools import cached_property

CHANNEL_TYPES = ("INCOMING_CALLS", "CHATS", "OUTGOING_CALLS", "MAILS")
SITES = (("Москва", "Europe/Moscow"), ("Екатеринбург", "Asia/Yekaterinburg"),
         ("Новосибирск", "Asia/Novosibirsk"), ("Самара", "Europe/Samara"))
LAST_NAMES = ("Иванов", "Петров", "Сидоров", "Смирнов", "Кузнецов", "Попов", "Васильев",
              "Соколов", "Михайлов", "Новиков", "Фёдоров", "Морозов", "Волков", "Алексеев")
FIRST_NAMES = ("Никита", "Иван", "Анна", "Мария", "Ольга", "Дмитрий", "Сергей", "Елена",
               "Алексей", "Татьяна", "Павел", "Наталья", "Андрей", "Ирина")
SECOND_NAMES = ("Алексеевич", "Иванович", "Сергеевна", "Петровна", "Андреевич", "Олеговна")


def stable_seed(*parts: object) -> int:
    """A 64-bit seed derived from any parts, stable across processes (unlike hash())."""
    digest = hashlib.blake2b("|".join(map(str, parts)).encode(), digest_size=8).digest()
    return int.from_bytes(digest, "big")


def rng_for(*parts: object) -> random.Random:
    """A private random generator for one entity (agent, day, group ...)."""
    return random.Random(stable_seed(*parts))


def guid_for(*parts: object) -> str:
    """A deterministic 1C-style GUID."""
    return str(uuid.UUID(int=stable_seed(*parts) << 64 | stable_seed("guid", *parts)))


@dataclass(frozen=True)
class SimConfig:
    """Sizes, period and switches of one simulated world."""

    seed: int = 42
    services: int = 2                 # "sites/services"
    groups_per_service: int = 3       # channel types rotate through CHANNEL_TYPES
    agents: int = 40
    start: dt.date = field(default_factory=lambda: dt.date.today() - dt.timedelta(days=7))
    days: int = 8                     # history covers [start, start + days)
    unmatched_share: float = 0.05     # agents with no employee, and employees with no agent
    login_only_share: float = 0.05    # agents whose agentNumber is missing: match by login only
    departed: int = 0                 # agents who leave during the history (no employee record)
    hired: int = 0                    # agents who join during the history (no employee record)
    removed_groups: int = 0           # groups closed during the history; departed agents worked there
    id_seed: int | None = None        # seed of the tabN suffixes; two worlds sharing it share tabN

    @property
    def end(self) -> dt.date:
        return self.start + dt.timedelta(days=self.days)


@dataclass(frozen=True)
class Group:
    id: str
    service_id: str
    name: str
    status: str
    channel_type: str | None
    removed_on: dt.date | None = None   # gone from /personnel from this day on

    def present_on(self, day: dt.date) -> bool:
        return self.removed_on is None or day < self.removed_on


@dataclass(frozen=True)
class Service:
    id: str
    name: str
    status: str
    groups: tuple[Group, ...]


@dataclass(frozen=True)
class Person:
    """One human: maybe an agent account, maybe an employee, usually both."""

    index: int
    last_name: str
    first_name: str
    second_name: str
    tab_n: str
    login: str
    site: str
    timezone: str
    group_ids: tuple[str, ...]
    has_agent: bool
    has_employee: bool
    agent_number_sent: bool           # False: the CC has no agentNumber for this agent
    hired_on: dt.date | None = None   # first day in /personnel and of shifts; None: before the history
    left_on: dt.date | None = None    # first day gone from /personnel and without shifts

    def present_on(self, day: dt.date) -> bool:
        """In the contact center's roster (and working) on `day`."""
        return (self.hired_on is None or day >= self.hired_on) and (self.left_on is None or day < self.left_on)

    @property
    def agent_id(self) -> str:
        return str(1000 + self.index)

    @property
    def employee_id(self) -> str:
        return guid_for("employee", self.index)


class World:
    """Structure and people of one seed. Cheap to build, safe to share between threads."""

    def __init__(self, config: SimConfig):
        self.config = config

    @cached_property
    def services(self) -> tuple[Service, ...]:
        out = []
        n = 0
        for s in range(self.config.services):
            sid = str(s + 1)
            groups = []
            for g in range(self.config.groups_per_service):
                n += 1
                channel = CHANNEL_TYPES[g % len(CHANNEL_TYPES)]
                status = "INACTIVE" if (g == self.config.groups_per_service - 1 and g > 1) else "ACTIVE"
                groups.append(Group(id=f"{sid}-{g + 1}", service_id=sid, name=f"Group {n} {channel.title()}",
                                    status=status, channel_type=channel if n % 5 else None))
            for k in range(s, self.config.removed_groups, self.config.services):
                groups.append(Group(id=f"{sid}-x{k + 1}", service_id=sid, name=f"Closed group {k + 1}",
                                    status="ACTIVE", channel_type="INCOMING_CALLS",
                                    removed_on=self._turnover_day("group-removed", k, late=True)))
            out.append(Service(id=sid, name=f"Service {sid}", status="ACTIVE", groups=tuple(groups)))
        return tuple(out)

    @cached_property
    def groups(self) -> tuple[Group, ...]:
        return tuple(g for s in self.services for g in s.groups)

    @cached_property
    def removed_groups(self) -> tuple[Group, ...]:
        return tuple(g for g in self.groups if g.removed_on is not None)

    def _turnover_day(self, kind: str, n: int, late: bool = False) -> dt.date:
        """A day strictly inside the history: a departure after two days of history at least, a
        hire from the second day on, a removed group on the last day (after its agents left)."""
        cfg = self.config
        if late:
            return cfg.end - dt.timedelta(days=1)
        first = 2 if kind == "left" else 1
        return cfg.start + dt.timedelta(days=first + stable_seed(cfg.seed, kind, n) % max(1, cfg.days - 1 - first))

    @cached_property
    def people(self) -> tuple[Person, ...]:
        cfg = self.config
        groups = [g for g in self.groups if g.status == "ACTIVE" and g.removed_on is None] or list(self.groups)
        extra_employees = max(1, round(cfg.agents * cfg.unmatched_share))
        out = []
        for i in range(cfg.agents + extra_employees):
            r = rng_for(cfg.seed, "person", i)
            site, tz = SITES[i % len(SITES)]
            is_agent = i < cfg.agents
            no_employee = is_agent and r.random() < cfg.unmatched_share
            home = groups[i % len(groups)]
            # most agents have one group; some have a second one of the same service
            same_service = [g for g in groups if g.service_id == home.service_id and g.id != home.id]
            member = (home.id,) + ((same_service[0].id,) if same_service and r.random() < 0.3 else ())
            names = r.choice(LAST_NAMES), r.choice(FIRST_NAMES), r.choice(SECOND_NAMES)
            tab_suffix = r.randint(10, 99)
            if cfg.id_seed is not None:      # another world's seed, the same tabN (colliding id spaces)
                tab_suffix = rng_for(cfg.id_seed, "tab_n", i).randint(10, 99)
            out.append(Person(
                index=i, last_name=names[0], first_name=names[1], second_name=names[2],
                tab_n=f"{100 + i}-{tab_suffix}",
                login=f"u{i:05d}", site=site, timezone=tz, group_ids=member,
                has_agent=is_agent, has_employee=not no_employee,
                agent_number_sent=not (is_agent and r.random() < cfg.login_only_share),
            ))
        return tuple(out) + self._turnover(len(out), groups)

    def _turnover(self, first_index: int, groups: list[Group]) -> tuple[Person, ...]:
        """Departed agents (home group: a removed group, if any) and hires, after everyone else."""
        cfg = self.config
        out = []
        closed = self.removed_groups
        for n in range(cfg.departed + cfg.hired):
            i = first_index + n
            r = rng_for(cfg.seed, "turnover", i)
            site, tz = SITES[i % len(SITES)]
            left = n < cfg.departed
            home = closed[n % len(closed)] if left and closed else groups[i % len(groups)]
            out.append(Person(
                index=i, last_name=r.choice(LAST_NAMES), first_name=r.choice(FIRST_NAMES),
                second_name=r.choice(SECOND_NAMES), tab_n=f"{100 + i}-{r.randint(10, 99)}",
                login=f"u{i:05d}", site=site, timezone=tz, group_ids=(home.id,), has_agent=True,
                has_employee=False, agent_number_sent=True,
                left_on=self._turnover_day("left", n) if left else None,
                hired_on=None if left else self._turnover_day("hired", n)))
        return tuple(out)

    @property
    def agents(self) -> tuple[Person, ...]:
        return tuple(p for p in self.people if p.has_agent)

    @property
    def employees(self) -> tuple[Person, ...]:
        return tuple(p for p in self.people if p.has_employee)
