"""Contact-center timelines: login sessions, statuses and contacts of every agent.

Each agent's shift is generated from the world seed and the (agent, shift day) pair alone, so any
record can be produced without its neighbours and no answer depends on the order of requests.
A shift belongs to the UTC day it starts on and may run past midnight (night shifts start
20:00–23:00 UTC). Times are integer seconds since the Unix epoch, UTC.

A shift is one or two login sessions. Inside a session the agent alternates Ready and Work, with
breaks, one lunch and sometimes a training; statuses never overlap and short unrecorded gaps
occur between them. Every Work status holds the contacts handled in it: one call, or for a
CHATS group up to three chats that overlap each other. Missed contacts are extra customers
generated per (group, day) next to the treated ones.

Only shifts that start on a day of [config.start, config.end) and end before config.end exist.
"""

from __future__ import annotations

import datetime as dt
from dataclasses import dataclass
from functools import lru_cache
from typing import Iterable, NamedTuple

from ..world import Group, Person, World, rng_for

DAY = 86_400
EPOCH_ORDINAL = dt.date(1970, 1, 1).toordinal()
FRESH_CUSTOMER = -1          # a customer seen nowhere else; repeat customers are ids >= 0
REPEAT_CUSTOMERS = 50        # size of the per-group pool of customers who call several times
ANSWER_TARGET_SECONDS = 20   # "answered within the target wait time"


@dataclass(frozen=True, slots=True)
class State:
    """A status an agent can be in; `group_bound` statuses are sent with serviceId/groupId."""

    code: str
    name: str
    group_bound: bool


READY = State("Ready", "Ready", True)
WORK = State("Work", "Contact processing", True)
BREAK = State("Break", "Break", False)
# reason-coded statuses: code = status id + reason id, name = both names
BREAK_TECHNICAL = State("Break12", "Break Technical", False)
BREAK_PERSONAL = State("Break13", "Break Personal", False)
LUNCH = State("Lunch", "Lunch", False)
TRAINING = State("Training", "Training", False)
BREAKS = (BREAK, BREAK_TECHNICAL, BREAK_PERSONAL)


class Session(NamedTuple):
    login: int
    logout: int


class Status(NamedTuple):
    start: int
    end: int
    state: State
    group: Group | None


class Contact(NamedTuple):
    """A contact handled by an agent; `post` is the wrap-up after it, in seconds."""

    start: int
    end: int
    group: Group
    wait: int
    post: int
    customer: int


class Shift(NamedTuple):
    sessions: tuple[Session, ...]
    statuses: tuple[Status, ...]
    contacts: tuple[Contact, ...]


class GroupContact(NamedTuple):
    """One contact of a group as interval statistics see it (durations in ms)."""

    start: int
    end: int
    wait: int
    handled_ms: int
    post_ms: int
    treated: bool
    unique: bool


NO_SHIFT = Shift((), (), ())


@dataclass(frozen=True, slots=True)
class AgentProfile:
    """How one agent usually works: shift start and length, and the on/off day cycle."""

    person: Person
    groups: tuple[Group, ...]
    start_minute: int        # usual login, minutes after 00:00 UTC
    hours: int
    cycle: int               # days in the rota, e.g. 7 for five-two
    on_days: int
    phase: int

    def works_on(self, day: dt.date) -> bool:
        return (day.toordinal() + self.phase) % self.cycle < self.on_days


def day_start(day: dt.date) -> int:
    """Epoch seconds of 00:00 UTC of `day`."""
    return (day.toordinal() - EPOCH_ORDINAL) * DAY


def day_of(seconds: float) -> dt.date:
    """The UTC date of an epoch instant."""
    return dt.date.fromordinal(int(seconds // DAY) + EPOCH_ORDINAL)


_CLOCK_TEXT = tuple(f"T{s // 3600:02d}:{s // 60 % 60:02d}:{s % 60:02d}Z" for s in range(DAY))


@lru_cache(maxsize=4096)
def _date_text(day_number: int) -> str:
    return dt.date.fromordinal(day_number + EPOCH_ORDINAL).isoformat()


def iso_utc(seconds: int) -> str:
    """`2020-01-01T10:15:36Z` for integer epoch seconds, via lookup tables (this is hot)."""
    day_number, second = divmod(seconds, DAY)
    return _date_text(day_number) + _CLOCK_TEXT[second]


def chat_work_time(intervals: Iterable[tuple[dt.datetime, dt.datetime]],
                   period_start: dt.datetime, period_end: dt.datetime) -> dict[dt.date, int]:
    """Milliseconds per UTC day during which at least one chat was open, within the period.

    The union of the chat intervals is clipped to [period_start, period_end) and cut at 00:00 UTC;
    each piece counts for the UTC date it lies on. Days with no chat time are left out.
    """
    lo, hi = period_start.timestamp(), period_end.timestamp()
    pieces = sorted((max(s.timestamp(), lo), min(e.timestamp(), hi)) for s, e in intervals)
    merged: list[list[float]] = []
    for start, end in pieces:
        if end <= start:
            continue
        if merged and start <= merged[-1][1]:
            merged[-1][1] = max(merged[-1][1], end)
        else:
            merged.append([start, end])
    out: dict[dt.date, int] = {}
    for start, end in merged:
        cut = start
        while cut < end:     # bounded: each step advances to the next midnight
            midnight = (cut // DAY + 1) * DAY
            piece_end = min(end, midnight)
            day = day_of(cut)
            out[day] = out.get(day, 0) + round((piece_end - cut) * 1000)
            cut = piece_end
    return out


class Timeline:
    """Shifts of every agent and contacts of every group, generated lazily and cached (LRU)."""

    def __init__(self, world: World, cache_shifts: int = 8192, cache_days: int = 16, breaks=None):
        self.world = world
        self.breaks = breaks         # a `breaks.Breaks`: shifts broken on purpose, or None
        self.seed = world.config.seed
        self.first_day = world.config.start
        self.end_day = world.config.end
        self.period_end = day_start(world.config.end)
        self.profiles = {p.agent_id: _profile(self.seed, p, world) for p in world.agents}
        self.members = {g.id: tuple(a for a in self.profiles.values() if g in a.groups)
                        for g in world.groups}
        self.shift = lru_cache(maxsize=cache_shifts)(self._generate_shift)
        self.day_contacts = lru_cache(maxsize=cache_days)(self._generate_day_contacts)

    def forget(self) -> None:
        """Drop the cached shifts and days (after the breaks changed)."""
        self.shift.cache_clear()
        self.day_contacts.cache_clear()

    def days(self, lo: float, hi: float) -> list[dt.date]:
        """The UTC days of [lo, hi] that hold data."""
        first = max(day_of(lo), self.first_day)
        last = min(day_of(hi), self.end_day - dt.timedelta(days=1))
        return [first + dt.timedelta(days=n) for n in range((last - first).days + 1)]

    def shifts(self, agent_id: str, lo: float, hi: float) -> list[Shift]:
        """The shifts that may hold records in [lo, hi], oldest first (they never overlap)."""
        return [self.shift(agent_id, day) for day in self.days(lo - DAY, hi)]

    def _generate_shift(self, agent_id: str, day: dt.date) -> Shift:
        profile = self.profiles[agent_id]
        r = rng_for(self.seed, "cc-shift", agent_id, day.toordinal())
        if not profile.works_on(day) or r.random() < 0.04 or not profile.person.present_on(day):
            return NO_SHIFT
        login = day_start(day) + profile.start_minute * 60 + r.randint(-900, 900)
        logout = login + profile.hours * 3600 + r.randint(-1200, 1200)
        if logout >= self.period_end:
            return NO_SHIFT
        sessions = [Session(login, logout)]
        if r.random() < 0.3:     # logged out in the middle of the shift, e.g. a system restart
            cut = login + int((logout - login) * (0.35 + 0.3 * r.random()))
            sessions = [Session(login, cut), Session(cut + r.randint(300, 2400), logout)]
        pauses = _planned_pauses(r, login, logout)
        statuses: list[Status] = []
        contacts: list[Contact] = []
        for session in sessions:
            _fill_session(r, profile, session, pauses, statuses, contacts)
        shift = Shift(tuple(sessions), tuple(statuses), tuple(contacts))
        return self.breaks.shift(shift, day) if self.breaks is not None else shift

    def group_day(self, group_id: str, day: dt.date) -> tuple[GroupContact, ...]:
        """Treated and missed contacts of a group starting on a UTC day, by start time."""
        return self.day_contacts(day).get(group_id, ())

    def _generate_day_contacts(self, day: dt.date) -> dict[str, tuple[GroupContact, ...]]:
        """Contacts of every group starting on a UTC day: one pass over all agents' shifts."""
        lo, hi = day_start(day), day_start(day) + DAY
        treated: dict[str, list[Contact]] = {}
        for agent_id in self.profiles:
            for shift in self.shifts(agent_id, lo, lo):
                for c in shift.contacts:
                    if lo <= c.start < hi:
                        treated.setdefault(c.group.id, []).append(c)
        return {group_id: self._group_contacts(group_id, day, contacts)
                for group_id, contacts in sorted(treated.items())}

    def _group_contacts(self, group_id: str, day: dt.date,
                        treated: list[Contact]) -> tuple[GroupContact, ...]:
        """Add the group's missed contacts and mark each customer's first contact of the day."""
        lo, hi = day_start(day), day_start(day) + DAY
        treated.sort(key=lambda c: (c.start, c.end, c.customer))
        r = rng_for(self.seed, "cc-missed", group_id, day.toordinal())
        missed = []
        for c in treated:
            if r.random() < 0.12:
                start = min(max(c.start + r.randint(-300, 300), lo), hi - 1)
                customer = r.randrange(REPEAT_CUSTOMERS) if r.random() < 0.3 else FRESH_CUSTOMER
                missed.append((start, r.randint(5, 120), customer))
        rows = [(c.start, 0, c.end, c.wait, (c.end - c.start) * 1000, c.post * 1000, c.customer)
                for c in treated]
        rows += [(start, 1, start + wait, wait, 0, 0, customer) for start, wait, customer in missed]
        rows.sort()
        seen: set[int] = set()
        out = []
        for start, kind, end, wait, handled, post, customer in rows:
            unique = customer == FRESH_CUSTOMER or customer not in seen
            seen.add(customer)
            out.append(GroupContact(start, end, wait, handled, post, kind == 0, unique))
        return tuple(out)


def _profile(seed: int, person: Person, world: World) -> AgentProfile:
    r = rng_for(seed, "cc-profile", person.agent_id)
    by_id = {g.id: g for g in world.groups}
    night = r.random() < 0.15
    start_minute = (r.randint(20 * 60, 22 * 60 + 45) if night else r.randint(6 * 60, 13 * 60))
    cycle, on_days = (4, 2) if r.random() < 0.3 else (7, 5)
    return AgentProfile(person=person, groups=tuple(by_id[g] for g in person.group_ids),
                        start_minute=start_minute, hours=r.choice((10, 11, 12) if night else (8, 9, 10)),
                        cycle=cycle, on_days=on_days, phase=r.randrange(cycle))


def _planned_pauses(r, login: int, logout: int) -> list[tuple[int, int, State]]:
    """Breaks every two hours or so, one lunch near the middle, sometimes a training."""
    length = logout - login
    pauses = [(login + int(length * (0.45 + 0.1 * r.random())), r.randint(1800, 3600), LUNCH)]
    at = login + r.randint(5400, 8400)
    for _ in range(8):
        if at >= logout - 1800:
            break
        pauses.append((at, r.randint(600, 900), r.choice(BREAKS)))
        at += r.randint(5400, 8400)
    if r.random() < 0.1:
        pauses.append((login + int(length * 0.2), r.randint(1800, 3600), TRAINING))
    pauses.sort(key=lambda p: p[0])
    return pauses


def _fill_session(r, profile: AgentProfile, session: Session, pauses: list[tuple[int, int, State]],
                  statuses: list[Status], contacts: list[Contact]) -> None:
    """Append the statuses of one session (and the contacts of its Work statuses)."""
    home = profile.groups[0]
    cursor = session.login + r.randint(5, 90)
    limit = session.logout - r.randint(0, 30)
    pending = [p for p in pauses if session.login <= p[0] < session.logout]
    ready_next = True
    for _ in range(2000):           # a shift has a few hundred statuses at most
        if cursor >= limit - 20:
            break
        if pending and pending[0][0] <= cursor:
            _, length, state = pending.pop(0)
            end, group = min(cursor + length, limit), None
        elif ready_next:
            state, group = READY, home
            end = min(cursor + r.randint(15, 240), limit)
        else:
            state, group = WORK, r.choice(profile.groups)
            chats = group.channel_type == "CHATS"
            end = min(cursor + (r.randint(600, 2400) if chats else r.randint(150, 1100)), limit)
            _add_contacts(r, cursor, end, group, chats, contacts)
        statuses.append(Status(cursor, end, state, group))
        ready_next = state is not READY
        cursor = end + (r.randint(5, 120) if r.random() < 0.05 else 0)


def _add_contacts(r, start: int, end: int, group: Group, chats: bool, contacts: list[Contact]) -> None:
    """The contacts of one Work status: one call with wrap-up, or overlapping chats."""
    length = end - start
    if chats:
        starts = sorted([start] + [start + r.randint(0, length // 2) for _ in range(r.randint(0, 2))])
        for chat_start in starts:
            chat_end = min(end, chat_start + r.randint(180, 1500))
            contacts.append(Contact(chat_start, chat_end, group, _wait(r), 0, _customer(r)))
    else:
        wrap_up = r.randint(0, max(0, min(120, length // 3)))
        contacts.append(Contact(start, end - wrap_up, group, _wait(r), wrap_up, _customer(r)))


def _wait(r) -> int:
    return min(int(r.expovariate(1 / 25)), 600)


def _customer(r) -> int:
    return r.randrange(REPEAT_CUSTOMERS) if r.random() < 0.2 else FRESH_CUSTOMER
