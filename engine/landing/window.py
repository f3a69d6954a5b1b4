"""A window of a stream: fetched, checked and landed in one transaction; the lake published after.

One window is one task run: extract → normalize → validate → land, where landing is one
PostgreSQL transaction holding the upsert, the quarantined rows, the window's ledger row, the
lake's to-do entries and the watermark. A window an incremental or snapshot run re-reads with
exactly the content it last landed with is recorded as landed, unchanged, without checking or
upserting it again (`engine/landing/content.py`). Tasks receive settings and URLs, never live
connections; HTTP clients are shared per process so that connection pools and OAuth tokens are.
"""

from __future__ import annotations

import datetime as dt
import threading
import uuid
from dataclasses import dataclass, field

import psycopg
import pyarrow as pa
import pyarrow.compute as pc

from connectors import timing
from connectors.errors import SourceDeferred
from connectors.http import CallStats, SourceClient, breaker_for
from connectors.records import Parsed, Reject
from connectors.settings import SourceSettings
from connectors.streams import Stream, Window, fetch
from engine.landing import anomaly, drift, lake, ledger, warehouse
from engine.landing.content import content_hash
from engine.landing.limits import breaker_failures, source_slot

_clients: dict[SourceSettings, SourceClient] = {}
_clients_lock = threading.Lock()


def client_for(settings: SourceSettings) -> SourceClient:
    """One HTTP client per settings per process (shared connection pool and OAuth token)."""
    with _clients_lock:
        client = _clients.get(settings)
        if client is None:
            client = _clients[settings] = settings.client()
        return client


def close_clients() -> None:
    with _clients_lock:
        for client in _clients.values():
            client.close()
        _clients.clear()


@dataclass(frozen=True)
class RunPlan:
    """What every window task of one stream run needs to know."""

    run_id: uuid.UUID
    stream: Stream
    source: SourceSettings
    database_url: str
    mode: str                        # "incremental" | "backfill" | "snapshot"
    period_end: dt.datetime
    started_at: dt.datetime
    threshold: float | None = None   # failing share above which a window is held back
    dry_run: bool = False
    force: bool = False              # land every window in full, even one whose content is unchanged
    breaker_scope: str | None = None  # the runs sharing one circuit breaker per source (None: this run)
    connection: str = warehouse.DEFAULT   # whose rows these are: the connection (or site) name


@dataclass
class WindowReport:
    window: Window
    status: str                      # landed | held | anomaly | deferred | dry-run
    counts: dict[str, int] = field(default_factory=dict)
    partitions: set[str] = field(default_factory=set)
    message: str | None = None



def sync_window(plan: RunPlan, window: Window) -> WindowReport:
    """Extract, validate and land one window, exactly once — or defer it, without a request, when
    the run's circuit breaker for the source is open or the source is in maintenance."""
    stats = CallStats()
    breaker = breaker_for(plan.breaker_scope or str(plan.run_id), plan.source.key, breaker_failures())
    try:
        breaker.check(plan.source.system, plan.stream.endpoint)   # not even a slot while open
        # at most N requests in flight to this host, fleet-wide
        with timing.stage("source slot wait"), source_slot(plan.source.url):
            parsed = fetch(client_for(plan.source), plan.stream, window, stats, breaker)
    except SourceDeferred as exc:
        return _defer(plan, window, str(exc), stats.snapshot())
    return land_batch(plan, window, parsed, stats.snapshot())


def _defer(plan: RunPlan, window: Window, message: str, calls: dict[str, int]) -> WindowReport:
    """Record a window as deferred: not failed, not landed; the next run (or backfill) takes it up."""
    counts = {"api_calls": calls.get("calls", 0), "retries": calls.get("retries", 0),
              "throttled": calls.get("throttled", 0)}
    with psycopg.connect(plan.database_url) as conn, conn.transaction():
        ledger.record_window(conn, plan.run_id, window, "deferred", counts, message)
    return WindowReport(window, "deferred", counts, message=message)


def land_batch(plan: RunPlan, window: Window, parsed: Parsed, calls: dict[str, int] | None = None) -> WindowReport:
    """Validate a parsed batch and land it: the path every batch takes, from an API or a file.

    Rows failing an error-severity expectation go to quarantine with the reason; if their share
    exceeds the threshold nothing of the batch lands ("held"); otherwise the good rows are
    deduplicated on the key and upserted in the same transaction as the ledger row. A window whose
    schema drifted (a required field missing, a type changed: `engine/landing/drift.py`) is held whole.
    """
    with timing.stage("drift + content hash"):
        # a file's columns have their own contract (connectors/files/__init__.py): drift is about API windows
        changes = drift.inspect(plan.stream, parsed) if plan.mode != "import" else drift.DriftReport(plan.stream.name)
        table = drift.with_extra(plan.stream, parsed)
        digest = None   # only runs that re-read landed windows (lookbacks, snapshots) can find one unchanged
        if plan.mode in ("incremental", "snapshot") and not (plan.dry_run or plan.force or changes.changes):
            digest = content_hash(plan.stream, table, parsed.rejects)
    if digest is not None:
        if (report := _land_unchanged(plan, window, table, parsed, digest, calls or {})) is not None:
            return report
    with timing.stage("GX import"):
        from engine.quality import gate as quality  # Great Expectations: imported by the first batch that needs it
    with timing.stage("GX"):
        result = quality.validate(plan.stream.name, table)
        decision = quality.gate(result, plan.threshold, window=window.label)
    if changes.breaking:
        decision = quality.GateDecision(False, f"{plan.stream.name} window {window.label}: {changes.message}")
    good, _ = result.split(table)
    rejects = drift.quarantined(parsed, changes) if changes.breaking else list(parsed.rejects) + [
        Reject("; ".join(names), None, parsed.records[row]) for row, names in sorted(result.failed_rows.items())]
    with timing.stage("COPY + upsert"):
        clean = warehouse.deduplicate(good, plan.stream.key)
    calls = calls or {}
    counts = {"rows_fetched": parsed.table.num_rows + len(parsed.rejects),
              "duplicates_removed": good.num_rows - clean.num_rows, "rows_quarantined": len(rejects),
              "api_calls": calls.get("calls", 0), "retries": calls.get("retries", 0),
              "throttled": calls.get("throttled", 0)}
    if plan.dry_run:   # the ledger says what would have happened; no data, quarantine or watermark
        with psycopg.connect(plan.database_url) as conn, conn.transaction():
            ledger.record_window(conn, plan.run_id, window, "dry-run", counts,
                                 None if decision.publish else decision.message)
        return WindowReport(window, "dry-run", counts, message=None if decision.publish else decision.message)
    return _land(plan, window, clean if decision.publish else None, rejects, counts, decision.message, changes,
                 digest)


def _land_unchanged(plan: RunPlan, window: Window, table: pa.Table, parsed: Parsed, digest: str,
                    calls: dict[str, int]) -> WindowReport | None:
    """Record the window as landed, every row unchanged, if its last landing had the same content
    (`engine/landing/content.py`); None when it did not, and the window takes the full path."""
    with timing.stage("ledger + quarantine"), psycopg.connect(plan.database_url) as conn, conn.transaction():
        if ledger.last_content_hash(conn, plan.stream.name, window, plan.connection) != digest:
            return None
        distinct = warehouse.deduplicate(table, plan.stream.key).num_rows
        # rows the checks held back last time are in quarantine already: here they count as unchanged
        counts = {"rows_fetched": table.num_rows + len(parsed.rejects), "duplicates_removed": table.num_rows - distinct,
                  "rows_unchanged": distinct, "rows_quarantined": len(parsed.rejects), "api_calls": calls.get("calls", 0),
                  "retries": calls.get("retries", 0), "throttled": calls.get("throttled", 0)}
        ledger.record_window(conn, plan.run_id, window, "landed", counts, content_hash=digest)
        if plan.mode == "incremental":
            ledger.advance_watermark(conn, plan.run_id, plan.stream.name, plan.period_end, plan.started_at,
                                     plan.connection)
    return WindowReport(window, "landed", counts)


def _land(plan: RunPlan, window: Window, table: pa.Table | None, rejects: list[Reject],
          counts: dict[str, int], message: str | None, changes: drift.DriftReport | None = None,
          digest: str | None = None) -> WindowReport:
    """The one transaction that makes a window's outcome durable."""
    status = "landed" if table is not None else "held"
    partitions: set[str] = set()
    with timing.stage("ledger + quarantine"), psycopg.connect(plan.database_url) as conn, conn.transaction():
        odd = None   # far fewer rows than the window's recent past: landed, but holds the watermark
        if table is not None and plan.stream.incremental and plan.mode in ("incremental", "backfill"):
            odd = anomaly.judge(conn, plan.stream.name, window, counts["rows_fetched"], source=plan.connection)
        if odd is not None:
            status, message = "anomaly", odd.message
            anomaly.record(conn, plan.run_id, plan.stream.name, window, odd, source=plan.connection)
        if table is not None:
            with timing.stage("COPY + upsert"):
                upserted = warehouse.upsert(conn, plan.stream, table, plan.run_id, plan.started_at, plan.connection)
            counts.update(rows_inserted=upserted.inserted, rows_updated=upserted.updated,
                          rows_unchanged=upserted.unchanged)
            # unchanged rows are already in the lake: only a partition that changed is rebuilt
            partitions = (partitions_of(plan.stream, table, plan.connection)
                          if upserted.inserted or upserted.updated else set())
            ledger.mark_partitions(conn, plan.stream.name, partitions, plan.run_id)
        ledger.quarantine(conn, plan.stream.name, plan.run_id, window, rejects, plan.connection)
        if changes is not None:
            drift.record(conn, plan.run_id, changes, plan.connection)
        ledger.record_window(conn, plan.run_id, window, status, counts, None if status == "landed" else message,
                             digest if status == "landed" else None)
        if plan.mode == "incremental":
            ledger.advance_watermark(conn, plan.run_id, plan.stream.name, plan.period_end, plan.started_at,
                                     plan.connection)
    return WindowReport(window, status, counts, partitions, None if status == "landed" else message)


def partitions_of(stream: Stream, table: pa.Table, owner: str) -> set[str]:
    """The lake partitions a batch of `owner`'s rows touches."""
    if stream.partition is None:
        return {lake.owned_partition(stream, owner, None)} if table.num_rows else set()
    column = warehouse.owner_column(stream)
    if lake.appends(stream):      # one file per snapshot, not the whole day again
        return {lake.snapshot_partition(m, (column, owner) if column else None)
                for m in pc.unique(table.column(stream.partition)).to_pylist() if m}
    return {lake.owned_partition(stream, owner, day) for day in warehouse.partition_dates(stream, table)}


def publish_lake(stream: Stream, database_url: str, lake_path: str) -> list[str]:
    """Rebuild the stream's queued Parquet partitions from committed rows."""
    with timing.stage("lake publication"):
        return lake.publish_parallel(database_url, stream, lake_path)
