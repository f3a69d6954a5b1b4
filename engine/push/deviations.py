"""The `deviations` dataset: per employee and day, planned time against actual presence.

Plan comes from `planned_shifts` (net of breaks, split day/night as in `engine.push.schedules`), fact
from `agent_logins` of every agent `agent_employee_map` links to the employee (overlapping
sessions of two accounts count once). Fact is cut into 15-minute slots aligned to the quarter
hour — exactly the `loginfo` sendFactWorkTime carries — and a slot is night when it starts
between 22:00 and 06:00 local time, as 1C counts it.

Which day presence belongs to: a slot inside a planned shift belongs to that shift's day (so a
night shift's morning hours stay with the evening it started); any other slot belongs to the
local day its login session started.

Each day is classified the way 1C will document it (the contract's table):
plan 0 and fact > 0 → РВ (day hours) and РВН (night hours); fact < plan → НН (plan − fact);
fact > plan → С (fact − plan); equal → no deviation, no row. Days outside the employment are
left out, and so are employees without an agent account (no logins is no evidence of absence).

Deviations are built per site, inside its pairing only: the site's plans, the logins of its
contact center's agents, the map of its agents to the employees of its 1C base (ids collide
across connections). Each row carries its `site`.

A supervisor confirms a row (`wfm deviations confirm`); the confirmation holds for the content it
saw: if a rebuild changes the row, it must be confirmed again.
"""

from __future__ import annotations

import datetime as dt
import uuid
from collections import defaultdict

import orjson
import psycopg
import pyarrow as pa

from connectors import contact_center, onec, planning
from connectors.records import Field
from connectors.streams import Request, Stream, iso
from engine.derived import AGENT_EMPLOYEE_MAP, DEFAULT_SITE, Pairing
from engine.landing import lake, ledger, warehouse
from engine.push.schedules import MS_PER_HOUR, is_night, local_day, local_midnight, payload_hash, shift_hours
from engine.zones import UnknownArea, area_timezones, zone_of_area

UTC = dt.timezone.utc
SLOT = dt.timedelta(minutes=15)
SLOT_MS = 900_000
CODES = ("РВ", "РВН", "НН", "С")        # the time types a sendFactWorkTime document can carry

DEVIATIONS = Stream(
    name="deviations", system="derived", endpoint="derived", request=lambda w: Request("GET", ""),
    key=("employee_id", "work_date"), partition="work_date", window=None,
    fields=(Field("employee_id", "employee_id"), Field("work_date", "work_date", "date"),
            Field("timezone", "timezone"), Field("agent_ids", "agent_ids", required=False),
            Field("plan_ms", "plan_ms", "int"), Field("plan_night_ms", "plan_night_ms", "int"),
            Field("fact_ms", "fact_ms", "int"), Field("fact_night_ms", "fact_night_ms", "int"),
            Field("time_types", "time_types"), Field("deviation_hours", "deviation_hours", "float"),
            Field("rows", "rows", "json"), Field("loginfo", "loginfo", "json"),
            Field("date_start", "date_start", "timestamp"), Field("content_hash", "content_hash")),
)
CONFIRMATION = """ALTER TABLE wfm.deviations ADD COLUMN IF NOT EXISTS confirmed boolean NOT NULL DEFAULT false,
  ADD COLUMN IF NOT EXISTS confirmed_hash text, ADD COLUMN IF NOT EXISTS confirmed_by text,
  ADD COLUMN IF NOT EXISTS confirmed_at timestamptz"""


def classify(plan_day_ms: int, plan_night_ms: int, fact_day_ms: int, fact_night_ms: int) -> list[tuple[str, float]]:
    """The rows of the document 1C will create for a day, [] when fact equals plan."""
    planned = round(plan_day_ms / MS_PER_HOUR, 2) + round(plan_night_ms / MS_PER_HOUR, 2)
    fact = round((fact_day_ms + fact_night_ms) / MS_PER_HOUR, 2)
    if planned == 0 and fact > 0:
        rows = [("РВ", round(fact_day_ms / MS_PER_HOUR, 2)), ("РВН", round(fact_night_ms / MS_PER_HOUR, 2))]
        return [r for r in rows if r[1] > 0]
    if fact < planned:
        return [("НН", round(planned - fact, 2))]
    if fact > planned:
        return [("С", round(fact - planned, 2))]
    return []


def merge(sessions: list[tuple[dt.datetime, dt.datetime]]) -> list[tuple[dt.datetime, dt.datetime]]:
    """The union of login sessions, as disjoint intervals in time order."""
    out: list[list[dt.datetime]] = []
    for start, end in sorted(s for s in sessions if s[1] > s[0]):
        if out and start <= out[-1][1]:
            out[-1][1] = max(out[-1][1], end)
        else:
            out.append([start, end])
    return [(a, b) for a, b in out]


def presence_slots(sessions, shifts, tz: str) -> dict[dt.date, dict[dt.datetime, int]]:
    """Presence per day and 15-minute slot start, in ms, attributed to days as described above."""
    days: dict[dt.date, dict[dt.datetime, int]] = defaultdict(lambda: defaultdict(int))
    for start, end in merge(sessions):
        home = local_day(start, tz)
        epoch = dt.datetime(2000, 1, 1, tzinfo=UTC)
        slot = epoch + SLOT * ((start - epoch) // SLOT)
        while slot < end:
            lo, hi = max(start, slot), min(end, slot + SLOT)
            day = next((d for d, s, e, *_ in shifts if s <= lo < e), home)
            days[day][slot] += int((hi - lo) / dt.timedelta(milliseconds=1))
            slot += SLOT
    return days


def day_rows(employee_id: str, tz: str, agent_ids: str, shifts: list, sessions: list,
             first: dt.date, last: dt.date, hired: dt.date | None, dismissed: dt.date | None) -> list[dict]:
    """The deviation rows of one employee for the days [first, last]."""
    slots = presence_slots(sessions, shifts, tz)
    plans: dict[dt.date, list[int]] = defaultdict(lambda: [0, 0])
    starts: dict[dt.date, dt.datetime] = {}
    for day, start, end, pause in shifts:
        daily, night = shift_hours(start, end, pause, tz)
        plans[day][0] += daily
        plans[day][1] += night
        starts[day] = min(starts.get(day, start), start)
    out = []
    for day in sorted(set(plans) | set(slots)):
        if not first <= day <= last or (hired and day < hired) or (dismissed and day > dismissed):
            continue
        present = [(s, min(ms, SLOT_MS)) for s, ms in sorted(slots.get(day, {}).items()) if ms]
        night_ms = sum(ms for s, ms in present if is_night(s, tz))
        fact_ms = sum(ms for _, ms in present)
        rows = classify(*plans[day], fact_ms - night_ms, night_ms)  # type: ignore[call-arg]
        if not rows:
            continue
        loginfo = [{"start": iso(s), "time": ms} for s, ms in present]
        date_start = min(([starts[day]] if day in starts else []) + [s for s, _ in present[:1]])
        record = {"employee_id": employee_id, "work_date": day, "timezone": tz, "agent_ids": agent_ids,
                  "plan_ms": sum(plans[day]), "plan_night_ms": plans[day][1], "fact_ms": fact_ms,
                  "fact_night_ms": night_ms, "time_types": "+".join(code for code, _ in rows),
                  "deviation_hours": round(sum(h for _, h in rows), 2),
                  "rows": orjson.dumps([{"timetype": c, "hours": h} for c, h in rows]).decode(),
                  "loginfo": orjson.dumps(loginfo).decode(), "date_start": max(date_start, local_midnight(day, tz))}
        record["content_hash"] = payload_hash({k: str(v) for k, v in record.items()})
        out.append(record)
    return out


# each query reads one pairing: the site's plans and map, its contact center's logins, its 1C's employees
SHIFTS = """SELECT s.employee_id, s.shift_start, s.shift_end, coalesce(s.unpaid_break_minutes, 0)
            FROM wfm.planned_shifts s WHERE s.site = %s AND s.shift_start >= %s AND s.shift_start < %s"""
SESSIONS = """SELECT m.employee_id, m.agent_id, l.login_at, l.logout_at FROM wfm.agent_logins l
              JOIN wfm.agent_employee_map m ON m.agent_id = l.agent_id AND m.matched_by <> 'unmatched'
                AND m.site = %s
              WHERE l.source = %s AND l.logout_at > %s AND l.login_at < %s AND l.logout_at IS NOT NULL"""
EMPLOYMENT = "SELECT employee_id, area, start_work, finish_work FROM wfm.employees WHERE source = %s"
WITH_AGENT = """SELECT DISTINCT employee_id FROM wfm.agent_employee_map WHERE matched_by <> 'unmatched'
                AND site = %s"""


def compute(conn: psycopg.Connection, first: dt.date, last: dt.date,
            unplaced: dict[str, str] | None = None, pairing: Pairing = DEFAULT_SITE) -> list[dict]:
    """Every deviation of one site's days [first, last] from its landed plan, logins and agent map.
    An employee whose area has no time zone gets none (their night hours cannot be told); the
    reason goes to `unplaced`."""
    site, contact_center_name, onec_name = pairing
    lo = dt.datetime.combine(first - dt.timedelta(days=1), dt.time(), UTC)
    hi = dt.datetime.combine(last + dt.timedelta(days=2), dt.time(), UTC)
    mapping = area_timezones()
    staff = {e: (area, hired, dismissed) for e, area, hired, dismissed in conn.execute(EMPLOYMENT, (onec_name,))}
    shifts, sessions, agents = defaultdict(list), defaultdict(list), defaultdict(set)
    for employee_id, start, end, pause in conn.execute(SHIFTS, (site, lo, hi)):
        shifts[employee_id].append((start, end, pause))
    for employee_id, agent_id, login_at, logout_at in conn.execute(
            SESSIONS, (site, contact_center_name, lo - dt.timedelta(days=1), hi)):
        sessions[employee_id].append((login_at, logout_at))
        agents[employee_id].add(agent_id)
    out = []
    # without an agent account there is no fact to compare: absence is not inferred from silence
    with_agent = {r[0] for r in conn.execute(WITH_AGENT, (site,))}
    for employee_id in sorted((set(shifts) | set(sessions)) & with_agent):
        area, hired, dismissed = staff.get(employee_id, (None, None, None))
        if employee_id not in staff:
            if unplaced is not None:
                unplaced[employee_id] = "not in wfm.employees (sync onec_personnel first), so the time zone is unknown"
            continue
        try:
            tz = zone_of_area(area, mapping)
        except UnknownArea as exc:
            if unplaced is not None:
                unplaced[employee_id] = str(exc)
            continue
        dated = sorted((local_day(s, tz), s, e, p) for s, e, p in shifts[employee_id])
        out += day_rows(employee_id, tz, ",".join(sorted(agents[employee_id])), dated, sessions[employee_id],
                        first, last, hired, dismissed)
    return out


def ensure_tables(conn: psycopg.Connection) -> None:
    for stream in (planning.PLANNED_SHIFTS, onec.EMPLOYEES, contact_center.AGENT_LOGINS, AGENT_EMPLOYEE_MAP,
                   DEVIATIONS):
        warehouse.ensure_table(conn, stream)
    with conn.transaction():
        conn.execute("SELECT pg_advisory_xact_lock(hashtext('wfm-ddl'))")
        if not conn.execute("""SELECT 1 FROM information_schema.columns WHERE table_schema = 'wfm'
                               AND table_name = 'deviations' AND column_name = 'confirmed_at'""").fetchone():
            conn.execute(CONFIRMATION)      # only when missing: ALTER TABLE takes an exclusive lock
    ledger.ensure_meta(conn)


def build_deviations(database_url: str, lake_path: str, first: dt.date, last: dt.date,
                     sites: list[Pairing] | tuple[Pairing, ...] = (DEFAULT_SITE,)) -> dict[str, int | str]:
    """Rebuild the deviations of [first, last], site by site; an unchanged row keeps its lineage and
    confirmation. A site without a contact center or a 1C base has none.

    A row whose content changed loses its confirmation; rows that are no longer deviations go.
    Days the incremental `agent_logins` sync of the site's contact center has not fully landed
    (its watermark) are left out.
    """
    out: dict[str, int | str] = {}
    unplaced: dict[str, str] = {}
    with psycopg.connect(database_url, autocommit=True) as conn:    # each site's rebuild: a transaction of its own
        ensure_tables(conn)
        for pairing in sites:
            if pairing[1] is None or pairing[2] is None:
                continue
            for key, value in _build_site(conn, lake_path, first, last, pairing, unplaced).items():
                if key == "through":
                    out[key] = min(str(out.get(key, value)), str(value))
                else:
                    out[key] = int(out.get(key, 0)) + int(value)
    out.setdefault("deviations", 0)
    out.setdefault("through", str(last))
    if unplaced:
        employee, why = next(iter(sorted(unplaced.items())))
        out.update(unknown_area=len(unplaced), unknown_area_example=f"employee {employee}: {why}")
    return out


def _build_site(conn: psycopg.Connection, lake_path: str, first: dt.date, last: dt.date, pairing: Pairing,
                unplaced: dict[str, str]) -> dict[str, int | str]:
    """One site's rebuild, in one transaction, and its lake partitions published."""
    site, contact_center_name = pairing[0], str(pairing[1])
    landed = ledger.watermark(conn, contact_center.AGENT_LOGINS.name, contact_center_name)
    if landed is not None:
        last = min(last, (landed.astimezone(UTC) - dt.timedelta(days=1)).date())
    if last < first:
        return {"deviations": 0, "through": str(last)}
    records = compute(conn, first, last, unplaced, pairing)
    run_id = uuid.uuid4()
    with conn.transaction():
        table = pa.Table.from_pylist(records, DEVIATIONS.schema)
        counts = warehouse.upsert(conn, DEVIATIONS, table, run_id, dt.datetime.now(UTC), site)
        stale = conn.execute(
            """DELETE FROM wfm.deviations d WHERE d.site = %s AND d.work_date BETWEEN %s AND %s AND NOT EXISTS (
               SELECT 1 FROM unnest(%s::text[], %s::date[]) AS k(e, w) WHERE k.e = d.employee_id
               AND k.w = d.work_date)""",
            (site, first, last, [r["employee_id"] for r in records], [r["work_date"] for r in records])).rowcount
        unconfirmed = conn.execute("""UPDATE wfm.deviations SET confirmed = false WHERE site = %s AND confirmed
                                      AND confirmed_hash IS DISTINCT FROM content_hash""", (site,)).rowcount
        days = [first + dt.timedelta(days=n) for n in range((last - first).days + 1)]
        ledger.mark_partitions(conn, DEVIATIONS.name, {lake.owned_partition(DEVIATIONS, site, d) for d in days},
                               run_id)
    lake.publish(conn, DEVIATIONS, lake_path)
    return {"deviations": len(records), "inserted": counts.inserted, "updated": counts.updated, "removed": stale,
            "unconfirmed_by_change": unconfirmed, "through": str(last)}


def confirm(conn: psycopg.Connection, by: str, employee_id: str | None = None, day: dt.date | None = None,
            first: dt.date | None = None, last: dt.date | None = None, site: str | None = None) -> int:
    """Confirm one deviation (employee and day) or every unconfirmed one (optionally within days),
    of every site or of one; one employee's day held by two sites (the ids collide) needs the site."""
    ensure_tables(conn)
    if employee_id is not None and site is None:
        sites = [r[0] for r in conn.execute("""SELECT DISTINCT site FROM wfm.deviations WHERE NOT confirmed
                                               AND employee_id = %s AND (%s::date IS NULL OR work_date = %s)
                                               ORDER BY 1""", (employee_id, day, day))]
        if len(sites) > 1:
            raise ValueError(f"employee {employee_id} has deviations in sites {', '.join(sites)}; give --site")
    with conn.transaction():
        return conn.execute(
            """UPDATE wfm.deviations SET confirmed = true, confirmed_hash = content_hash, confirmed_by = %(by)s,
               confirmed_at = now() WHERE NOT confirmed AND (%(e)s::text IS NULL OR employee_id = %(e)s)
               AND (%(d)s::date IS NULL OR work_date = %(d)s) AND (%(f)s::date IS NULL OR work_date >= %(f)s)
               AND (%(l)s::date IS NULL OR work_date <= %(l)s) AND (%(site)s::text IS NULL OR site = %(site)s)""",
            {"by": by, "e": employee_id, "d": day, "f": first, "l": last, "site": site}).rowcount


def confirmed(conn: psycopg.Connection, site: str = warehouse.DEFAULT) -> list[dict]:
    """A site's confirmed deviations as sendFactWorkTime payloads, with their content hashes."""
    ensure_tables(conn)
    rows = conn.execute("""SELECT employee_id, work_date, date_start, loginfo, content_hash, confirmed_by
                           FROM wfm.deviations WHERE site = %s AND confirmed AND confirmed_hash = content_hash
                           ORDER BY work_date, employee_id""", (site,)).fetchall()
    return [{"employee_id": e, "work_date": d, "content_hash": h,
             "payload": {"agentId": e, "initiator_name": by, "date_start": iso(start), "loginfo": loginfo}}
            for e, d, start, loginfo, h, by in rows]
