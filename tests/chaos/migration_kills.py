"""Migration kills: `wfm migrate` SIGKILLed at a named point or a random moment, then run again.

Each trial restores the warehouse and the lake of the release before connections (the fixture of
`tests/test_migrations.py`: a synced site, plans, the outbox, deviations, quarantine, drift, a
hold) into a database and a directory of their own and runs the real `wfm migrate` in a child
process (`crash_driver migrate`) that kills itself — every migration registered in
`engine/schema.py` runs, whatever their number:

- `migration-statement`: just after the N-th statement inside a migration's transaction;
- `migration-transaction`: once the k-th migration's step ran, before its version is recorded and
  committed;
- `before-lake`: every migration committed, no lake file moved yet;
- `lake-move`: just after the N-th file of the lake's relayout was renamed;
- `timer`: at a random moment of the run.

Before any repair the kill must have left every table with the rows it had, the recorded
versions a prefix of the registered ones, and every lake file there once, whole (the same bytes,
in the old layout or the new). Then `wfm migrate` runs again to the end; the warehouse — every
row of every `wfm` and `wfm_meta` table, every column, every key — and the lake — every file's
path and bytes — must equal those of an uninterrupted migration. A second rerun must change
nothing (not even when a version was applied).
"""

from __future__ import annotations

import gzip
import hashlib
import json
import random
import tarfile
import tempfile
import time
from collections import Counter
from contextlib import ExitStack
from pathlib import Path

import psycopg

from . import Outcome
from .crash_driver import MIGRATION_POINTS
from .crashes import Driver
from .lab import fresh_database

FIXTURES = Path(__file__).resolve().parent.parent / "fixtures"
POINTS = MIGRATION_POINTS + ("timer",)


def migration_kills(server: str, kills: int = 5, seed: int = 0) -> Outcome:
    """`kills` trials over every point in turn (a random statement, migration, file or moment each)."""
    from engine import schema

    rng = random.Random(seed)
    outcome = Outcome("migration kills (SIGKILL)", 0, 0, "kills")
    with ExitStack() as stack:
        scratch = Path(stack.enter_context(tempfile.TemporaryDirectory(prefix="wfm-chaos-migrate-")))
        driver = Driver(scratch / "driver.log")
        stack.callback(driver.close)
        with fresh_database(server) as empty:     # the driver's imports paid before a run is timed
            _migrate(driver, empty, scratch / "empty" / "lake", "count", 0)
        db = stack.enter_context(fresh_database(server))
        lake = restore(db, scratch / "reference")
        original = _lake(lake)
        started = time.monotonic()
        counts = _migrate(driver, db, lake, "count", 0, scratch / "counts.json")
        took = time.monotonic() - started
        reference = _warehouse(db), _lake(lake)
        versions = [m.version for m in schema.MIGRATIONS]
        if counts["migrations"] != len(versions) or not counts["moves"]:
            outcome.problems.append(f"the uninterrupted migration did {counts}, {len(versions)} migration(s) known")
        limits = {"migration-statement": counts["statements"], "migration-transaction": counts["migrations"],
                  "before-lake": 1, "lake-move": counts["moves"]}
        for trial in range(kills):
            point = POINTS[trial % len(POINTS)]
            after = round(rng.uniform(0.05, took), 2) if point == "timer" else rng.randint(1, max(limits[point], 1))
            with fresh_database(server) as trial_db:
                trial_lake = restore(trial_db, scratch / f"trial-{trial}")
                _trial(outcome, driver, trial_db, trial_lake, point, after, original, reference, versions)
        outcome.detail = (f"{len(versions)} migration(s), {counts['statements']} statement(s) in their transactions, "
                          f"{counts['moves']} lake file(s) moved in {took:.1f} s; {outcome.detail.strip()}").rstrip("; ")
    outcome.exact = not outcome.problems
    return outcome


def restore(database_url: str, root: Path) -> Path:
    """The pre-connections warehouse into `database_url` and its lake under `root`; the lake's path."""
    with psycopg.connect(database_url, autocommit=True) as conn:
        conn.execute(gzip.decompress((FIXTURES / "warehouse_v0.sql.gz").read_bytes()).decode())
    with tarfile.open(FIXTURES / "lake_v0.tar.gz") as archive:
        archive.extractall(root, filter="data")
    return root / "lake"


def _trial(outcome: Outcome, driver: Driver, db: str, lake: Path, point: str, after: float,
           original: dict[str, str], reference: tuple[dict, dict], versions: list[int]) -> None:
    """Kill, check what the kill left, migrate again (twice), compare with the uninterrupted migration."""
    rows_before = _counts(db)
    killed = _migrate(driver, db, lake, point, after) is None
    label = f"{point}@{after:g}"
    if not killed:
        outcome.detail += f" {label}: finished before the kill;"
        return
    outcome.tried += 1
    found = _left(db, lake, rows_before, original, versions)
    _migrate(driver, db, lake, "count", 0)
    found += _mismatches("the rerun", (_warehouse(db), _lake(lake)), reference)
    again = _warehouse(db, when=True), _lake(lake)
    _migrate(driver, db, lake, "count", 0)
    found += _mismatches("a second rerun", (_warehouse(db, when=True), _lake(lake)), again)
    outcome.problems += [f"{label}: {p}" for p in found]
    outcome.held += not found


def _migrate(driver: Driver, db: str, lake: Path, point: str, after: float, counts: Path | None = None) -> dict | None:
    """`wfm migrate` in a child, killed at `point` ("count": never); what it did (None: killed)."""
    counts = counts or lake.parent / "counts.json"
    counts.parent.mkdir(parents=True, exist_ok=True)
    env = {"WFM_DATABASE_URL": db, "WFM_LAKE_PATH": str(lake), "WFM_CHAOS_COUNTS": str(counts)}
    if driver.run("migrate", "-", point, after, env):
        return None
    if point != "count":
        return {}
    return json.loads(counts.read_text())


def _left(db: str, lake: Path, rows_before: dict[str, int], original: dict[str, str], versions: list[int]) -> list[str]:
    """What a kill must not have done: rows lost, versions out of order, lake files lost or torn."""
    found = [f"{table} holds {n} row(s) after the kill, {rows_before[table]} before"
             for table, n in _counts(db).items() if table in rows_before and n != rows_before[table]]
    with psycopg.connect(db) as conn:
        recorded = [v for (v,) in conn.execute("SELECT version FROM wfm_meta.schema_migrations ORDER BY 1")] \
            if conn.execute("SELECT to_regclass('wfm_meta.schema_migrations')").fetchone()[0] else []
    if recorded != versions[:len(recorded)]:
        found.append(f"versions {recorded} recorded, not a prefix of {versions}")
    now = Counter(_lake(lake).values())
    if now != Counter(original.values()):
        found.append(f"the lake holds {sum(now.values())} file(s) ({len(set(original.values()) - set(now))} lost or "
                     f"torn, {sum((now - Counter(original.values())).values())} extra), {len(original)} before")
    return found


def _mismatches(what: str, got: tuple[dict, dict], expected: tuple[dict, dict]) -> list[str]:
    """Differences of (warehouse, lake) snapshots, one line per table or file."""
    found = []
    for name in sorted(set(got[0]) | set(expected[0])):
        if got[0].get(name) != expected[0].get(name):
            found.append(f"{what}: {name} differs from the uninterrupted migration's")
    for path in sorted(set(got[1]) | set(expected[1])):
        if got[1].get(path) != expected[1].get(path):
            found.append(f"{what}: lake file {path} " + ("missing" if path not in got[1] else "not expected"
                                                          if path not in expected[1] else "differs"))
    return found


def _counts(db: str) -> dict[str, int]:
    with psycopg.connect(db) as conn:
        return {f"{s}.{t}": conn.execute(f'SELECT count(*) FROM "{s}"."{t}"').fetchone()[0]
                for s, t in _tables(conn)}


def _tables(conn: psycopg.Connection) -> list[tuple[str, str]]:
    return conn.execute("""SELECT table_schema, table_name FROM information_schema.tables
                           WHERE table_schema IN ('wfm', 'wfm_meta') AND table_type = 'BASE TABLE'
                           ORDER BY 1, 2""").fetchall()


def _warehouse(db: str, when: bool = False) -> dict[str, tuple]:
    """Every table's columns, keys and rows; the time a version was applied only `when` asked (it
    says when the trial ran, not what it did)."""
    out = {}
    with psycopg.connect(db) as conn:
        conn.execute("SET TIME ZONE 'UTC'")
        for schema, table in _tables(conn):
            name = f"{schema}.{table}"
            columns = conn.execute("""SELECT column_name, data_type, is_nullable, column_default
                                      FROM information_schema.columns WHERE table_schema = %s AND table_name = %s
                                      ORDER BY ordinal_position""", (schema, table)).fetchall()
            keys = sorted(conn.execute("""SELECT contype, pg_get_constraintdef(oid) FROM pg_constraint
                                          WHERE conrelid = %s::regclass""", (f'"{schema}"."{table}"',)).fetchall())
            indexes = sorted(r[0] for r in conn.execute(
                "SELECT indexdef FROM pg_indexes WHERE schemaname = %s AND tablename = %s", (schema, table)))
            chosen = [c[0] for c in columns if when or (name, c[0]) != ("wfm_meta.schema_migrations", "applied_at")]
            data = sorted(map(repr, conn.execute(f'SELECT {", ".join(map(_quoted, chosen))} FROM "{schema}"."{table}"')))
            out[name] = (columns, keys, indexes, data)
    return out


def _quoted(column: str) -> str:
    return '"' + column.replace('"', '""') + '"'


def _lake(lake: Path) -> dict[str, str]:
    """Every file under the lake by path: its bytes' digest."""
    return {str(p.relative_to(lake)): hashlib.sha256(p.read_bytes()).hexdigest()
            for p in sorted(lake.rglob("*")) if p.is_file()}
