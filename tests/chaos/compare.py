"""Exactness: two databases hold the same rows, and the lake holds what PostgreSQL holds.

Rows are compared whole — every data column of every `wfm.*` table — except the lineage
columns `_run_id` and `_extracted_at`, which say which run wrote a row and so legitimately
differ between two landings. The lake is read back with pyarrow (a real Parquet reader, not the
code that wrote it) and compared with PostgreSQL lineage included, personal columns as the
policy publishes them (hashed with the key, or left out); a file's owner (`source=` or `site=` in
its path, which the file itself does not repeat) is read from its path, as hive readers do.
"""

from __future__ import annotations

import datetime as dt
import decimal
import os
from pathlib import Path

import orjson
import psycopg
import pyarrow.parquet as pq

LINEAGE = ("_run_id", "_extracted_at")
SKIPPED = ("online_agent_status", "online_group_load")   # keyed by the moment of the pull


def tables(database_url: str) -> list[str]:
    """Every table of schema `wfm` except the online snapshots."""
    with psycopg.connect(database_url) as conn:
        names = [r[0] for r in conn.execute(
            "SELECT table_name FROM information_schema.tables WHERE table_schema = 'wfm' ORDER BY 1")]
    return [n for n in names if n not in SKIPPED]


def rows(database_url: str, table: str, lineage: bool = False, as_published: bool = False,
         order: list[str] | None = None) -> list[tuple]:
    """Every row of `wfm.<table>` as comparable values, sorted; lineage columns only when asked;
    `as_published`: personal columns hashed or left out as the lake has them (engine/privacy/personal_data.py);
    `order`: the columns in this order (a lake file's: a column added later by ALTER, such as
    `local_date`, comes last in PostgreSQL but where the lake schema puts it in the file)."""
    from engine.privacy import personal_data
    from engine.repair.lake_repair import published_tables

    stream = published_tables().get(table)
    chosen = personal_data.policy(stream) if as_published and stream else {}
    key = personal_data.KEY_VARIABLE in os.environ and os.environ[personal_data.KEY_VARIABLE].encode() or None
    with psycopg.connect(database_url) as conn:
        conn.execute("SET TIME ZONE 'UTC'")
        cur = conn.execute(f'SELECT * FROM wfm."{table}"')
        names = [c.name for c in cur.description]
        keep = [i for i, c in enumerate(names) if (lineage or c not in LINEAGE) and chosen.get(c) != "drop"]
        if order is not None:
            keep = sorted(keep, key=lambda i: order.index(names[i]) if names[i] in order else len(order))
        hashed = {i for i in keep if chosen.get(names[i]) == "hash"}
        documents = json_columns(table)
        return sorted((tuple(plain(personal_data.pseudonym(r[i], key) if i in hashed else r[i], names[i])
                             if names[i] not in documents else _document(r[i])
                             for i in keep) for r in cur), key=repr)


def named_rows(database_url: str, table: str) -> list[tuple]:
    """Every row, lineage included, as sorted (column, value) pairs: Parquet and a migrated table may
    order their columns differently."""
    with psycopg.connect(database_url) as conn:
        conn.execute("SET TIME ZONE 'UTC'")
        cur = conn.execute(f'SELECT * FROM wfm."{table}"')
        names = [c.name for c in cur.description]
        return sorted((tuple(sorted((n, plain(v)) for n, v in zip(names, r))) for r in cur), key=repr)


def differences(left_url: str, right_url: str) -> list[str]:
    """Tables whose rows differ between two databases, with a count and an example each."""
    found = []
    names = sorted(set(tables(left_url)) | set(tables(right_url)))
    for table in names:
        left, right = (set(rows(url, table)) if table in tables(url) else set() for url in (left_url, right_url))
        if left != right:
            example = next(iter(left - right or right - left))
            found.append(f"{table}: {len(left - right)} row(s) only in the first, {len(right - left)} only "
                         f"in the second, e.g. {example!r:.300}")
    return found


def lake_problems(database_url: str, lake: Path) -> list[str]:
    """Unreadable files, and tables whose Parquet rows are not PostgreSQL's rows."""
    problems = []
    for table in tables(database_url):
        files = sorted((lake / table).rglob("*.parquet")) if (lake / table).exists() else []
        parquet: list[tuple] = []
        order: list[str] | None = None
        for path in files:
            try:
                data = pq.read_table(path)
            except Exception as exc:   # a partial file is exactly what this looks for
                problems.append(f"{path.relative_to(lake)} is not a readable Parquet file: {exc}")
                continue
            owner = {k: v for k, v in (level.split("=", 1) for level in path.relative_to(lake / table).parts[:-1])
                     if k in ("source", "site")}
            order = order or data.column_names + [k for k in owner if k not in data.column_names]
            documents = json_columns(table)      # JSON text in the lake, jsonb (decoded) from PostgreSQL
            parquet += [tuple(plain(v, name) if name not in documents else _document(v, text=True)
                              for name, v in {**row, **owner}.items()) for row in data.to_pylist()]
        expected = rows(database_url, table, lineage=True, as_published=True, order=order)
        if files and sorted(parquet, key=repr) != expected:
            only = sorted(set(parquet) - set(expected), key=repr)[:1] + sorted(set(expected) - set(parquet), key=repr)[:1]
            problems.append(f"lake {table}: {len(parquet)} Parquet row(s) ≠ {len(expected)} PostgreSQL row(s), "
                            f"e.g. {' vs '.join(repr(r)[:400] for r in only)}")
        elif not files and expected and table != "agent_employee_map":
            problems.append(f"lake {table}: no Parquet file for {len(expected)} row(s)")
    return problems


def temporary_files(lake: Path) -> list[Path]:
    """Files a partition swap left behind (not partitions: no reader picks them up)."""
    return sorted(p for p in lake.rglob("*") if p.is_file() and not p.name.endswith(".parquet"))


def json_columns(table: str) -> set[str]:
    """The columns a stream declares `json`: jsonb in PostgreSQL, JSON text in the lake."""
    from engine.repair.lake_repair import published_tables

    stream = published_tables().get(table)
    return {f.column for f in stream.fields if f.type == "json"} if stream else set()


def _document(value, text: bool = False):
    """A JSON value as canonical bytes, from the lake's text (`text`) or PostgreSQL's decoded jsonb."""
    if value is None:
        return None
    return orjson.dumps(orjson.loads(value) if text else value, option=orjson.OPT_SORT_KEYS)


def plain(value, column: str = ""):
    """A value both PostgreSQL and Parquet readers agree on."""
    if isinstance(value, dt.datetime):
        return value.astimezone(dt.timezone.utc).isoformat() if value.tzinfo else value.isoformat()
    if isinstance(value, dt.date):
        return value.isoformat()
    if isinstance(value, decimal.Decimal):
        return float(value)
    if isinstance(value, (list, tuple)):
        return tuple(plain(v) for v in value)
    if isinstance(value, dict) or (column == "_extra" and isinstance(value, str)):
        return orjson.dumps(orjson.loads(value) if isinstance(value, str) else value, option=orjson.OPT_SORT_KEYS)
    if column == "_run_id" or hasattr(value, "hex") and not isinstance(value, (bytes, float)):
        return str(value)
    return value
