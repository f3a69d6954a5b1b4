"""The quarantine lifecycle: held rows are listed, replayed through today's rules, or discarded.

A quarantined row is the raw source record (a nested record is stored flat, with its parent's
fields), so after a fix — a relaxed or corrected suite, a raised threshold, a new spelling of a
field — `replay` can run it through the current parsing and the current suite again:

- the held rows are locked (`FOR UPDATE`) in one transaction per stream, so two replays never
  take the same row; a record quarantined for two reasons is replayed once;
- rows that now pass are deduplicated on the key and upserted, their quarantine rows marked
  `replayed` (with the replay's run id) and their lake partitions queued, all in that same
  transaction: a row lands exactly once, and a replay that fails lands nothing;
- rows that still fail stay `held`, unchanged; replay judges rows one by one, without the
  window gate's share threshold (there is no window of fresh data to protect);
- the replay is a run of the ledger (mode `replay`) per connection with one window spanning the
  original ones (records are still parsed per original window: some columns derive from the
  window); its run closes as every run does (`engine/landing/runs.py`), with its webhook event.

`discard` marks held rows `discarded` with a reason; nothing is deleted.
"""

from __future__ import annotations

import datetime as dt
import uuid
from dataclasses import dataclass, field
from typing import Any

import psycopg
import pyarrow as pa
from psycopg import sql

from connectors.records import Parsed, flatten, to_arrow
from connectors.streams import Stream, Window
from engine import catalog
from engine.landing import drift, ledger, runs, warehouse
from engine.landing.window import partitions_of
from engine.quality import gate as quality

__all__ = ["ReplayReport", "discard", "held_streams", "replay_stream"]


@dataclass
class ReplayReport:
    """What one replay of one stream did."""

    stream: str
    run_id: uuid.UUID | None = None
    records: int = 0                 # distinct records taken from quarantine
    replayed: int = 0                # records that now passed and landed
    still_held: int = 0              # records that fail still
    rows_inserted: int = 0
    rows_updated: int = 0
    partitions: set[str] = field(default_factory=set)
    runs: list[dict] = field(default_factory=list, repr=False)   # the closed runs' ledger rows, one per connection


def _where(stream: str | None, ids: list[int] | None, run: str | None) -> tuple[sql.Composable, dict]:
    clause = sql.SQL("status = 'held' AND (%(stream)s::text IS NULL OR stream = %(stream)s) "
                     "AND (%(ids)s::bigint[] IS NULL OR id = ANY(%(ids)s)) AND (%(run)s::uuid IS NULL OR run_id = %(run)s)")
    return clause, {"stream": stream, "ids": ids or None, "run": run}


def held_streams(database_url: str, stream: str | None = None, ids: list[int] | None = None,
                 run: str | None = None) -> list[str]:
    """The streams with held rows matching the filter, in catalog order."""
    where, params = _where(stream, ids, run)
    with psycopg.connect(database_url) as conn:
        ledger.ensure_meta(conn)
        found = {s for (s,) in conn.execute(
            sql.SQL("SELECT DISTINCT stream FROM wfm_meta.quarantine WHERE {}").format(where), params)}
    return [name for name in catalog.IMPORTABLE if name in found]


def replay_stream(database_url: str, stream_name: str, ids: list[int] | None = None,
                  run: str | None = None) -> ReplayReport:
    """Replay one stream's held rows (optionally only `ids` or those of `run`); see the module docstring."""
    stream = catalog.IMPORTABLE[stream_name]
    run_id = uuid.uuid4()
    report = ReplayReport(stream_name, run_id)
    now = dt.datetime.now(dt.timezone.utc)
    where, params = _where(stream_name, ids, run)
    with psycopg.connect(database_url) as conn:
        ledger.ensure_meta(conn)
        warehouse.ensure_table(conn, stream)
        with conn.transaction():
            held = conn.execute(sql.SQL("""SELECT id, window_start, window_end, record, record_hash, source
                                           FROM wfm_meta.quarantine WHERE {} ORDER BY id FOR UPDATE""")
                                .format(where), params).fetchall()
            if not held:
                report.run_id = None
                return report
            opened: list[runs.Run] = []
            for source in sorted({h[5] for h in held}):     # a connection's rows land as that connection's
                opened.append(_replay_source(conn, database_url, stream, source, [h for h in held if h[5] == source],
                                             run_id if not opened else uuid.uuid4(), report, now))
        report.runs = [run.close("completed", conn=conn) for run in opened]   # sync.completed, mode replay
    return report


def _replay_source(conn: psycopg.Connection, database_url: str, stream: Stream, source: str, held: list[tuple],
                   run_id: uuid.UUID, report: ReplayReport, now: dt.datetime) -> runs.Run:
    """One connection's held rows as one replay run, opened inside the transaction (a replay that
    fails rolls its run back with its rows: nothing to close); returns the run, to close after the commit."""
    span = Window(min(h[1] for h in held), max(h[2] for h in held))
    run = runs.open_run(conn, database_url, stream.name, "replay", span.start, span.end, [span], now, source=source,
                        run_id=run_id)
    by_window: dict[tuple, dict[str, dict]] = {}
    for _, start, end, record, digest, _ in held:     # one record per digest: it may have two reasons
        by_window.setdefault((start, end), {})[digest] = record
    records = sum(len(records) for records in by_window.values())
    report.records += records
    good, passed = _judge(stream, by_window)
    partitions: set[str] = set()
    counts = _land(conn, stream, good, passed, report, now, run_id, source, partitions)
    counts.update(rows_fetched=records, rows_quarantined=records - len(passed))
    ledger.record_window(conn, run_id, span, "landed", counts)
    ledger.mark_partitions(conn, stream.name, partitions, run_id)
    report.partitions |= partitions
    return run


def _judge(stream: Stream, by_window: dict[tuple, dict[str, dict]]) -> tuple[pa.Table | None, list[str]]:
    """The rows that pass today's parsing and suite, and the digests of their records."""
    tables, passed = [], []
    for (start, end), records in sorted(by_window.items()):
        digests = {id(record): digest for digest, record in records.items()}
        parsed = _parse(stream, Window(start, end), list(records.values()))
        table = drift.with_extra(stream, parsed)
        result = quality.validate(stream.name, table)
        tables.append(result.split(table)[0])
        passed += [digests[id(r)] for i, r in enumerate(parsed.records) if i not in result.failed_rows]
    good = pa.concat_tables(tables) if tables else None
    return good, passed


def _land(conn: psycopg.Connection, stream: Stream, good: pa.Table | None, passed: list[str],
          report: ReplayReport, now: dt.datetime, run_id: uuid.UUID, source: str,
          partitions: set[str]) -> dict[str, Any]:
    """Upsert the passing rows and mark their quarantine rows replayed; inside the transaction."""
    counts: dict[str, Any] = {}
    if good is not None and good.num_rows:
        clean = warehouse.deduplicate(good, stream.key)
        upserted = warehouse.upsert(conn, stream, clean, run_id, now, source)
        counts.update(duplicates_removed=good.num_rows - clean.num_rows, rows_inserted=upserted.inserted,
                      rows_updated=upserted.updated, rows_unchanged=upserted.unchanged)
        report.rows_inserted += upserted.inserted
        report.rows_updated += upserted.updated
        partitions |= partitions_of(stream, clean, source)
        conn.execute("""UPDATE wfm_meta.quarantine SET status = 'replayed', resolved_at = now(), resolved_by = %s,
                        resolution = 'passed on replay' WHERE stream = %s AND source = %s AND status = 'held'
                        AND record_hash = ANY(%s)""", (run_id, stream.name, source, passed))
    report.replayed += len(passed)
    report.still_held = report.records - report.replayed
    return counts


def _parse(stream: Stream, window: Window, records: list[dict]) -> Parsed:
    """Stored records through the stream's current fields; they are flat, so nothing is exploded."""
    columns, kept, rejects = flatten(records, stream.fields)
    parsed = to_arrow(columns, kept, stream.fields, rejects)
    if stream.derive is not None:
        parsed.table = stream.derive(parsed.table, window)
    return parsed


def discard(database_url: str, reason: str, stream: str | None = None, ids: list[int] | None = None,
            run: str | None = None) -> int:
    """Mark held rows `discarded` with a reason; returns how many."""
    if not reason.strip():
        raise ValueError("say why the rows are discarded (--reason)")
    if stream is None and not ids and run is None:
        raise ValueError("name the rows to discard: --stream, --id or --run")
    where, params = _where(stream, ids, run)
    with psycopg.connect(database_url) as conn:
        ledger.ensure_meta(conn)
        return conn.execute(sql.SQL("""UPDATE wfm_meta.quarantine SET status = 'discarded', resolved_at = now(),
                                       resolution = %(reason)s WHERE {}""").format(where),
                            {**params, "reason": reason.strip()}).rowcount


def rows(conn: psycopg.Connection, stream: str | None, status: str | None, limit: int) -> list[dict]:
    """Quarantine rows, newest first (`status` None: every status)."""
    cur = conn.execute("""SELECT id, stream, status, window_start, reason, record::text AS record, quarantined_at,
                                 resolution FROM wfm_meta.quarantine
                          WHERE (%(s)s::text IS NULL OR stream = %(s)s) AND (%(st)s::text IS NULL OR status = %(st)s)
                          ORDER BY quarantined_at DESC, id DESC LIMIT %(n)s""", {"s": stream, "st": status, "n": limit})
    names = [c.name for c in cur.description]
    return [dict(zip(names, row)) for row in cur.fetchall()]


def row(conn: psycopg.Connection, row_id: int) -> dict | None:
    """One quarantine row, every column."""
    cur = conn.execute("SELECT * FROM wfm_meta.quarantine WHERE id = %s", (row_id,))
    found = cur.fetchone()
    return dict(zip([c.name for c in cur.description], found)) if found else None
