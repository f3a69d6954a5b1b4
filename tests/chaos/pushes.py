"""The push-back side of the crash scenario: planned shifts to send, and what "exact" means there.

An interrupted push is exact when, after it is run again, the outbox holds the same rows in the
same states as after an uninterrupted push (nothing left `sending`), and 1C holds a schedule for
every month the outbox calls sent — exactly the one it was sent.
"""

from __future__ import annotations

import datetime as dt
import uuid
from pathlib import Path

import psycopg

from connectors import onec
from connectors.planning import PLANNED_SHIFTS
from connectors.settings import ONEC, SourceSettings
from connectors.streams import Window, fetch
from engine.landing import warehouse

from .lab import ONEC_USER, pointed_at

UTC = dt.timezone.utc
PUSH_SINCE = dt.date(2026, 11, 1)
SHIFT_DAYS = ("2026-11-17", "2026-11-18", "2026-11-20", "2026-12-01", "2026-12-02")
EMPLOYEES = 6


def plan_shifts(sim, database_url: str) -> None:
    """`wfm.employees` from 1C and a fortnight of day shifts for the first employees."""
    settings = SourceSettings(ONEC, sim.onec_url, "basic", username=ONEC_USER[0], password=ONEC_USER[1])
    window = Window(dt.datetime(2026, 11, 1, tzinfo=UTC), dt.datetime(2026, 12, 1, tzinfo=UTC))
    with settings.client() as client:
        employees = fetch(client, onec.EMPLOYEES, window).table
    with psycopg.connect(database_url) as conn:
        for stream in (onec.EMPLOYEES, PLANNED_SHIFTS):
            warehouse.ensure_table(conn, stream)
        with conn.transaction():
            warehouse.upsert(conn, onec.EMPLOYEES, employees, uuid.uuid4(), dt.datetime.now(UTC))
            for employee in sorted(employees.column("employee_id").to_pylist())[:EMPLOYEES]:
                for day in SHIFT_DAYS:
                    start = dt.datetime.fromisoformat(f"{day}T06:00:00+00:00")
                    conn.execute("""INSERT INTO wfm.planned_shifts (site, employee_id, shift_start, shift_end,
                                    unpaid_break_minutes, source, _run_id, _extracted_at)
                                    VALUES ('default', %s, %s, %s, 30, 'chaos', gen_random_uuid(), now())""",
                                 (employee, start, start + dt.timedelta(hours=8)))


def push_reference(sim, database_url: str, lake: Path) -> None:
    """The uninterrupted push every interrupted one is compared with."""
    from flows.push import push_schedules

    with pointed_at(sim, database_url, lake):
        plan_shifts(sim, database_url)
        push_schedules(PUSH_SINCE)


def outbox(database_url: str) -> set[tuple]:
    with psycopg.connect(database_url) as conn:
        return {tuple(r) for r in conn.execute(
            """SELECT kind, employee_id, period, content_hash, state, sent_hash, payload::text
               FROM wfm_meta.push_outbox""")}


def outbox_problems(sim, database_url: str, reference: str) -> list[str]:
    """How the outbox and 1C differ from the uninterrupted push's."""
    found, expected = outbox(database_url), outbox(reference)
    problems = [f"outbox row differs: {row[:5]}" for row in sorted(found ^ expected)]
    for _kind, employee, period, _, state, _, _ in sorted(found):
        if state == "sent" and not sim.simulation.onec.schedules(employee).get(period):
            problems.append(f"outbox says {employee} {period} was sent, 1C holds no schedule")
    return problems
