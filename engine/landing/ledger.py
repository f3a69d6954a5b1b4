"""The run ledger, watermarks, quarantine and the lake's to-do list, all in schema `wfm_meta`.

Every table here is written in the same transaction as the data it describes, so the ledger
never claims a window that is not committed and a watermark never passes uncommitted rows:
the watermark of a stream moves to the start of the earliest window of the run that has not
landed yet (capped at the run's start time), under a row lock, by the transaction that lands a
window. The quality tables live here too: `check_results` and `partition_holds`
(`engine/quality/reconcile.py`, `engine/quality/holds.py`: scoped holds, and `waivers`),
`schema_drift` (`engine/landing/drift.py`), the quarantine's resolution columns
(`engine/quality/replay.py`), and the operator's watermark changes, `state_changes`
(`engine/repair/state.py`).

A run, its windows, a watermark, a quarantined record, a drift row, an anomaly, a roster id and a
watermark change belong to one connection (`source`, its name); partition names carry their owner
(`source=cc-north/date=D`).
"""

from __future__ import annotations

import datetime as dt
import hashlib
import uuid
from collections.abc import Iterable, Sequence

import orjson
import psycopg

from connectors.records import Reject
from connectors.streams import Window
from engine import catalog
from engine.landing.warehouse import DEFAULT, jsonb_safe
from engine.privacy import personal_data

META = "wfm_meta"
DDL = f"""
CREATE SCHEMA IF NOT EXISTS {META};
CREATE TABLE IF NOT EXISTS {META}.sync_runs (
  run_id uuid PRIMARY KEY, stream text NOT NULL, source text NOT NULL, mode text NOT NULL, flow_run_id text,
  period_start timestamptz, period_end timestamptz, started_at timestamptz NOT NULL,
  finished_at timestamptz, status text NOT NULL DEFAULT 'running',
  windows_planned int NOT NULL DEFAULT 0, windows_landed int NOT NULL DEFAULT 0,
  windows_skipped int NOT NULL DEFAULT 0, windows_held int NOT NULL DEFAULT 0,
  rows_fetched bigint NOT NULL DEFAULT 0, duplicates_removed bigint NOT NULL DEFAULT 0,
  rows_inserted bigint NOT NULL DEFAULT 0, rows_updated bigint NOT NULL DEFAULT 0,
  rows_unchanged bigint NOT NULL DEFAULT 0, rows_quarantined bigint NOT NULL DEFAULT 0,
  api_calls bigint NOT NULL DEFAULT 0, retries bigint NOT NULL DEFAULT 0, throttled bigint NOT NULL DEFAULT 0,
  watermark_before timestamptz, watermark_after timestamptz, error text);
CREATE TABLE IF NOT EXISTS {META}.sync_windows (
  run_id uuid NOT NULL REFERENCES {META}.sync_runs ON DELETE CASCADE, stream text NOT NULL, source text NOT NULL,
  window_start timestamptz NOT NULL, window_end timestamptz NOT NULL, ids_hash text NOT NULL,
  id_count int NOT NULL, status text NOT NULL DEFAULT 'planned',
  rows_fetched bigint, duplicates_removed bigint, rows_inserted bigint, rows_updated bigint,
  rows_unchanged bigint, rows_quarantined bigint, api_calls int, retries int, throttled int,
  error text, landed_at timestamptz, PRIMARY KEY (run_id, window_start, ids_hash));
-- migration 1 (connections) rebuilds it on (stream, source, window_start): this older form is what
-- an older warehouse has, and PostgreSQL checks an index's columns even when it exists already
CREATE INDEX IF NOT EXISTS sync_windows_landed ON {META}.sync_windows (stream, window_start)
  WHERE status = 'landed';
CREATE TABLE IF NOT EXISTS {META}.watermarks (
  stream text NOT NULL, source text NOT NULL, value timestamptz, run_id uuid, updated_at timestamptz,
  PRIMARY KEY (stream, source));
CREATE TABLE IF NOT EXISTS {META}.quarantine (
  id bigserial PRIMARY KEY, stream text NOT NULL, source text NOT NULL, run_id uuid NOT NULL, window_start timestamptz,
  window_end timestamptz, reason text NOT NULL, field text, record jsonb NOT NULL,
  record_hash text NOT NULL, quarantined_at timestamptz NOT NULL DEFAULT now(),
  status text NOT NULL DEFAULT 'held', resolved_at timestamptz, resolved_by uuid, resolution text,
  UNIQUE (source, stream, record_hash, reason));
CREATE TABLE IF NOT EXISTS {META}.lake_pending (
  table_name text NOT NULL, partition text NOT NULL, run_id uuid NOT NULL,
  PRIMARY KEY (table_name, partition));
DO $$ BEGIN  -- an older quarantine table; ALTER only when needed: it locks the table exclusively
  IF NOT EXISTS (SELECT 1 FROM information_schema.columns WHERE table_schema = '{META}'
                 AND table_name = 'quarantine' AND column_name = 'resolution') THEN
    ALTER TABLE {META}.quarantine ADD COLUMN resolved_at timestamptz, ADD COLUMN resolved_by uuid,
      ADD COLUMN resolution text;
  END IF;
END $$;
DO $$ BEGIN  -- an older ledger: the content hash of a landed window (see `last_content_hash`)
  IF NOT EXISTS (SELECT 1 FROM information_schema.columns WHERE table_schema = '{META}'
                 AND table_name = 'sync_windows' AND column_name = 'content_hash') THEN
    ALTER TABLE {META}.sync_windows ADD COLUMN content_hash text;
  END IF;
END $$;
DO $$ BEGIN  -- an older ledger: windows that came back far too small, or were not asked (anomaly.py, breaker)
  IF NOT EXISTS (SELECT 1 FROM information_schema.columns WHERE table_schema = '{META}'
                 AND table_name = 'sync_runs' AND column_name = 'windows_deferred') THEN
    ALTER TABLE {META}.sync_runs ADD COLUMN windows_anomaly int NOT NULL DEFAULT 0,
      ADD COLUMN windows_deferred int NOT NULL DEFAULT 0, ADD COLUMN notice text;
  END IF;
END $$;
CREATE TABLE IF NOT EXISTS {META}.anomalies (
  id bigserial PRIMARY KEY, run_id uuid NOT NULL, stream text NOT NULL, source text NOT NULL,
  window_start timestamptz NOT NULL, window_end timestamptz NOT NULL, ids_hash text NOT NULL, kind text NOT NULL,
  rows_fetched bigint NOT NULL, expected double precision NOT NULL, message text NOT NULL,
  detected_at timestamptz NOT NULL DEFAULT now());
CREATE TABLE IF NOT EXISTS {META}.source_ids (
  source text NOT NULL, kind text NOT NULL, id text NOT NULL, first_seen timestamptz, last_seen timestamptz,
  appeared_after timestamptz, gone_at timestamptz, PRIMARY KEY (source, kind, id));
CREATE TABLE IF NOT EXISTS {META}.check_results (
  id bigserial PRIMARY KEY, run_id uuid NOT NULL, check_name text NOT NULL, severity text NOT NULL,
  table_name text NOT NULL, partition text NOT NULL, success boolean NOT NULL,
  unexpected_count bigint NOT NULL DEFAULT 0, examples jsonb, checked_at timestamptz NOT NULL DEFAULT now());
CREATE INDEX IF NOT EXISTS check_results_checked ON {META}.check_results (checked_at);
CREATE TABLE IF NOT EXISTS {META}.partition_holds (
  table_name text NOT NULL, partition text NOT NULL, check_name text NOT NULL, run_id uuid NOT NULL,
  held_at timestamptz NOT NULL DEFAULT now(), PRIMARY KEY (table_name, partition, check_name));
CREATE TABLE IF NOT EXISTS {META}.schema_drift (
  stream text NOT NULL, source text NOT NULL, field text NOT NULL, kind text NOT NULL, first_seen_run uuid NOT NULL,
  first_seen_at timestamptz NOT NULL DEFAULT now(), last_seen_run uuid NOT NULL,
  last_seen_at timestamptz NOT NULL DEFAULT now(), runs int NOT NULL DEFAULT 1, example text,
  PRIMARY KEY (stream, source, field, kind));
CREATE TABLE IF NOT EXISTS {META}.derived_builds (  -- what a derived dataset was last built from
  dataset text PRIMARY KEY, inputs_digest text NOT NULL, built_at timestamptz NOT NULL DEFAULT now());
DO $$ BEGIN  -- an older ledger: holds of whole partitions only, results without their policy (holds.py)
  IF NOT EXISTS (SELECT 1 FROM information_schema.columns WHERE table_schema = '{META}'
                 AND table_name = 'partition_holds' AND column_name = 'scope') THEN
    ALTER TABLE {META}.partition_holds ADD COLUMN scope text NOT NULL DEFAULT '',
      DROP CONSTRAINT partition_holds_pkey, ADD PRIMARY KEY (table_name, partition, check_name, scope);
  END IF;
  IF NOT EXISTS (SELECT 1 FROM information_schema.columns WHERE table_schema = '{META}'
                 AND table_name = 'check_results' AND column_name = 'policy') THEN
    ALTER TABLE {META}.check_results ADD COLUMN policy jsonb, ADD COLUMN scopes jsonb,
      ADD COLUMN waived boolean NOT NULL DEFAULT false;
  END IF;
END $$;
CREATE TABLE IF NOT EXISTS {META}.waivers (
  waiver_id uuid PRIMARY KEY, check_name text NOT NULL, table_name text NOT NULL, partition text NOT NULL,
  reason text NOT NULL, waived_by text NOT NULL, waived_at timestamptz NOT NULL DEFAULT now(),
  holds_lifted int NOT NULL);
CREATE INDEX IF NOT EXISTS waivers_partition ON {META}.waivers (table_name, partition, check_name);
CREATE TABLE IF NOT EXISTS {META}.state_changes (
  id bigserial PRIMARY KEY, stream text NOT NULL, source text NOT NULL, action text NOT NULL,
  watermark_before timestamptz, watermark_after timestamptz, reason text, changed_by text NOT NULL,
  changed_at timestamptz NOT NULL DEFAULT now());
"""


def ensure_meta(conn: psycopg.Connection) -> None:
    """Create `wfm_meta` or upgrade an older one in place (every statement is idempotent)."""
    with conn.transaction():
        conn.execute("SELECT pg_advisory_xact_lock(hashtext('wfm-ddl'))")
        conn.execute(DDL)


def ids_hash(window: Window) -> str:
    """The id part of a window's identity (column `ids_hash`): its bucket, which does not move when
    the roster changes (`connectors.streams.id_buckets`); a hash of the ids for a window cut
    otherwise (files), "-" for none. Ledgers written before buckets hold hashes of the id batch:
    such windows are fetched once more by the first backfill over them."""
    if window.bucket:
        return window.bucket
    return hashlib.sha1(",".join(window.ids).encode()).hexdigest()[:16] if window.ids else "-"


def watermark(conn: psycopg.Connection, stream: str, source: str = DEFAULT) -> dt.datetime | None:
    row = conn.execute(f"SELECT value FROM {META}.watermarks WHERE stream = %s AND source = %s",
                       (stream, source)).fetchone()
    return row[0] if row else None


def start_run(conn: psycopg.Connection, run_id: uuid.UUID, stream: str, mode: str, start: dt.datetime,
              end: dt.datetime, windows: Sequence[Window], started_at: dt.datetime,
              flow_run_id: str | None = None, source: str = DEFAULT) -> dt.datetime | None:
    """Record the run of a stream of one connection and its planned windows; returns the watermark before."""
    with conn.transaction():
        conn.execute(f"INSERT INTO {META}.watermarks (stream, source) VALUES (%s, %s) ON CONFLICT DO NOTHING",
                     (stream, source))
        before = watermark(conn, stream, source)
        conn.execute(f"""INSERT INTO {META}.sync_runs (run_id, stream, source, mode, flow_run_id, period_start,
                         period_end, started_at, windows_planned, watermark_before) VALUES
                         (%s, %s, %s, %s, %s, %s, %s, %s, %s, %s)""",
                     (run_id, stream, source, mode, flow_run_id, start, end, started_at, len(windows), before))
        with conn.cursor() as cur:
            cur.executemany(f"""INSERT INTO {META}.sync_windows (run_id, stream, source, window_start, window_end,
                                ids_hash, id_count) VALUES (%s, %s, %s, %s, %s, %s, %s)""",
                            [(run_id, stream, source, w.start, w.end, ids_hash(w), len(w.ids)) for w in windows])
    return before


def landed_windows(conn: psycopg.Connection, stream: str, start: dt.datetime, end: dt.datetime,
                   source: str = DEFAULT) -> set[tuple]:
    """(start, end, ids_hash) of windows some earlier run landed inside [start, end]."""
    rows = conn.execute(f"""SELECT DISTINCT window_start, window_end, ids_hash FROM {META}.sync_windows
                            WHERE stream = %s AND source = %s AND status = 'landed' AND window_start >= %s
                            AND window_end <= %s""", (stream, source, start, end)).fetchall()
    return {tuple(r) for r in rows}


def mark_skipped(conn: psycopg.Connection, run_id: uuid.UUID, windows: Iterable[Window]) -> None:
    with conn.transaction(), conn.cursor() as cur:
        cur.executemany(f"""UPDATE {META}.sync_windows SET status = 'skipped'
                            WHERE run_id = %s AND window_start = %s AND ids_hash = %s""",
                        [(run_id, w.start, ids_hash(w)) for w in windows])


def record_window(conn: psycopg.Connection, run_id: uuid.UUID, window: Window, status: str,
                  counts: dict[str, int], error: str | None = None, content_hash: str | None = None) -> None:
    """Window outcome; call inside the window's landing transaction."""
    conn.execute(f"""UPDATE {META}.sync_windows SET status = %s, error = %s, landed_at = now(),
                     rows_fetched = %s, duplicates_removed = %s, rows_inserted = %s, rows_updated = %s,
                     rows_unchanged = %s, rows_quarantined = %s, api_calls = %s, retries = %s, throttled = %s,
                     content_hash = %s WHERE run_id = %s AND window_start = %s AND ids_hash = %s""",
                 (status, error, *(counts.get(k, 0) for k in WINDOW_COUNTS), content_hash, run_id, window.start,
                  ids_hash(window)))


def last_content_hash(conn: psycopg.Connection, stream: str, window: Window, source: str = DEFAULT) -> str | None:
    """The content hash of the latest landing of a window with this start and id set, if any."""
    row = conn.execute(f"""SELECT content_hash FROM {META}.sync_windows WHERE stream = %s AND source = %s
                           AND status = 'landed' AND window_start = %s AND ids_hash = %s
                           ORDER BY landed_at DESC LIMIT 1""",
                       (stream, source, window.start, ids_hash(window))).fetchone()
    return row[0] if row else None


WINDOW_COUNTS = ("rows_fetched", "duplicates_removed", "rows_inserted", "rows_updated", "rows_unchanged",
                 "rows_quarantined", "api_calls", "retries", "throttled")


def advance_watermark(conn: psycopg.Connection, run_id: uuid.UUID, stream: str, period_end: dt.datetime,
                      cap: dt.datetime, source: str = DEFAULT) -> None:
    """Move the watermark to the run's landed frontier; call inside the landing transaction."""
    current = conn.execute(f"SELECT value FROM {META}.watermarks WHERE stream = %s AND source = %s FOR UPDATE",
                           (stream, source)).fetchone()
    pending = conn.execute(f"""SELECT min(window_start) FROM {META}.sync_windows
                               WHERE run_id = %s AND status <> 'landed'""", (run_id,)).fetchone()[0]
    frontier = min(pending or period_end, cap)
    if current is None or current[0] is None or frontier > current[0]:
        conn.execute(f"""UPDATE {META}.watermarks SET value = %s, run_id = %s, updated_at = now()
                         WHERE stream = %s AND source = %s""", (frontier, run_id, stream, source))


def quarantine(conn: psycopg.Connection, stream: str, run_id: uuid.UUID, window: Window,
               rejects: Sequence[Reject], source: str = DEFAULT) -> int:
    """Store rejected records with their reasons; a record rejected again is not stored twice.
    Personal fields are hashed or removed first, as the lake has them (`engine/privacy/personal_data.py`)."""
    if not rejects:
        return 0
    declared = catalog.IMPORTABLE.get(stream)
    mask = personal_data.masker(declared) if declared else (lambda record: record)
    rows = []
    for reject in rejects:
        body = jsonb_safe(orjson.dumps(mask(reject.record), option=orjson.OPT_SORT_KEYS, default=str).decode())
        digest = hashlib.sha1(body.encode()).hexdigest()
        rows.append((stream, source, run_id, window.start, window.end, reject.reason, reject.field, body, digest))
    with conn.cursor() as cur:
        cur.executemany(f"""INSERT INTO {META}.quarantine (stream, source, run_id, window_start, window_end, reason,
                            field, record, record_hash) VALUES (%s, %s, %s, %s, %s, %s, %s, %s, %s)
                            ON CONFLICT (source, stream, record_hash, reason) DO NOTHING""", rows)
    return len(rows)


def mark_partitions(conn: psycopg.Connection, table: str, partitions: Iterable[str], run_id: uuid.UUID) -> None:
    with conn.cursor() as cur:
        cur.executemany(f"""INSERT INTO {META}.lake_pending (table_name, partition, run_id) VALUES (%s, %s, %s)
                            ON CONFLICT (table_name, partition) DO UPDATE SET run_id = EXCLUDED.run_id""",
                        [(table, p, run_id) for p in partitions])


def pending_partitions(conn: psycopg.Connection, table: str) -> list[tuple[str, uuid.UUID]]:
    """Queued partitions of a table that no reconciliation check holds back whole (a partition held
    for some groups or agents only is published without their rows: `engine/quality/holds.py`)."""
    return [tuple(r) for r in conn.execute(
        f"""SELECT partition, run_id FROM {META}.lake_pending p WHERE table_name = %s AND NOT EXISTS (
            SELECT 1 FROM {META}.partition_holds h WHERE h.table_name = p.table_name AND h.partition = p.partition
            AND h.scope = '') ORDER BY partition""", (table,))]


def whole_holds(conn: psycopg.Connection, table: str, partition: str | None = None) -> list[str]:
    """Partitions of a table held whole (or whether one partition is)."""
    return [p for (p,) in conn.execute(
        f"""SELECT DISTINCT partition FROM {META}.partition_holds WHERE table_name = %s AND scope = ''
            AND (%s::text IS NULL OR partition = %s) ORDER BY 1""", (table, partition, partition))]


def held_scopes(conn: psycopg.Connection, table: str, partition: str) -> list[dict[str, str]]:
    """The scopes ({column: value}) a rule holds of a partition: the rows the lake leaves out."""
    return [orjson.loads(s) for (s,) in conn.execute(
        f"""SELECT DISTINCT scope FROM {META}.partition_holds WHERE table_name = %s AND partition = %s
            AND scope <> '' ORDER BY 1""", (table, partition))]


def clear_partition(conn: psycopg.Connection, table: str, partition: str, run_id: uuid.UUID) -> None:
    """Forget a published partition, unless a newer landing marked it again meanwhile."""
    conn.execute(f"DELETE FROM {META}.lake_pending WHERE table_name = %s AND partition = %s AND run_id = %s",
                 (table, partition, run_id))


def finish_run(conn: psycopg.Connection, run_id: uuid.UUID, status: str, error: str | None = None,
               notice: str | None = None) -> dict:
    """Roll the window rows up into the run row; returns the run row. `notice`: what the run did
    not fail on but someone should read (anomalies, deferred windows)."""
    with conn.transaction():
        sums = ", ".join(f"{k} = coalesce((SELECT sum({k}) FROM {META}.sync_windows w WHERE w.run_id = r.run_id), 0)"
                         for k in WINDOW_COUNTS)
        states = ", ".join(f"windows_{s} = (SELECT count(*) FROM {META}.sync_windows w WHERE w.run_id = r.run_id "
                           f"AND w.status = '{s}')" for s in ("landed", "skipped", "held", "anomaly", "deferred"))
        row = conn.execute(
            f"""UPDATE {META}.sync_runs r SET status = %s, error = %s, notice = %s, finished_at = now(), {sums},
                {states}, watermark_after = (SELECT value FROM {META}.watermarks m WHERE m.stream = r.stream
                                             AND m.source = r.source)
                WHERE run_id = %s RETURNING *""", (status, error, notice, run_id))
        cols = [c.name for c in row.description]
        return dict(zip(cols, row.fetchone()))  # type: ignore[arg-type]
