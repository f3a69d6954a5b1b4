"""Helpers of the quality tests: landing without a flow run, and reading a flow's artifacts.

The quality tests need landed data far more often than they need Prefect, so `land` does what
`sync_stream` does between planning and publication — plan the windows, run `sync_window` on
each, close the run in the ledger — in a fraction of the time. It needs the `wfm_env` fixture.
"""

from __future__ import annotations

import datetime as dt
import uuid

import psycopg

from engine import catalog
from engine.landing import ledger, warehouse
from engine.landing.window import RunPlan, sync_window
from engine.settings import resolve_settings
from flows.sync import plan_period, request_windows


def land(stream_name: str, first: dt.date | None = None, last: dt.date | None = None,
         threshold: float | None = None, mode: str | None = None, force: bool = False) -> set[str]:
    """Land a backfill of `first`..`last` (or the stream's snapshot period); returns the partitions.

    `mode` lands the same windows as that kind of run would (e.g. "incremental", which re-reads).
    """
    settings = resolve_settings()
    stream = catalog.STREAMS[stream_name]
    now = dt.datetime.now(dt.timezone.utc).replace(microsecond=0)
    run_id = uuid.uuid4()
    with psycopg.connect(settings.database_url, autocommit=True) as conn:
        ledger.ensure_meta(conn)
        warehouse.ensure_table(conn, stream)
        if stream.ids == "employees":
            warehouse.ensure_table(conn, catalog.STREAMS["employees"])
        planned, start, end = plan_period(stream, None, now, first, last)
        todo = request_windows(stream, settings, conn, start, end)
        ledger.start_run(conn, run_id, stream_name, mode or planned, start, end, todo, now)
    plan = RunPlan(run_id, stream, settings.source(stream.system), settings.database_url, mode or planned, end, now,
                   threshold, force=force)
    partitions: set[str] = set()
    for window in todo:
        partitions |= sync_window(plan, window).partitions
    with psycopg.connect(settings.database_url, autocommit=True) as conn:
        ledger.finish_run(conn, run_id, "completed")
    return partitions


def latest_artifact(key: str) -> str:
    """The markdown of the newest Prefect artifact with this key ("" if none); needs `prefect_harness`."""
    from prefect.client.orchestration import get_client
    from prefect.client.schemas.filters import ArtifactFilter, ArtifactFilterKey
    from prefect.client.schemas.sorting import ArtifactSort

    with get_client(sync_client=True) as client:
        found = client.read_artifacts(artifact_filter=ArtifactFilter(key=ArtifactFilterKey(any_=[key])),
                                      sort=ArtifactSort.CREATED_DESC, limit=1)
    return str(found[0].data) if found else ""
