"""Maintenance flows: online snapshot files compacted hourly, old rows pruned daily.

    compact_online   every hour at :05 — each ended hour's snapshot files → hour-HH.parquet
    prune            daily at 03:30 — every retention policy of `engine/retention.py`
"""

from __future__ import annotations

import datetime as dt

from prefect import flow, get_run_logger

from engine import paths
from engine.landing.snapshots import STREAMS
from engine.settings import resolve_settings
from tasks.maintenance import compact_snapshots, prune_tables

UTC = dt.timezone.utc


@flow(name="compact-online")
def compact_online() -> dict:
    """Compact the online tables' snapshot files of every hour that has ended."""
    settings = resolve_settings()
    now = dt.datetime.now(UTC)
    result = {s.name: compact_snapshots(settings.lake_path, s, now) for s in STREAMS}
    get_run_logger().info("compacted: %s", result)
    return result


@flow(name="prune")
def prune(tables: list[str] | None = None, dry_run: bool = False) -> list[dict]:
    """Delete rows (and GX validation files, online lake days) older than their retention."""
    settings = resolve_settings()
    done = prune_tables(settings.database_url, paths.data_dir(), settings.lake_path, tables, dry_run)
    logger = get_run_logger()
    for p in done:
        logger.info("%s: %s %d (older than %s days%s)", p.policy, "would prune" if dry_run else "pruned", p.rows,
                    p.days, f"; {p.note}" if p.note else "")
    return [{"policy": p.policy, "days": p.days, "rows": p.rows, "note": p.note} for p in done]
