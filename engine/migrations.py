"""The numbered migrations of `engine/schema.py`, and the lake's layout that goes with them.

Versions 1 (connections: what the sync lands) and 2 (sites: plans, deviations, the outbox, the
pushed statuses of the receiver): rows from before connections
belonged to the one contact center and the one 1C base the WFM_* variables named, the connection
and site `default`. Every table gets its owner column first in its key — `source` (the
connection) for what a source system sent, `site` for what is built per site (the agent map,
plans, deviations, the outbox) — with `'default'` in every existing row; watermarks, ledger,
quarantine and drift rows get `source`; partition names gain the owner (`date=D` becomes
`source=default/date=D`). Each step checks the state it finds, so it is a no-op on a warehouse
created by this release.

The lake follows (`relayout_lake`, run by `schema.ensure` and `wfm migrate` until nothing is left
to move): `<table>/date=D/part-0.parquet` moves to `<table>/source=default/date=D/part-0.parquet`
by one rename per file, so a reader sees each file once, whole, and a killed move is finished by
the next call.

Version 3 (state per connection): the anomalies get `source` (their run's), the operator's
watermark changes (`state_changes`) `source` ('default': the only connection `wfm state` could
change before), and the roster (`source_ids`), which was keyed by a contact center's base URL,
is keyed by the connection's name: each URL key that a contact-center connection of the current
settings (file or WFM_CC_URL) has becomes that connection's name; a URL no connection has is kept
as it is (a connection given that URL later adopts its rows at its first look, `roster.look`).
"""

from __future__ import annotations

import contextlib
from collections.abc import Callable

import psycopg
import pyarrow.fs as pafs
from psycopg import sql

from engine.landing.warehouse import DEFAULT, PUSH_TABLES, SITE_TABLES
from engine.landing.warehouse import owner_of as owner_column

META = "wfm_meta"
FILE = "part-0.parquet"
__all__ = ["PUSH_TABLES", "SITE_TABLES", "own_pulled", "own_pushed", "own_state", "owner_column", "relayout_lake",
           "roster_names"]


# --- versions 1 and 2: connections and sites ----------------------------------------------------

META_KEYS = {   # table -> (owner column, its new primary or unique key, or None)
    "sync_runs": ("source", None),
    "sync_windows": ("source", None),
    "watermarks": ("source", ("primary", ("stream", "source"))),
    "quarantine": ("source", ("unique", ("source", "stream", "record_hash", "reason"))),
    "schema_drift": ("source", ("primary", ("stream", "source", "field", "kind"))),
    "push_outbox": ("site", ("unique", ("site", "kind", "employee_id", "period"))),
}
PARTITIONED = ("lake_pending", "partition_holds", "check_results")   # table_name + partition columns


def _ours(table: str) -> bool:
    """A table this project declares (other tables in schema `wfm` are left alone)."""
    from engine import catalog

    return table in catalog.IMPORTABLE or table in catalog.DERIVED or table in PUSH_TABLES or table in META_KEYS \
        or table in PARTITIONED


def _pulled(table: str) -> bool:
    """Version 1: what the sync lands (and the agent map built from it)."""
    return _ours(table) and table not in PUSH_TABLES and table != "push_outbox"


def _pushed(table: str) -> bool:
    """Version 2: plans, deviations, the outbox and the pushed statuses."""
    return _ours(table) and not _pulled(table)


def _owners(conn: psycopg.Connection, wanted: Callable[[str], bool]) -> None:
    """Give the `wanted` tables their owner column ('default' in every row) first in their key."""
    for table in filter(wanted, _tables(conn, "wfm")):
        column = owner_column(table)
        if _add_owner(conn, "wfm", table, column):
            key = _primary_key(conn, "wfm", table)
            if key is not None:
                _replace_key(conn, "wfm", table, "primary", key[0], (column, *key[1]))
    existing = set(_tables(conn, META))
    for table, (column, new_key) in META_KEYS.items():
        if wanted(table) and table in existing and _add_owner(conn, META, table, column) and new_key is not None:
            kind, columns = new_key
            old = _primary_key(conn, META, table) if kind == "primary" else _unique_key(conn, META, table,
                                                                                          columns[1:])
            _replace_key(conn, META, table, kind, old[0] if old else None, columns)
    if wanted("sync_windows") and "sync_windows" in existing:
        conn.execute(f"DROP INDEX IF EXISTS {META}.sync_windows_landed")
        conn.execute(f"""CREATE INDEX sync_windows_landed ON {META}.sync_windows (stream, source, window_start)
                         WHERE status = 'landed'""")
    for table in PARTITIONED:
        if table in existing:
            _own_partitions(conn, table, wanted)


def _own_partitions(conn: psycopg.Connection, table: str, wanted: Callable[[str], bool]) -> None:
    """`date=D` -> `<owner>=default/date=D`, '' -> `<owner>=default`, for the wanted tables' partitions."""
    names = [n for (n,) in conn.execute(sql.SQL("SELECT DISTINCT table_name FROM {}").format(
        sql.Identifier(META, table))) if wanted(n)]
    for owner in ("source", "site"):
        chosen = [n for n in names if owner_column(n) == owner]
        if chosen:
            conn.execute(sql.SQL(
                "UPDATE {} SET partition = {} || CASE WHEN partition = '' THEN '' ELSE '/' || partition END "
                "WHERE table_name = ANY(%s) AND partition NOT LIKE 'source=%%' AND partition NOT LIKE 'site=%%'"
            ).format(sql.Identifier(META, table), sql.Literal(f"{owner}={DEFAULT}")), (chosen,))


def _tables(conn: psycopg.Connection, schema: str) -> list[str]:
    return [t for (t,) in conn.execute("""SELECT table_name FROM information_schema.tables WHERE table_schema = %s
                                          AND table_type = 'BASE TABLE' ORDER BY 1""", (schema,))]


def _add_owner(conn: psycopg.Connection, schema: str, table: str, column: str) -> bool:
    """Add the owner column holding 'default' to every existing row; False if it is there already."""
    if conn.execute("""SELECT 1 FROM information_schema.columns WHERE table_schema = %s AND table_name = %s
                       AND column_name = %s""", (schema, table, column)).fetchone():
        return False
    ident = sql.Identifier(schema, table)
    conn.execute(sql.SQL("ALTER TABLE {} ADD COLUMN {} text NOT NULL DEFAULT {}").format(
        ident, sql.Identifier(column), sql.Literal(DEFAULT)))
    conn.execute(sql.SQL("ALTER TABLE {} ALTER COLUMN {} DROP DEFAULT").format(ident, sql.Identifier(column)))
    return True


def _primary_key(conn: psycopg.Connection, schema: str, table: str) -> tuple[str, tuple[str, ...]] | None:
    return _constraint(conn, schema, table, "p")


def _unique_key(conn: psycopg.Connection, schema: str, table: str,
                columns: tuple[str, ...]) -> tuple[str, tuple[str, ...]] | None:
    return _constraint(conn, schema, table, "u", columns)


def _constraint(conn: psycopg.Connection, schema: str, table: str, kind: str,
                columns: tuple[str, ...] | None = None) -> tuple[str, tuple[str, ...]] | None:
    rows = conn.execute("""SELECT c.conname, array_agg(a.attname ORDER BY k.ord)
                           FROM pg_constraint c CROSS JOIN LATERAL unnest(c.conkey) WITH ORDINALITY k(attnum, ord)
                           JOIN pg_attribute a ON a.attrelid = c.conrelid AND a.attnum = k.attnum
                           WHERE c.conrelid = %s::regclass AND c.contype = %s GROUP BY c.conname""",
                        (f'"{schema}"."{table}"', kind)).fetchall()
    for name, cols in rows:
        if columns is None or tuple(cols) == columns:
            return name, tuple(cols)
    return None


def _replace_key(conn: psycopg.Connection, schema: str, table: str, kind: str, old: str | None,
                 columns: tuple[str, ...]) -> None:
    ident = sql.Identifier(schema, table)
    if old is not None:
        conn.execute(sql.SQL("ALTER TABLE {} DROP CONSTRAINT {}").format(ident, sql.Identifier(old)))
    conn.execute(sql.SQL("ALTER TABLE {} ADD {} ({})").format(
        ident, sql.SQL("PRIMARY KEY" if kind == "primary" else "UNIQUE"),
        sql.SQL(", ").join(map(sql.Identifier, columns))))


def _owners_lake(fs: pafs.FileSystem, root: str, wanted: Callable[[str], bool]) -> int:
    """Move `<table>/[date=D/]part-0.parquet` under `<table>/<owner>=default/`; returns files moved."""
    if fs.get_file_info(root).type != pafs.FileType.Directory:
        return 0
    moved = 0
    for table in fs.get_file_info(pafs.FileSelector(root)):
        if table.type != pafs.FileType.Directory or table.base_name.startswith((".", "_")) or \
                not wanted(table.base_name):
            continue
        owner = f"{owner_column(table.base_name)}={DEFAULT}"
        for entry in fs.get_file_info(pafs.FileSelector(table.path)):
            name = entry.base_name
            if entry.type == pafs.FileType.File and name == FILE:
                moved += _move(fs, entry.path, f"{table.path}/{owner}/{FILE}")
            elif entry.type == pafs.FileType.Directory and name.startswith("date="):
                old = f"{entry.path}/{FILE}"
                if fs.get_file_info(old).type == pafs.FileType.File:
                    moved += _move(fs, old, f"{table.path}/{owner}/{name}/{FILE}")
                _remove_if_only_temporaries(fs, entry.path)
    return moved


def _move(fs: pafs.FileSystem, old: str, new: str) -> int:
    """Rename a file into the new layout; one already there was written since, and wins."""
    if fs.get_file_info(new).type == pafs.FileType.File:
        fs.delete_file(old)
        return 0
    fs.create_dir(new.rsplit("/", 1)[0], recursive=True)
    fs.move(old, new)
    return 1


def _remove_if_only_temporaries(fs: pafs.FileSystem, directory: str) -> None:
    """An old partition directory is dropped once it holds no data file (killed writers' leftovers go too)."""
    left = fs.get_file_info(pafs.FileSelector(directory))
    if all(e.type == pafs.FileType.File and e.base_name.startswith(".") for e in left):
        with contextlib.suppress(FileNotFoundError, OSError):
            fs.delete_dir(directory)


def own_pulled(conn: psycopg.Connection) -> None:
    """Migration 1 (connections): what the sync lands, and the agent map, get their owner."""
    _owners(conn, _pulled)


# indexes whose columns gain the owner with version 2: (schema, table, old name, new name, new definition)
PUSHED_INDEXES = (
    (META, "push_outbox", "push_outbox_open", "push_outbox_site_open",
     "(site, kind, state) WHERE state IN ('pending', 'sending')"),
    ("wfm", "pushed_status_events", "pushed_status_events_worker", "pushed_status_events_source_worker",
     "(source, worker_id, action_time)"),
)


def own_pushed(conn: psycopg.Connection) -> None:
    """Migration 2 (sites): plans, deviations, the outbox and the pushed statuses get theirs, and
    the indexes that find a worker's events or the open outbox rows lead with it."""
    _owners(conn, _pushed)
    for schema, table, old, new, definition in PUSHED_INDEXES:
        if table in _tables(conn, schema):
            conn.execute(sql.SQL("DROP INDEX IF EXISTS {}").format(sql.Identifier(schema, old)))
            conn.execute(sql.SQL("CREATE INDEX IF NOT EXISTS {} ON {} " + definition).format(
                sql.Identifier(new), sql.Identifier(schema, table)))


def own_state(conn: psycopg.Connection, names: dict[str, list[str]] | None = None) -> None:
    """Migration 3 (state per connection): anomalies and watermark changes get their connection, the
    roster is keyed by connection name (`names`: URL key -> connection names; default `roster_names()`)."""
    from engine.landing import roster

    existing = set(_tables(conn, META))
    if "anomalies" in existing and _add_owner(conn, META, "anomalies", "source"):
        conn.execute(f"""UPDATE {META}.anomalies a SET source = r.source FROM {META}.sync_runs r
                         WHERE r.run_id = a.run_id AND a.source <> r.source""")
    if "state_changes" in existing:
        _add_owner(conn, META, "state_changes", "source")
    if "source_ids" in existing:
        names = roster_names() if names is None else names
        keys = [k for (k,) in conn.execute(f"SELECT DISTINCT source FROM {META}.source_ids ORDER BY 1")]
        for key in keys:
            if names.get(key) and key not in names[key]:
                roster.rekey(conn, key, names[key])


def roster_names() -> dict[str, list[str]]:
    """URL key (`SourceSettings.key`) -> the names of the contact-center connections at that URL,
    from the current settings (no secret is read)."""
    from connectors.config.connections import load
    from connectors.settings import CONTACT_CENTER

    found: dict[str, list[str]] = {}
    for connection in load().of(CONTACT_CENTER):
        found.setdefault(connection.base.key, []).append(connection.name)
    return found


def relayout_lake(fs: pafs.FileSystem, root: str, versions: set[int]) -> int:
    """Move the lake files of the tables the applied `versions` own under their owner's level;
    returns how many moved (0: nothing left to move)."""
    moved = _owners_lake(fs, root.rstrip("/"), _pulled) if 1 in versions else 0
    return moved + (_owners_lake(fs, root.rstrip("/"), _pushed) if 2 in versions else 0)
