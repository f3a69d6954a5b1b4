"""Quality flows: replaying quarantined rows after a fix (the `wfm quarantine replay` command).

A replay lands the held rows that pass today's parsing and suites (`engine/quality/replay.py`), then
does what a sync does after landing: the reconciliation rules over the partitions it touched,
publication of those partitions to the lake unless a rule holds them back, and what every flow
does after its runs (`flows/runs.py`: an artifact per run, the webhook events delivered).
"""

from __future__ import annotations

import dataclasses

from prefect import flow, get_run_logger
from prefect.artifacts import create_markdown_artifact

from engine import catalog, schema
from engine.quality import replay
from engine.settings import resolve_settings
from flows.runs import after_runs
from tasks.checks import reconcile_landed, replay_quarantined
from tasks.sync import publish_lake


@flow(name="quarantine-replay")
def replay_quarantine(stream: str | None = None, ids: list[int] | None = None, run: str | None = None) -> list[dict]:
    """Replay held rows (all, one stream's, some ids or one run's); returns one summary per stream."""
    settings = resolve_settings()
    schema.ensure(settings.database_url, settings.lake_path)
    if stream is not None and stream not in catalog.IMPORTABLE:
        raise ValueError(f"unknown stream {stream!r}")
    summaries = []
    for name in replay.held_streams(settings.database_url, stream, ids, run):
        report = replay_quarantined(settings.database_url, name, ids, run)
        if report.replayed:
            reconcile_landed(settings.database_url, settings.lake_path, report.run_id, {name: report.partitions},
                             skip_publish=name, label=f"replay {name}", sites=settings.map_sites())
            publish_lake(catalog.IMPORTABLE[name], settings.database_url, settings.lake_path)
        after_runs(settings.database_url, report.runs)       # each connection's run: its artifact, its webhook
        summary = {k: v for k, v in dataclasses.asdict(report).items() if k != "runs"}
        summaries.append({**summary, "partitions": sorted(report.partitions)})
        get_run_logger().info("%s: %d of %d held record(s) replayed", name, report.replayed, report.records)
    rows = "\n".join(f"| {s['stream']} | {s['records']} | {s['replayed']} | {s['still_held']} | {s['run_id']} |"
                     for s in summaries)
    create_markdown_artifact(f"### Quarantine replay\n\n| stream | records | replayed | still held | run |\n"
                             f"|---|---|---|---|---|\n{rows}\n", key="quarantine-replay",
                             description=f"{sum(s['replayed'] for s in summaries)} record(s) replayed")
    return summaries
