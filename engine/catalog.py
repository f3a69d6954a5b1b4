"""The stream registry: every stream once, with its family, its suite and the ids its requests are cut by.

A stream is declared by the connector of its system (`connectors/contact_center.py`,
`connectors/onec.py`, `connectors/planning.py` for files); here it gets its family (the streams
a flow syncs together), its Great Expectations suite (`engine/quality/suites.py`, by the stream's
name) and its id source (the stream whose rows hold the ids its requests are cut by).
`tests/test_layout.py` checks that every declared stream has all of them.

A family also says which period a run covers when no dates are given: history streams follow
their watermark; structure and 1C personnel take today's picture; online streams take "now";
norm hours take the current year.
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Callable
from dataclasses import dataclass

from connectors import contact_center as cc
from connectors import onec, planning
from connectors.config.systems import CONTACT_CENTER_SYSTEM, ONEC_SYSTEM
from connectors.streams import Stream

UTC = dt.timezone.utc
Period = tuple[dt.datetime, dt.datetime]


def _day_start(moment: dt.datetime) -> dt.datetime:
    return moment.astimezone(UTC).replace(hour=0, minute=0, second=0, microsecond=0)


def today(now: dt.datetime) -> Period:
    return _day_start(now), _day_start(now) + dt.timedelta(days=1)


def instant(now: dt.datetime) -> Period:
    return now, now


def this_year(now: dt.datetime) -> Period:
    start = _day_start(now).replace(month=1, day=1)
    return start, start.replace(year=start.year + 1)


@dataclass(frozen=True)
class Family:
    """Streams synced by one flow, in dependency order."""

    name: str
    streams: tuple[Stream, ...]
    snapshot_period: Callable[[dt.datetime], Period] = today   # for streams without a cursor


FAMILIES: tuple[Family, ...] = (
    Family("cc_personnel", (cc.CC_SERVICES, cc.CC_GROUPS, cc.CC_AGENTS)),
    Family("cc_intervals", (cc.SERVICE_GROUP_INTERVALS,)),
    Family("cc_agent_activity", (cc.AGENT_STATUS_INTERVALS, cc.AGENT_LOGINS, cc.AGENT_CALLS,
                                 cc.AGENT_CHAT_WORK_TIME)),
    Family("cc_online", (cc.ONLINE_AGENT_STATUS, cc.ONLINE_GROUP_LOAD), instant),
    Family("onec_personnel", (onec.DEPARTMENTS, onec.EMPLOYEES, onec.VACATION_BALANCES)),
    Family("onec_norms", (onec.NORM_HOURS,), this_year),
    Family("onec_timesheet", (onec.TIMESHEET_DAYS, onec.TIMESHEET_SUMMARIES)),
)

STREAMS: dict[str, Stream] = {s.name: s for family in FAMILIES for s in family.streams}
# streams that arrive as files (wfm import); every API stream can be imported from a file too
FILE_STREAMS: dict[str, Stream] = {s.name: s for s in planning.STREAMS}
IMPORTABLE: dict[str, Stream] = {**STREAMS, **FILE_STREAMS}
FAMILY_OF: dict[str, Family] = {s.name: family for family in FAMILIES for s in family.streams}
DERIVED = ("agent_employee_map",)
# what a connector declares, per system; files have no system of their own
DECLARED: dict[str, tuple[Stream, ...]] = {CONTACT_CENTER_SYSTEM.name: cc.STREAMS, ONEC_SYSTEM.name: onec.STREAMS,
                                           "files": planning.STREAMS}
# `Stream.ids` → the stream whose landed rows (or today's answer) hold those ids
ID_SOURCES: dict[str, Stream] = {"agents": cc.CC_AGENTS, "groups": cc.CC_GROUPS, "employees": onec.EMPLOYEES}


@dataclass(frozen=True)
class Registered:
    """One stream's entry: its declaration, family (None for a file stream) and id source."""

    stream: Stream
    family: Family | None
    id_source: Stream | None

    def suite(self):
        """The stream's GX suite (imports Great Expectations)."""
        from engine.quality.suites import SUITES

        return SUITES[self.stream.name]


REGISTRY: dict[str, Registered] = {
    s.name: Registered(s, FAMILY_OF.get(s.name), ID_SOURCES[s.ids] if s.ids else None) for s in IMPORTABLE.values()}


def resolve(names: list[str]) -> list[Stream]:
    """Streams by stream or family name ("all" = every stream), in catalog order."""
    wanted: set[str] = set()
    for name in names:
        if name == "all":
            wanted.update(STREAMS)
        elif name in STREAMS:
            wanted.add(name)
        elif (family := next((f for f in FAMILIES if f.name == name), None)) is not None:
            wanted.update(s.name for s in family.streams)
        elif name not in DERIVED:
            known = ", ".join([*STREAMS, *(f.name for f in FAMILIES), *DERIVED])
            raise ValueError(f"unknown stream {name!r}; known: {known}")
    return [s for s in STREAMS.values() if s.name in wanted]
