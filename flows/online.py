"""`sync_online`: the contact center's online picture in the warehouse within seconds, every minute.

A thin flow: both online endpoints pulled at once, each landed by `tasks/online.py`
(`engine/landing/snapshots.py`), with its pull→commit time logged against the 5 s target.

It runs every minute as the `every-minute` deployment of `deployments/catalog.py`.
"""

from __future__ import annotations

import datetime as dt

from prefect import flow, get_run_logger
from prefect.task_runners import ThreadPoolTaskRunner

from connectors.settings import CONTACT_CENTER
from engine import schema
from engine.landing.snapshots import STREAMS, TARGET_SECONDS, UTC, group_ids_of, prepare
from engine.landing.window import client_for
from engine.settings import resolve_settings
from tasks.online import land_snapshot


@flow(name="sync-online", task_runner=ThreadPoolTaskRunner(max_workers=len(STREAMS)))
def sync_online() -> dict:
    """Land one snapshot of agent statuses and group load; returns each stream's pull→commit time."""
    logger = get_run_logger()
    settings = resolve_settings()
    schema.ensure(settings.database_url, settings.lake_path)
    source = settings.source(CONTACT_CENTER)
    if (window := client_for(source).in_maintenance()) is not None:   # a moment not pulled: nothing to resume
        logger.warning("online snapshot skipped: the contact center is in its maintenance window %s", window)
        return {"skipped": f"maintenance window {window}"}
    prepare(settings.database_url)
    now = dt.datetime.now(UTC).replace(microsecond=0)
    groups = group_ids_of(settings.database_url, source)
    futures = [land_snapshot.submit(s.name, source, settings.database_url, settings.lake_path, now,
                                    groups if s.ids else ()) for s in STREAMS]
    results = {r["stream"]: r for r in (f.result() for f in futures)}
    for name, result in results.items():
        slow = result["pull_to_commit_ms"] > TARGET_SECONDS * 1000
        (logger.warning if slow else logger.info)("%s: %s rows, pull→commit %.0f ms%s", name, result["rows"],
                                                  result["pull_to_commit_ms"], " (over the 5 s target)" if slow else "")
    return results
