"""The simulated contact-center platform: the pull API of `shared/source-api/contact-center.md`.

The endpoint handlers are here; the timelines they serve are `data.py`, the query parameters
they accept (and the 400s for the others) `queries.py`.

Selection rules, as the contract states them (bounds are instants, `A` = startDate, `B` = endDate):

- "start inside" (agentCallsData, serviceGroupData intervals) is half-open: A <= start < B.
- "start or end inside" (agentStatusData, agentLoginData) is closed: A <= start <= B or
  A <= end <= B. A record ending exactly at A, or starting exactly at B, comes back from this
  window and from its neighbour, which is the overlap a client must de-duplicate. A record that
  starts before A and ends after B is not returned by that window at all.
- History is what has already happened at `clock()`: statuses, sessions and contacts are served
  once they have ended; a contact counts in serviceGroupData once it has started.
- agentChatsWorkTime cuts days at 00:00 UTC (`workDate` is a UTC date).
- serviceGroupData intervals are aligned to 00:00 of startDate's day in startDate's own offset;
  `step` must be a whole number of seconds that divides a day.

A restatement adds late-recorded missed contacts at the start of an interval, so every step
that covers that instant sees the correction and the invariants keep holding.
"""

from __future__ import annotations

import datetime as dt
import threading
from typing import Callable

from ..base import Clock, SimResponse
from ..world import Person, World, rng_for, stable_seed
from .data import (
    ANSWER_TARGET_SECONDS,
    GroupContact,
    Status,
    Timeline,
    chat_work_time,
    day_of,
    day_start,
    iso_utc,
)
from .queries import BadRequest, check_query_length, error_response, instant, parse_ids, parse_period, parse_step

ON_DUTY = ("Work", "Ready")
EMPTY_IS_AN_ANSWER = {"/online/agentStatus"}      # nobody logged in is a state, not missing data


class ContactCenterSystem:
    """Answers the contact-center API from a seeded `World` at the instant `clock()`.

    `variants`: {"single_name"} sends each agent's full name in `name`.
    `repeat_ungrouped_share`: the share of agents whose statuses without a group are repeated
    for each of their groups instead of being sent in an entry without serviceId/groupId.
    `breaks`: a `breaks.Breaks` whose timeline breaks the generated shifts (see `breaks.py`).
    """

    def __init__(self, world: World, clock: Clock, *, variants: frozenset[str] = frozenset(),
                 repeat_ungrouped_share: float = 0.25, breaks=None):
        self.world = world
        self.clock = clock
        self.variants = variants
        self.timeline = Timeline(world, breaks=breaks)
        self.groups = {g.id: g for g in world.groups}
        seed = world.config.seed
        self.repeats_ungrouped = {
            a.agent_id: rng_for(seed, "cc-repeat", a.agent_id).random() < repeat_ungrouped_share
            for a in world.agents}
        self._revisions: dict[tuple[str, int], int] = {}
        self._lock = threading.Lock()
        self._routes: dict[str, Callable[[dict[str, str]], object]] = {
            "/personnel": self._personnel,
            "/historic/serviceGroupData": self._service_group_data,
            "/historic/agentStatusData": self._agent_status_data,
            "/historic/agentLoginData": self._agent_login_data,
            "/historic/agentCallsData": self._agent_calls_data,
            "/historic/agentChatsWorkTime": self._agent_chats_work_time,
            "/online/agentStatus": self._online_agent_status,
            "/online/groupsOnlineLoad": self._groups_online_load,
        }

    def handle(self, method: str, path: str, query: dict[str, str], body: bytes) -> SimResponse:
        path = path.rstrip("/") or "/"
        route = self._routes.get(path)
        if route is None:
            return error_response(404, "path", "Unknown endpoint", f"No endpoint {path}")
        if method != "GET":
            return error_response(405, "method", "Method not allowed", f"{path} accepts GET only")
        try:
            check_query_length(query)
            payload = route(query)
        except BadRequest as exc:
            return SimResponse.json(400, exc.body)
        if payload == [] and path not in EMPTY_IS_AN_ANSWER:
            return error_response(404, None, "No data", "No data for these parameters")
        return SimResponse.json(200, payload)

    # --- restatements -------------------------------------------------------------------

    def restate(self, group_id: str, interval_start: dt.datetime | str) -> int:
        """Record late corrections for the interval of a group starting then; the new revision."""
        key = (group_id, int(instant("startInterval", interval_start)))
        with self._lock:
            self._revisions[key] = self._revisions.get(key, 0) + 1
            return self._revisions[key]

    def revision(self, group_id: str, interval_start: dt.datetime | str) -> int:
        return self._revisions.get((group_id, int(instant("startInterval", interval_start))), 0)

    def group_contacts(self, group_ids: list[str], lo: float, hi: float) -> dict[str, list[GroupContact]]:
        """The current truth: contacts of each group starting in [lo, hi) and before clock()."""
        hi = min(hi, self._now())
        out: dict[str, list[GroupContact]] = {g: [] for g in group_ids}
        for day in self.timeline.days(lo, hi):      # days outermost: the day cache is small
            for group_id, contacts in out.items():
                contacts += [c for c in self.timeline.group_day(group_id, day) if lo <= c.start < hi]
        with self._lock:
            late = [(gid, start, rev) for (gid, start), rev in self._revisions.items()
                    if gid in out and lo <= start < hi]
        for group_id, start, rev in late:
            count = sum(1 + stable_seed(self.world.config.seed, "late", group_id, start, n) % 3
                        for n in range(rev))
            out[group_id] += [GroupContact(start, start + 30, 30, 0, 0, False, True)] * count
        return out

    # --- endpoints ----------------------------------------------------------------------

    def _personnel(self, query: dict[str, str]) -> dict:
        """Today's structure: agents who left and groups that were removed are not in it."""
        today = self.clock().date()
        services = [{"id": s.id, "name": s.name, "status": s.status,
                     "serviceGroups": [_group_json(g) for g in s.groups if g.present_on(today)]}
                    for s in self.world.services]
        agents = [self._agent_json(p) for p in self.world.agents if p.group_ids and p.present_on(today)]
        return {"services": services, "agents": agents}

    def roster(self) -> dict:
        """The simulator's truth about turnover (admin API): who left or joined, which groups went."""
        return {"departed": [{"id": p.agent_id, "left_on": p.left_on.isoformat(), "groups": list(p.group_ids)}
                             for p in self.world.agents if p.left_on],
                "hired": [{"id": p.agent_id, "hired_on": p.hired_on.isoformat()}
                          for p in self.world.agents if p.hired_on],
                "removed_groups": [{"id": g.id, "service_id": g.service_id, "removed_on": g.removed_on.isoformat()}
                                   for g in self.world.removed_groups]}

    def _agent_json(self, person: Person) -> dict:
        if "single_name" in self.variants:
            names = {"name": f"{person.last_name} {person.first_name} {person.second_name}",
                     "surname": " ", "secondName": " "}
        else:
            names = {"name": person.first_name, "surname": person.last_name, "secondName": person.second_name}
        agent = {"id": person.agent_id, **names}
        if person.agent_number_sent:
            agent["agentNumber"] = person.tab_n
        agent["loginSSO"] = person.login
        agent["agentGroups"] = [{"groupId": g} for g in person.group_ids]
        return agent

    def _service_group_data(self, query: dict[str, str]) -> list:
        lo, hi, start = parse_period(query)
        step = parse_step(query)
        offset = start.utcoffset().total_seconds()
        anchor = day_start(day_of(lo + offset)) - offset      # 00:00 of startDate's own day
        first = anchor + -(-(lo - anchor) // step) * step     # first interval start >= lo
        stop = anchor + -(-(hi - anchor) // step) * step      # first interval start >= hi
        known = [g for g in parse_ids(query, "groupId") if g in self.groups]
        out = []
        for group_id, contacts in self.group_contacts(known, first, stop).items():
            group = self.groups[group_id]
            intervals = _intervals(contacts, first, step)
            if intervals:
                out.append({"serviceId": group.service_id, "groupId": group.id, "historicData": intervals})
        return out

    def _agent_status_data(self, query: dict[str, str]) -> list:
        lo, hi, _ = parse_period(query)
        now = self._now()
        out = []
        for agent_id in self._agent_ids(query):
            selected = [s for shift in self.timeline.shifts(agent_id, lo, hi) for s in shift.statuses
                        if s.end <= now and (lo <= s.start <= hi or lo <= s.end <= hi)]
            out += self._status_entries(agent_id, selected)
        return out

    def _status_entries(self, agent_id: str, statuses: list[Status]) -> list[dict]:
        """Group-bound statuses per group; the others alone, or repeated in each group."""
        profile = self.timeline.profiles[agent_id]
        by_group: dict[str | None, list[dict]] = {}
        repeat = self.repeats_ungrouped[agent_id]
        for s in statuses:
            state = {"startDate": iso_utc(s.start), "endDate": iso_utc(s.end),
                     "stateCode": s.state.code, "stateName": s.state.name}
            if s.group is not None:
                by_group.setdefault(s.group.id, []).append(state)
            elif repeat:
                for g in profile.groups:
                    by_group.setdefault(g.id, []).append(state)
            else:
                by_group.setdefault(None, []).append(state)
        entries = []
        for group_id, states in by_group.items():
            if group_id is None:
                entries.append({"agentId": agent_id, "states": states})
            else:
                states.sort(key=lambda st: st["startDate"])
                entries.append({"serviceId": self.groups[group_id].service_id, "groupId": group_id,
                                "agentId": agent_id, "states": states})
        return entries

    def _agent_login_data(self, query: dict[str, str]) -> list:
        lo, hi, _ = parse_period(query)
        now = self._now()
        out = []
        for agent_id in self._agent_ids(query):
            logins = [{"loginDate": iso_utc(s.login), "logoutDate": iso_utc(s.logout),
                       "duration": (s.logout - s.login) * 1000}
                      for shift in self.timeline.shifts(agent_id, lo, hi) for s in shift.sessions
                      if s.logout <= now and (lo <= s.login <= hi or lo <= s.logout <= hi)]
            if logins:
                out.append({"agentId": agent_id, "logins": logins})
        return out

    def _agent_calls_data(self, query: dict[str, str]) -> list:
        lo, hi, _ = parse_period(query)
        now = self._now()
        out = []
        for agent_id in self._agent_ids(query):
            by_group: dict[str, list[dict]] = {}
            for shift in self.timeline.shifts(agent_id, lo, hi):
                for c in shift.contacts:
                    if lo <= c.start < hi and c.end <= now:
                        by_group.setdefault(c.group.id, []).append(
                            {"startCall": iso_utc(c.start), "endCall": iso_utc(c.end),
                             "duration": (c.end - c.start) * 1000})
            out += [{"agentId": agent_id, "serviceId": self.groups[g].service_id, "groupId": g,
                     "agentCalls": calls} for g, calls in by_group.items()]
        return out

    def _agent_chats_work_time(self, query: dict[str, str]) -> list:
        lo, hi, _ = parse_period(query)
        now = self._now()
        period = (_utc(lo), _utc(hi))
        out = []
        for agent_id in self._agent_ids(query):
            chats = [(_utc(c.start), _utc(c.end)) for shift in self.timeline.shifts(agent_id, lo, hi)
                     for c in shift.contacts if c.group.channel_type == "CHATS" and c.end <= now]
            for day, ms in sorted(chat_work_time(chats, *period).items()):
                out.append({"agentId": agent_id, "workDate": day.isoformat(), "workTime": ms})
        return out

    def _online_agent_status(self, query: dict[str, str]) -> list:
        """Agents in a status at clock(); an agent between two statuses is not listed."""
        return [{"agentId": agent_id, "stateCode": s.state.code, "stateName": s.state.name,
                 "startDate": iso_utc(s.start)}
                for agent_id, s in self._current_statuses().items()]

    def _groups_online_load(self, query: dict[str, str]) -> list:
        """Metrics since 00:00 UTC of clock()'s day, from the same contacts as serviceGroupData."""
        today = day_of(self._now())
        group_ids = (parse_ids(query, "groupId") if query.get("groupId") else
                     [g for g, group in self.groups.items() if group.present_on(today)])
        now = self._now()
        current = self._current_statuses()
        known = [g for g in group_ids if g in self.groups]
        out = []
        for group_id, so_far in self.group_contacts(known, day_start(day_of(now)), now).items():
            group = self.groups[group_id]
            upcoming = self.timeline.group_day(group_id, day_of(now)) if self.timeline.days(now, now) else ()
            answered = [c for c in so_far if c.treated]
            received = len(so_far)
            out.append({
                "serviceId": group.service_id, "groupId": group.id,
                "callNumber": sum(1 for c in upcoming if _waiting(c, now)),
                "operatorNumber": sum(1 for a in self.timeline.members[group_id]
                                      if (s := current.get(a.person.agent_id)) and s.state.code in ON_DUTY),
                "callReceived": received, "callAnswered": len(answered),
                "callAnsweredTst": sum(1 for c in answered if c.wait <= ANSWER_TARGET_SECONDS),
                "aht": sum(c.handled_ms for c in answered) // len(answered) if answered else 0,
                "awt": sum(c.wait for c in answered) * 1000 // len(answered) if answered else 0,
                "acd": round(100 * len(answered) / received, 4) if received else 0.0,
                "callProcessing": sum(1 for c in answered if c.start <= now < c.end),
            })
        return out

    # --- helpers ------------------------------------------------------------------------

    def _now(self) -> float:
        return self.clock().timestamp()

    def _agent_ids(self, query: dict[str, str]) -> list[str]:
        return [a for a in parse_ids(query, "agentId") if a in self.timeline.profiles]

    def _current_statuses(self) -> dict[str, Status]:
        now = self._now()
        current = {}
        for agent_id in self.timeline.profiles:
            for shift in self.timeline.shifts(agent_id, now, now):
                for s in shift.statuses:
                    if s.start <= now < s.end:
                        current[agent_id] = s
        return current


def _intervals(contacts: list[GroupContact], first: float, step: int) -> list[dict]:
    """Interval statistics of contacts, bucketed by start on a grid starting at `first`."""
    buckets: dict[int, list[int]] = {}
    for c in contacts:
        b = buckets.setdefault(int((c.start - first) // step), [0] * 6)
        if c.treated:
            b[0] += 1
            b[1] += c.unique
            b[4] += c.handled_ms
            b[5] += c.post_ms
        else:
            b[2] += 1
            b[3] += c.unique
    out = []
    for k in sorted(buckets):
        treated, u_treated, missed, u_missed, handled, post = buckets[k]
        start = int(first + k * step)
        out.append({"startInterval": iso_utc(start), "endInterval": iso_utc(start + step),
                    "notUniqueReceived": treated + missed, "notUniqueTreated": treated,
                    "notUniqueMissed": missed, "receivedCalls": u_treated + u_missed,
                    "treatedCalls": u_treated, "missCalls": u_missed,
                    "aht": handled // treated if treated else 0,
                    "postProcessing": post // treated if treated else 0})
    return out


def _waiting(c: GroupContact, now: float) -> bool:
    """In the queue now: a treated contact before its answer, a missed one before it hangs up."""
    return c.start - c.wait <= now < c.start if c.treated else c.start <= now < c.end


def _group_json(group) -> dict:
    out = {"id": group.id, "name": group.name, "status": group.status}
    if group.channel_type:
        out["channelType"] = group.channel_type
    return out


def _utc(seconds: float) -> dt.datetime:
    return dt.datetime.fromtimestamp(seconds, dt.timezone.utc)
