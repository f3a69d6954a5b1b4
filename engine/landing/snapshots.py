"""Online snapshots: one pull of an online endpoint landed through the same path as every window.

The same landing path as every other stream (`engine/landing/window.py:land_batch`: quality
gate, quarantine, upsert and ledger row in one transaction), without what a minute-by-minute
snapshot does not need: no window planning, no personnel request (group ids are read from the
landed `cc_groups`, falling back to `/personnel` when none are landed). Each snapshot reports
`pull_to_commit_ms`: from the moment its request is sent to the commit of its rows. The Parquet
partition is rebuilt after the commit, outside that time.
"""

from __future__ import annotations

import datetime as dt
import time
import uuid

import psycopg

from connectors import contact_center as cc
from connectors.http import CallStats
from connectors.settings import SourceSettings
from connectors.streams import Window, fetch, id_batches
from engine.landing import lake, ledger, warehouse
from engine.landing.window import RunPlan, client_for, land_batch

UTC = dt.timezone.utc
STREAMS = (cc.ONLINE_AGENT_STATUS, cc.ONLINE_GROUP_LOAD)
TARGET_SECONDS = 5.0
_prepared: set[str] = set()      # databases whose tables this process has already ensured


def prepare(database_url: str) -> None:
    if database_url in _prepared:
        return
    with psycopg.connect(database_url, autocommit=True) as conn:
        ledger.ensure_meta(conn)
        for stream in (*STREAMS, cc.CC_GROUPS):
            warehouse.ensure_table(conn, stream)
    _prepared.add(database_url)


def group_ids_of(database_url: str, source, connection: str = warehouse.DEFAULT) -> tuple[str, ...]:
    with psycopg.connect(database_url) as conn:
        ids = [r[0] for r in conn.execute("SELECT group_id FROM wfm.cc_groups WHERE source = %s ORDER BY group_id",
                                          (connection,))]
    return tuple(ids or cc.personnel_ids(client_for(source))["groups"])


def land_snapshot(stream_name: str, source: SourceSettings, database_url: str, lake_path: str, now: dt.datetime,
                  group_ids: tuple[str, ...] = (), connection: str = warehouse.DEFAULT) -> dict:
    """Pull one online endpoint and land the snapshot; returns counts and `pull_to_commit_ms`."""
    stream = next(s for s in STREAMS if s.name == stream_name)
    windows = [Window(now, now, batch) for batch in id_batches(group_ids)] if stream.ids else [Window(now, now)]
    run_id = uuid.uuid4()
    with psycopg.connect(database_url, autocommit=True) as conn:
        ledger.start_run(conn, run_id, stream.name, "snapshot", now, now, windows, now, source=connection)
    plan = RunPlan(run_id, stream, source, database_url, "snapshot", now, now, connection=connection)
    pulled = time.perf_counter()
    reports = []
    try:
        for window in windows:
            stats = CallStats()
            parsed = fetch(client_for(plan.source), stream, window, stats)
            reports.append(land_batch(plan, window, parsed, stats.snapshot()))
    except Exception as exc:
        with psycopg.connect(database_url, autocommit=True) as conn:
            ledger.finish_run(conn, run_id, "failed", str(exc).splitlines()[0][:2000] if str(exc) else None)
        raise
    committed = time.perf_counter()
    held = [r.message or r.status for r in reports if r.status != "landed"]
    with psycopg.connect(database_url, autocommit=True) as conn:
        run = ledger.finish_run(conn, run_id, "failed" if held else "completed", "; ".join(held)[:2000] or None)
        lake.publish(conn, stream, lake_path)
    landed = sum(r.counts.get(k, 0) for r in reports for k in ("rows_inserted", "rows_updated", "rows_unchanged"))
    return {"stream": stream.name, "status": run["status"], "rows": landed,
            "pull_to_commit_ms": round((committed - pulled) * 1000, 1), "held": held}
