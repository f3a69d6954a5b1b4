"""Breaks: switches that make the simulated sources disagree with themselves, day by day.

Faults damage single records; a break keeps every record well-formed and breaks a rule *between*
records or streams, the kind of fault only a reconciliation check or a schema contract catches.
Each break applies to the UTC days it is set for (every day when set without days):

- `interval_imbalance`: serviceGroupData's `notUniqueReceived` is 2 more than treated + missed.
- `intervals_disagree`: serviceGroupData claims 5 more treated contacts per interval than the
  agents handled (`notUnique*` and the unique counts alike, so each row's own invariants hold).
- `overlapping_statuses`: every fifth Work status has a 30-second Break inside it.
- `statuses_outside_logins`: a Training status from 60 to 30 minutes before a shift's first login.
- `calls_outside_logins`: one more contact 25 minutes before a shift's first login (the interval
  statistics count it too, so only the calls-within-logins rule breaks).
- `chat_time_exceeds_login`: agentChatsWorkTime reports a whole day (86,400,000 ms).
- `zero_norm_hours`: getNormHours answers 0 hours for every fifth employee it is asked about.
- `agent_missing_from_personnel`: /personnel leaves out the first agent (who still works, and
  whose history is still served), as when an account is moved out of every group.
- `schema_drift`: agentLoginData's logins carry a new field `loginSource`; agentCallsData's
  calls rename `endCall` to `callEnd` and carry a new `callId`.

Timeline breaks (statuses, logins, contacts) change the generated shifts themselves, so every
endpoint sees the same broken day; answer breaks rewrite one endpoint's JSON. Set them with
`POST /_sim/breaks {"kind": ..., "days": ["2026-11-10"]}` (`"clear": true` removes them all) or
`RunningSimulator.set_break`.
"""

from __future__ import annotations

import datetime as dt
import threading
from typing import Any

import orjson

from .contact_center.data import BREAK, TRAINING, WORK, Contact, Shift, Status

TIMELINE_KINDS = ("overlapping_statuses", "statuses_outside_logins", "calls_outside_logins")
ANSWER_KINDS = ("interval_imbalance", "intervals_disagree", "chat_time_exceeds_login", "zero_norm_hours",
                "schema_drift", "agent_missing_from_personnel")
KINDS = TIMELINE_KINDS + ANSWER_KINDS
FULL_DAY_MS = 86_400_000


class Breaks:
    """The breaks in force: kind -> the UTC days it applies to (None: every day)."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._days: dict[str, frozenset[dt.date] | None] = {}

    def set(self, kind: str, days: list[dt.date | str] | None = None) -> None:
        if kind not in KINDS:
            raise ValueError(f"unknown break {kind!r}; known: {', '.join(KINDS)}")
        chosen = None if days is None else frozenset(dt.date.fromisoformat(str(d)[:10]) for d in days)
        with self._lock:
            self._days[kind] = chosen

    def clear(self) -> None:
        with self._lock:
            self._days.clear()

    def __bool__(self) -> bool:
        with self._lock:
            return bool(self._days)

    def active(self, kind: str, day: dt.date | str | None = None) -> bool:
        with self._lock:
            if kind not in self._days:
                return False
            days = self._days[kind]
        if days is None:
            return True
        try:                      # a record damaged by the `corrupt` fault may carry any value here
            return dt.date.fromisoformat(str(day)[:10]) in days
        except ValueError:
            return False

    def describe(self) -> dict[str, list[str] | None]:
        with self._lock:
            return {k: None if v is None else sorted(d.isoformat() for d in v) for k, v in self._days.items()}

    # --- the timeline ---------------------------------------------------------------------

    def shift(self, shift: Shift, day: dt.date) -> Shift:
        """A generated shift with the timeline breaks of its day applied."""
        if not shift.sessions:
            return shift
        statuses, contacts = list(shift.statuses), list(shift.contacts)
        login = shift.sessions[0].login
        if self.active("overlapping_statuses", day):
            work = [s for s in statuses if s.state is WORK and s.end - s.start > 120]
            statuses += [Status(s.start + 60, s.start + 90, BREAK, None) for s in work[::5]]
        if self.active("statuses_outside_logins", day):
            statuses.append(Status(login - 3600, login - 1800, TRAINING, None))
        if self.active("calls_outside_logins", day) and contacts:
            group = contacts[0].group
            contacts.append(Contact(login - 1500, login - 1200, group, 5, 0, -1))
        statuses.sort(key=lambda s: (s.start, s.end))
        contacts.sort(key=lambda c: (c.start, c.end))
        return Shift(shift.sessions, tuple(statuses), tuple(contacts))

    # --- answers --------------------------------------------------------------------------

    def rewrite(self, system: str, path: str, body: bytes) -> bytes:
        """A 200 answer's body with the answer breaks of its records' days applied."""
        path = path.rstrip("/")
        rules = {("cc", "/personnel"): self._personnel,
                 ("cc", "/historic/serviceGroupData"): self._intervals,
                 ("cc", "/historic/agentChatsWorkTime"): self._chat_time,
                 ("cc", "/historic/agentLoginData"): self._logins,
                 ("cc", "/historic/agentCallsData"): self._calls,
                 ("onec", "/getNormHours"): self._norms}
        rule = rules.get((system, path))
        if rule is None or not body:
            return body
        return orjson.dumps(rule(orjson.loads(body)))

    def _personnel(self, payload: dict[str, Any]) -> dict[str, Any]:
        if self.active("agent_missing_from_personnel") and payload.get("agents"):
            first = min(a["id"] for a in payload["agents"])
            payload["agents"] = [a for a in payload["agents"] if a["id"] != first]
        return payload

    def _intervals(self, payload: list[dict[str, Any]]) -> list[dict[str, Any]]:
        for group in payload:
            for row in group.get("historicData") or []:
                if not isinstance(row.get("notUniqueReceived"), int):
                    continue
                if self.active("interval_imbalance", row.get("startInterval")):
                    row["notUniqueReceived"] += 2
                if self.active("intervals_disagree", row.get("startInterval")):
                    for key in ("notUniqueReceived", "notUniqueTreated", "receivedCalls", "treatedCalls"):
                        row[key] += 5
        return payload

    def _chat_time(self, payload: list[dict[str, Any]]) -> list[dict[str, Any]]:
        for row in payload:
            if self.active("chat_time_exceeds_login", row.get("workDate")):
                row["workTime"] = FULL_DAY_MS
        return payload

    def _logins(self, payload: list[dict[str, Any]]) -> list[dict[str, Any]]:
        for agent in payload:
            for login in agent.get("logins") or []:
                if self.active("schema_drift", login.get("loginDate")):
                    login["loginSource"] = "SSO"
        return payload

    def _calls(self, payload: list[dict[str, Any]]) -> list[dict[str, Any]]:
        for agent in payload:
            for call in agent.get("agentCalls") or []:
                if self.active("schema_drift", call.get("startCall")) and "endCall" in call:
                    call["callEnd"] = call.pop("endCall")
                    call["callId"] = f"{agent.get('agentId')}-{call.get('startCall')}"
        return payload

    def _norms(self, payload: list[dict[str, Any]]) -> list[dict[str, Any]]:
        agents = sorted({str(row.get("agentId") or row.get("agentID")) for row in payload})
        zeroed = set(agents[::5])
        for row in payload:
            if str(row.get("agentId") or row.get("agentID")) in zeroed and self.active("zero_norm_hours",
                                                                                         row.get("startDate")):
                row["normHours"] = 0
        return payload
