"""The warehouse's schema: one entry point creates every table and applies every migration, in order.

Each table's DDL lives with the module that owns it: `landing/ledger.py` (schema `wfm_meta`: runs,
windows, watermarks, quarantine, the lake's to-do list, check results, holds, waivers, drift,
state changes),
`landing/warehouse.py` (one table per stream in schema `wfm`, from its declaration),
`push/outbox.py`, `push/webhooks.py`, `push/deviations.py`. (The status-push receiver, a service of
its own, creates its two tables itself, after `ensure`: `receiver/service.py`.)

`migrate` runs the baseline — every owner's idempotent DDL, which also adds the columns that
earlier releases lacked — then each numbered `Migration` not yet recorded in
`wfm_meta.schema_migrations`, each in its own transaction, under one advisory lock so that two
processes never migrate at once. A migration upgrades a warehouse an earlier release landed, in
place, without losing a row; running `migrate` again changes nothing. `wfm migrate` runs it, and
every flow runs it once per process and database (`ensure`) before it lands anything.
"""

from __future__ import annotations

import threading
from collections.abc import Callable
from dataclasses import dataclass

import psycopg

from engine import catalog, derived, migrations
from engine.landing import ledger, warehouse
from engine.landing.ledger import META
from engine.push import deviations, outbox, webhooks

LOCK = "hashtext('wfm-migrate')"


@dataclass(frozen=True)
class Migration:
    """A numbered step that upgrades a warehouse in place; it runs once, inside a transaction."""

    version: int
    name: str
    apply: Callable[[psycopg.Connection], None]


# numbered steps after the baseline, oldest first; never renumber or edit one that has shipped
MIGRATIONS: tuple[Migration, ...] = (
    Migration(1, "connections", migrations.own_pulled),    # every row knows its connection (source/site)
    Migration(2, "sites", migrations.own_pushed),          # plans, deviations, outbox, pushed statuses too
    Migration(3, "state per connection", migrations.own_state),   # anomalies, watermark changes, roster by name
)

_ensured: set[tuple[str, str | None]] = set()
_ensured_lock = threading.Lock()


def baseline(conn: psycopg.Connection) -> None:
    """The `wfm_meta` tables of every owner, created if missing (idempotent).

    A stream's own table is created by its first landing (`warehouse.ensure_table`), not here: a
    reconciliation rule applies only to tables that exist, so an empty table of a stream never
    synced would fail rules that nothing has landed for."""
    ledger.ensure_meta(conn)
    outbox.ensure_outbox(conn)
    webhooks.ensure_tables(conn)


def stream_tables(conn: psycopg.Connection) -> list[str]:
    """The stream tables this warehouse has (what a migration of stream tables walks over)."""
    known = [*catalog.IMPORTABLE, derived.AGENT_EMPLOYEE_MAP.name, deviations.DEVIATIONS.name]
    found = {r[0] for r in conn.execute(
        "SELECT table_name FROM information_schema.tables WHERE table_schema = %s", (warehouse.SCHEMA,))}
    return [name for name in known if name in found]


def applied(conn: psycopg.Connection) -> dict[int, str]:
    """The migrations this warehouse has recorded, by version."""
    return dict(conn.execute(f"SELECT version, name FROM {META}.schema_migrations ORDER BY version").fetchall())


def migrate(conn: psycopg.Connection) -> list[Migration]:
    """Bring the warehouse to this release's schema; returns the migrations applied now."""
    if not conn.autocommit:
        raise ValueError("migrate needs an autocommit connection (each step takes its own transaction)")
    conn.execute(f"SELECT pg_advisory_lock({LOCK})")
    try:
        baseline(conn)
        conn.execute(f"""CREATE TABLE IF NOT EXISTS {META}.schema_migrations (
                           version int PRIMARY KEY, name text NOT NULL, applied_at timestamptz NOT NULL DEFAULT now())""")
        done = applied(conn)
        ran = []
        for step in MIGRATIONS:
            if step.version in done:
                continue
            with conn.transaction():
                step.apply(conn)
                conn.execute(f"INSERT INTO {META}.schema_migrations (version, name) VALUES (%s, %s)",
                             (step.version, step.name))
            ran.append(step)
        return ran
    finally:
        conn.execute(f"SELECT pg_advisory_unlock({LOCK})")


def ensure(database_url: str, lake_path: str | None = None) -> None:
    """`migrate` (and `migrate_lake`) once per process, database and lake: what a flow calls
    before it lands anything."""
    with _ensured_lock:
        if (database_url, lake_path) in _ensured:
            return
        with psycopg.connect(database_url, autocommit=True) as conn:
            migrate(conn)
        if lake_path is not None:
            migrate_lake(lake_path)
        _ensured.add((database_url, lake_path))


def migrate_lake(lake_path: str) -> int:
    """Move the lake's files to the layout of the migrations this release has (idempotent, file by
    file: a killed move is finished by the next call); returns how many moved."""
    from engine.landing import lake

    fs, root = lake.filesystem(lake_path)
    return migrations.relayout_lake(fs, root, {m.version for m in MIGRATIONS})
