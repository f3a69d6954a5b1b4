"""Holds and waivers: what a reconciliation rule keeps out of the lake, and who let it go, and why.

A failing error-severity result holds its partition of the subject table. When the rule says
what broke (`Rule.scope`: a group, an agent, an employee) and few of them broke (at most
`MAX_SCOPES`, and at most half of the day's: `reconcile.SCOPE_SHARE`), only their rows are held:
the partition is published without them (`engine/landing/lake.py` asks `ledger.held_scopes`) and the
rest of the day reaches the analysts. Otherwise the whole partition is
held (scope '') and withdrawn from the lake. A hold goes when the rule passes again, when the
rule is no longer enforced (set to `warn` or `off` in wfm.toml), or when someone waives it:
`wfm quality waive RULE --partition date=… --reason …` lifts the rule's holds on that partition,
writes an audit row to `wfm_meta.waivers` (rule, table, partition, reason, who, when, how many
holds it lifted) and queues the partition, which is then published once; the rule keeps being
checked and its results stored, but it does not hold that partition again.

Every change here is made in the transaction that stores the results (or the waiver), and
every lifted hold queues its partition again, so the lake follows within the same step. The
tables' DDL (and the upgrade of an older `partition_holds`) is in `engine/landing/ledger.py`.
"""

from __future__ import annotations

import dataclasses
import datetime as dt
import getpass
import uuid

import orjson
import psycopg

from engine.landing import lake, ledger
from engine.quality.rules import ERROR, RULES

__all__ = ["MAX_SCOPES", "release_rule", "store", "waive", "waived"]

MAX_SCOPES = 20   # more groups or agents broken than this in one day: the day itself is suspect
META = ledger.META


def store(conn: psycopg.Connection, run_id: uuid.UUID, outcome, policies: dict[str, str]) -> None:
    """Results, new holds and lifted holds of one reconciliation step, in one transaction.

    `outcome` is a `reconcile.Outcome`; `policies` maps a rule to its policy as JSON.
    """
    with conn.transaction(), conn.cursor() as cur:
        waivers = waived(conn)
        outcome.results = [dataclasses.replace(r, waived=(r.check, r.table, r.partition) in waivers)
                           for r in outcome.results]
        cur.executemany(f"""INSERT INTO {META}.check_results (run_id, check_name, severity, table_name, partition,
                            success, unexpected_count, examples, policy, scopes, waived)
                            VALUES (%s, %s, %s, %s, %s, %s, %s, %s, %s, %s, %s)""",
                        [(run_id, r.check, r.severity, r.table, r.partition, r.success, r.unexpected_count,
                          orjson.dumps(list(r.examples)).decode(), policies.get(r.check),
                          orjson.dumps(list(r.scopes)).decode(), r.waived) for r in outcome.results])
        for r in outcome.results:
            if r.success or r.waived or r.severity != ERROR:
                if _lift(conn, r.table, r.partition, r.check, run_id):
                    outcome.released.add((r.table, r.partition))
                continue
            scopes = {""} if r.whole or not r.scopes else set(r.scopes)
            cur.execute(f"""DELETE FROM {META}.partition_holds WHERE table_name = %s AND partition = %s
                            AND check_name = %s AND NOT scope = ANY(%s)""", (r.table, r.partition, r.check, list(scopes)))
            cur.executemany(f"""INSERT INTO {META}.partition_holds (table_name, partition, check_name, scope, run_id)
                                VALUES (%s, %s, %s, %s, %s) ON CONFLICT DO NOTHING""",
                            [(r.table, r.partition, r.check, s, run_id) for s in sorted(scopes)])
            ledger.mark_partitions(conn, r.table, [r.partition], run_id)
            outcome.held.add((r.table, r.partition))
        outcome.released -= outcome.held


def release_rule(conn: psycopg.Connection, check: str, run_id: uuid.UUID) -> set[tuple[str, str]]:
    """Lift every hold of a rule that no longer runs (`off`); returns the partitions released."""
    with conn.transaction():
        found = conn.execute(f"SELECT DISTINCT table_name, partition FROM {META}.partition_holds WHERE check_name = %s",
                             (check,)).fetchall()
        for table, partition in found:
            _lift(conn, table, partition, check, run_id)
    return {tuple(row) for row in found}


def _lift(conn: psycopg.Connection, table: str, partition: str, check: str, run_id: uuid.UUID) -> int:
    """Delete a rule's holds on a partition and queue it again (its rows come back); the count lifted."""
    lifted = conn.execute(f"""DELETE FROM {META}.partition_holds WHERE table_name = %s AND partition = %s
                              AND check_name = %s""", (table, partition, check)).rowcount
    if lifted:
        ledger.mark_partitions(conn, table, [partition], run_id)
    return lifted


def waive(conn: psycopg.Connection, check: str, partition: str, reason: str, by: str | None = None) -> tuple[str, int]:
    """Lift `check`'s holds on one partition of its subject, with an audit row; (table, holds lifted)."""
    rule = next((r for r in RULES if r.name == check), None)
    if rule is None:
        raise ValueError(f"no reconciliation rule {check!r} (rules: {', '.join(r.name for r in RULES)})")
    if not reason.strip():
        raise ValueError("a waiver needs a --reason")
    partition = partition_named(rule.subject, partition)
    waiver_id = uuid.uuid4()
    with conn.transaction():
        lifted = _lift(conn, rule.subject, partition, check, waiver_id)
        if not lifted:
            held = [p for (p,) in conn.execute(f"""SELECT DISTINCT partition FROM {META}.partition_holds
                                                   WHERE check_name = %s ORDER BY 1""", (check,))]
            raise ValueError(f"{check} holds nothing of {rule.subject} {partition} "
                             f"(it holds: {', '.join(held) or 'nothing'})")
        conn.execute(f"""INSERT INTO {META}.waivers (waiver_id, check_name, table_name, partition, reason, waived_by,
                         holds_lifted) VALUES (%s, %s, %s, %s, %s, %s, %s)""",
                     (waiver_id, check, rule.subject, partition, reason.strip(), by or getpass.getuser(), lifted))
    return rule.subject, lifted


def waived(conn: psycopg.Connection) -> set[tuple[str, str, str]]:
    """(rule, table, partition) of every waiver."""
    return {tuple(r) for r in conn.execute(f"SELECT check_name, table_name, partition FROM {META}.waivers")}


def partition_named(table: str, text: str) -> str:
    """A partition as an operator names it: whole (`source=cc-north/date=2026-11-10`), or a bare
    day or `date=…`, which mean the `default` connection's day."""
    if "=" in text and not text.startswith("date="):
        return text
    day = dt.date.fromisoformat(text.removeprefix("date="))
    return lake.owned_partition(table, "default", day)
