"""Retention: how long each ledger, audit and online table keeps its rows, and `prune`.

Every table that grows with time has one `Policy` here: the table, the column that dates a row,
a default number of days, and which rows may go at all (a quarantined row still held, a run
still running, an event not yet delivered are never pruned). `WFM_RETENTION` overrides the days
per policy ("online_agent_status=7,sync_runs=365"; 0 keeps a table forever). Rows are deleted
in batches of `BATCH`, each its own short transaction, so a prune never holds a long lock on a
table the every-minute snapshots write to. Great Expectations' validation results are files
(`<data dir>/gx/validations`), pruned by age the same way; online lake days older than the
online tables' retention go with their rows.

State is not pruned: watermarks, the push outbox, partition holds, the lake's to-do list, drift
records and webhook subscribers describe the present, not the past.
"""

from __future__ import annotations

import datetime as dt
import os
import time
from dataclasses import dataclass
from pathlib import Path

import psycopg
import pyarrow.fs as pafs
from psycopg import sql

from engine.landing import lake


@dataclass(frozen=True)
class Policy:
    """Rows of `table` dated by `column` older than `days` go, if `condition` holds for them."""

    name: str
    table: str                   # schema-qualified
    column: str
    days: int
    condition: str = "true"      # SQL over the row: what may be pruned at all
    lake_table: str | None = None   # an online table whose lake days go with its rows


POLICIES: tuple[Policy, ...] = (
    Policy("online_agent_status", "wfm.online_agent_status", "snapshot_at", 35, lake_table="online_agent_status"),
    Policy("online_group_load", "wfm.online_group_load", "snapshot_at", 35, lake_table="online_group_load"),
    Policy("pushed_status_events", "wfm.pushed_status_events", "received_at", 35),
    Policy("sync_runs", "wfm_meta.sync_runs", "started_at", 180, "status <> 'running'"),   # windows cascade
    Policy("quarantine", "wfm_meta.quarantine", "quarantined_at", 180, "status <> 'held'"),
    Policy("quarantine_held", "wfm_meta.quarantine", "quarantined_at", 730, "status = 'held'"),
    Policy("check_results", "wfm_meta.check_results", "checked_at", 180),
    Policy("webhook_deliveries", "wfm_meta.webhook_deliveries", "attempted_at", 30),
    Policy("webhook_events", "wfm_meta.webhook_events", "created_at", 30,
           "NOT EXISTS (SELECT 1 FROM wfm_meta.webhook_outbox o WHERE o.event_id = t.event_id "
           "AND o.state = 'pending')"),                                                  # outbox rows cascade
    Policy("push_log", "wfm_meta.push_log", "at", 730),
    Policy("gx_validations", "files:gx/validations", "mtime", 90),
)
BATCH = 20_000


def days_of() -> dict[str, int]:
    """Each policy's days: its default, or `WFM_RETENTION`'s ("name=days,..."; 0 keeps forever)."""
    days = {p.name: p.days for p in POLICIES}
    for item in filter(None, (i.strip() for i in os.environ.get("WFM_RETENTION", "").split(","))):
        name, sep, value = (part.strip() for part in item.partition("="))
        if name not in days:
            raise ValueError(f"WFM_RETENTION: unknown table {name!r}; known: {', '.join(days)}")
        if not sep or not value.rstrip("d").isdigit():
            raise ValueError(f"WFM_RETENTION item {item!r} is not name=days")
        days[name] = int(value.rstrip("d"))
    return days


@dataclass
class Pruned:
    policy: str
    days: int
    cutoff: dt.datetime | None
    rows: int = 0
    note: str = ""


def _delete(conn: psycopg.Connection, policy: Policy, cutoff: dt.datetime, dry_run: bool) -> int:
    schema, _, name = policy.table.partition(".")
    if conn.execute("SELECT to_regclass(%s)", (policy.table,)).fetchone()[0] is None:
        return 0
    table, column = sql.Identifier(schema, name), sql.Identifier(policy.column)
    where = sql.SQL("t.{} < {} AND ({})").format(column, sql.Literal(cutoff), sql.SQL(policy.condition))
    if dry_run:
        return conn.execute(sql.SQL("SELECT count(*) FROM {} t WHERE {}").format(table, where)).fetchone()[0]
    total = 0
    while True:
        with conn.transaction():
            done = conn.execute(sql.SQL("DELETE FROM {0} WHERE ctid = ANY(ARRAY(SELECT t.ctid FROM {0} t WHERE {1} "
                                        "LIMIT {2}))").format(table, where, sql.Literal(BATCH))).rowcount
        total += done
        if done < BATCH:
            return total


def _files(directory: Path, cutoff: dt.datetime, dry_run: bool) -> int:
    if not directory.is_dir():
        return 0
    old = [p for p in directory.rglob("*") if p.is_file() and p.stat().st_mtime < cutoff.timestamp()]
    for path in [] if dry_run else old:
        path.unlink(missing_ok=True)
    return len(old)


def _lake_days(lake_path: str, table: str, cutoff: dt.datetime, dry_run: bool) -> int:
    """Remove the day directories of an online table older than the cutoff's day."""
    fs, root = lake.filesystem(lake_path)
    base = f"{root.rstrip('/')}/{table}"
    if fs.get_file_info(base).type == pafs.FileType.NotFound:
        return 0
    old = [i.path for i in fs.get_file_info(pafs.FileSelector(base)) if i.type == pafs.FileType.Directory
           and i.base_name.startswith("date=") and i.base_name[5:] < cutoff.date().isoformat()]
    for path in [] if dry_run else old:
        fs.delete_dir(path)
    return len(old)


def prune(database_url: str, data_dir: Path, lake_path: str, only: list[str] | None = None,
          dry_run: bool = False, now: dt.datetime | None = None) -> list[Pruned]:
    """Delete what every policy (or the named ones) no longer keeps; `dry_run` only counts."""
    now = now or dt.datetime.now(dt.timezone.utc)
    days = days_of()
    unknown = sorted(set(only or ()) - set(days))
    if unknown:
        raise ValueError(f"unknown retention table(s) {', '.join(unknown)}; known: {', '.join(days)}")
    out = []
    with psycopg.connect(database_url, autocommit=True) as conn:
        for policy in POLICIES:
            if only and policy.name not in only:
                continue
            keep = days[policy.name]
            if keep <= 0:
                out.append(Pruned(policy.name, keep, None, note="kept forever"))
                continue
            cutoff = now - dt.timedelta(days=keep)
            started = time.perf_counter()
            if policy.table.startswith("files:"):
                rows = _files(data_dir / policy.table[len("files:"):], cutoff, dry_run)
            else:
                rows = _delete(conn, policy, cutoff, dry_run)
            note = f"{time.perf_counter() - started:.1f} s"
            if policy.lake_table:
                note += f", {_lake_days(lake_path, policy.lake_table, cutoff, dry_run)} lake day(s)"
            out.append(Pruned(policy.name, keep, cutoff, rows, note))
    return out
