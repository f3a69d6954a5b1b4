"""Push-back of deviations: sendFactWorkTime, the one call 1C cannot deduplicate, through kills
and lost answers.

The world: the planned shifts of `pushes.plan_shifts`, sent to 1C (a fact waits for its month's
schedule), and logins of the same employees that differ from the plan in every way the contract
table knows (absence НН, overtime С, work on a day off РВ), built into `wfm.deviations` and
confirmed. The reference is an uninterrupted push of those deviations.

Exact means: 1C holds, for every (employee, day), the documents of the reference push — one
each, with the same rows — and the outbox holds every fact `sent` (nothing left `sending` or
`pending`). A document 1C holds twice is the failure this guards against: payroll would book the
overtime twice.

`lost_answers` is the same push through a storm of 1C faults without a kill, `drop_after`
among them (1C stores the document, the answer never arrives), run again as a scheduler would
until the outbox is settled.
"""

from __future__ import annotations

import datetime as dt
import tempfile
from collections import Counter
from pathlib import Path

import psycopg

from . import Outcome
from .lab import fresh_database, pointed_at, simulator
from .pushes import PUSH_SINCE, plan_shifts

UTC = dt.timezone.utc
# per employee (by its place in the plan), UTC day -> hours present from 06:00 UTC; the plan
# has 7.5 net hours on 17, 18 and 20 Nov and 1, 2 Dec, nothing on the 19th
PRESENCE = (
    {"2026-11-17": 4, "2026-11-18": 10, "2026-11-19": 8, "2026-12-01": 7.5},
    {"2026-11-17": 9, "2026-11-19": 5, "2026-12-02": 2},
    {"2026-11-18": 3, "2026-11-20": 11, "2026-12-01": 9},
    {"2026-11-17": 7.5, "2026-11-19": 4, "2026-12-02": 12},
    {"2026-11-18": 0.25, "2026-11-20": 8, "2026-12-01": 6},
    {"2026-11-17": 10, "2026-11-18": 10, "2026-11-20": 1},
)
FIRST, LAST = dt.date(2026, 11, 16), dt.date(2026, 12, 3)
STORM = "drop_after=0.25,drop=0.08,reset=0.08,500=0.08,502=0.08,503=0.08"
MAX_RUNS = 12


def prepare_facts(sim, database_url: str, lake: Path) -> int:
    """Plan, schedules sent, logins landed, deviations built and confirmed; how many are confirmed."""
    from engine.push.deviations import build_deviations, confirm, ensure_tables
    from flows.push import push_schedules

    with pointed_at(sim, database_url, lake):
        plan_shifts(sim, database_url)
        push_schedules(PUSH_SINCE)
        roster = sim.simulation.onec.roster.by_id
        with psycopg.connect(database_url, autocommit=True) as conn:
            ensure_tables(conn)
            planned = [r[0] for r in conn.execute("SELECT DISTINCT employee_id FROM wfm.planned_shifts ORDER BY 1")]
            with conn.transaction():
                for employee_id, presence in zip(planned, PRESENCE):
                    agent = roster[employee_id].person.agent_id
                    conn.execute("""INSERT INTO wfm.agent_employee_map (site, agent_id, employee_id, matched_by,
                                    _run_id, _extracted_at) VALUES ('default', %s, %s, 'tab_n', gen_random_uuid(), now())""",
                                 (agent, employee_id))
                    for day, hours in presence.items():
                        start = dt.datetime.fromisoformat(f"{day}T06:00:00+00:00")
                        conn.execute("""INSERT INTO wfm.agent_logins (source, agent_id, login_at, logout_at, duration_ms,
                                        _run_id, _extracted_at)
                                        VALUES ('default', %s, %s, %s, %s, gen_random_uuid(), now())""",
                                     (agent, start, start + dt.timedelta(hours=hours), int(hours * 3_600_000)))
        build_deviations(database_url, str(lake), FIRST, LAST)
        with psycopg.connect(database_url, autocommit=True) as conn:
            return confirm(conn, "Иванов И.И.")


def push_facts(settle_after_seconds: float = 0.0) -> dict:
    from flows.push import push_deviations

    return push_deviations(settle_after_seconds=settle_after_seconds)


def documents(sim) -> Counter:
    """What 1C holds: (employee, day, rows) -> how many documents."""
    return Counter((d["employee_id"], d["date"], tuple((r["timetype"], r["hours"]) for r in d["rows"]))
                   for d in sim.simulation.onec.documents())


def fact_states(database_url: str) -> dict[tuple[str, str], str]:
    """The outbox's facts: (employee, day) -> state."""
    with psycopg.connect(database_url) as conn:
        return {(e, p): s for e, p, s in conn.execute(
            "SELECT employee_id, period, state FROM wfm_meta.push_outbox WHERE kind = 'fact'")}


def fact_reference(server: str, scratch: Path) -> tuple[Counter, dict]:
    """The documents (each must be held once) and outbox states of an uninterrupted push."""
    with simulator() as sim, fresh_database(server) as db:
        confirmed = prepare_facts(sim, db, scratch / "facts-calm-lake")
        with pointed_at(sim, db, scratch / "facts-calm-lake"):
            push_facts()
        held, states = documents(sim), fact_states(db)
    assert held and max(held.values()) == 1 and len(states) == confirmed and "sending" not in states.values(), \
        f"the uninterrupted fact push is not exact: {held} {states}"
    return held, states


def fact_problems(sim, database_url: str, reference: tuple[Counter, dict]) -> list[str]:
    """How 1C's documents and the outbox differ from the uninterrupted push's."""
    expected, expected_states = reference
    held = documents(sim)
    problems = [f"1C holds {n} document(s) of {e} {d} {rows}, expected {expected.get((e, d, rows), 0)}"
                for (e, d, rows), n in sorted(held.items()) if n != expected.get((e, d, rows), 0)]
    problems += [f"1C holds no document of {e} {d} {rows}" for (e, d, rows) in sorted(set(expected) - set(held))]
    states = fact_states(database_url)
    problems += [f"outbox fact {e} {p} is {states.get((e, p))}, uninterrupted: {expected_states.get((e, p))}"
                 for e, p in sorted(set(states) | set(expected_states)) if states.get((e, p)) != expected_states.get((e, p))]
    return problems


def lost_answers(server: str, rounds: int = 2, seed: int = 3) -> Outcome:
    """`rounds` fact pushes through a storm of 1C faults (answers lost after 1C stored them)."""
    outcome = Outcome("lost answers (sendFactWorkTime)", 0, 0, "1C faults injected")
    with tempfile.TemporaryDirectory(prefix="wfm-chaos-facts-") as directory:
        scratch = Path(directory)
        reference = fact_reference(server, scratch)
        for trial in range(rounds):
            _storm(outcome, server, scratch, reference, seed + trial, trial)
    outcome.exact = not outcome.problems
    return outcome


def _storm(outcome: Outcome, server: str, scratch: Path, reference: tuple[Counter, dict], seed: int,
           trial: int) -> None:
    """One storm: push until settled through the faults, then once more without them."""
    with simulator(fault_seed=seed) as sim, fresh_database(server) as db:
        lake = scratch / f"facts-storm-{trial}"
        prepare_facts(sim, db, lake)
        sim.reset_stats()
        with pointed_at(sim, db, lake):
            sim.set_faults(STORM)
            runs = _until_settled(db)
            sim.set_faults("")
            counted = sim.stats()["faults"]
            runs += _until_settled(db)          # what the fault-free night finds left over
        found = fact_problems(sim, db, reference)
        faults, lost = sum(counted.values()), counted.get("drop_after", 0)
        outcome.tried += faults
        outcome.held += faults if not found else 0
        outcome.problems += [f"storm {trial}: {p}" for p in found]
        outcome.detail += f" storm {trial}: {runs} run(s), {lost} answer(s) lost after 1C stored them;"


def _until_settled(database_url: str) -> int:
    """Push until no fact is sending or pending for another reason than its schedule (a failed run
    is simply run again); the number of runs."""
    from flows.push import PushFailed

    for run in range(1, MAX_RUNS + 1):
        try:
            push_facts()
        except PushFailed:
            pass
        with psycopg.connect(database_url) as conn:
            open_ = conn.execute("""SELECT count(*) FROM wfm_meta.push_outbox WHERE kind = 'fact'
                                    AND (state = 'sending' OR state = 'pending'
                                         AND coalesce(message, '') NOT LIKE 'waiting:%%')""").fetchone()[0]
        if not open_:
            return run
    return MAX_RUNS

