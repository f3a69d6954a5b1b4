"""`sync_online`: every contact center's online picture in the warehouse within seconds, every minute.

A thin flow: for each contact-center connection (or those named by `connections`), both online
endpoints pulled at once, each landed as that connection's rows by `tasks/online.py`
(`engine/landing/snapshots.py`), with its pull→commit time logged against the 5 s target. The
connections are snapshotted side by side, at most `MAX_CONNECTIONS` at a time (each is two
requests in flight, against the source hosts' limits of `engine/landing/limits.py`).

One connection never stops the others: a connection in its maintenance window is `skipped` (a
moment not pulled: nothing to resume); one that is down, refuses or has a secret unset is
`failed`, its runs closed `failed` in the ledger. The result says per connection what happened;
when any connection failed, the flow fails at the end — after every other connection landed and
every run got its artifact and webhook events — with one line naming each failed connection and
why, so that a deployment's failure alerts whoever watches it. A skip is not a failure.

It runs every minute as the `every-minute` deployment of `deployments/catalog.py`.
"""

from __future__ import annotations

import datetime as dt
import uuid

import psycopg
from prefect import flow, get_run_logger
from prefect.task_runners import ThreadPoolTaskRunner

from connectors.settings import CONTACT_CENTER
from engine import schema
from engine.landing import runs
from engine.landing.snapshots import STREAMS, TARGET_SECONDS, UTC, prepare
from engine.landing.window import client_for
from engine.settings import NotConfigured, Settings, resolve_settings
from flows.runs import after_runs
from tasks.online import land_snapshot

MAX_CONNECTIONS = 4          # contact centers snapshotted at once


class OnlineFailed(RuntimeError):
    """Connections whose snapshot failed; the message names each one and why, in one line."""


@flow(name="sync-online", task_runner=ThreadPoolTaskRunner(max_workers=MAX_CONNECTIONS * len(STREAMS)))
def sync_online(connections: list[str] | None = None) -> dict[str, dict]:
    """Land one snapshot of agent statuses and group load from every contact center (or those
    named); returns, per connection, its `status` (completed, skipped, failed) and each stream's
    rows and pull→commit time. Raises `OnlineFailed` at the end if any connection failed."""
    settings = resolve_settings()
    chosen = chosen_connections(settings, connections)
    schema.ensure(settings.database_url, settings.lake_path)
    prepare(settings.database_url)
    now = dt.datetime.now(UTC).replace(microsecond=0)
    results: dict[str, dict] = {}
    pending: dict[str, list] = {}
    for name in chosen:
        started = _start(settings, name, now)
        if isinstance(started, dict):
            results[name] = started
        else:
            pending[name] = started
    run_ids = []
    for name, futures in pending.items():
        results[name] = _collect(name, futures)
        run_ids += [run_id for run_id, _ in futures]
    with psycopg.connect(settings.database_url) as conn:
        after_runs(settings.database_url, runs.rows(conn, run_ids))
    failed = {name: r["error"] for name, r in results.items() if r["status"] == "failed"}
    if failed:
        raise OnlineFailed(f"{len(failed)} of {len(chosen)} contact center(s) not snapshotted: "
                           + "; ".join(f"{name}: {error}" for name, error in failed.items()))
    return results


def chosen_connections(settings: Settings, connections: list[str] | None) -> list[str]:
    """Every contact-center connection, or those named; a name that is not one is a one-line error."""
    known = settings.connections(CONTACT_CENTER)
    if not known:
        raise NotConfigured(f"{CONTACT_CENTER} is not configured: set WFM_CC_URL or declare a connection")
    unknown = [c for c in connections or [] if c not in known]
    if unknown:
        raise ValueError(f"unknown contact-center connection(s) {', '.join(unknown)} ({settings.origin}); "
                         f"known: {', '.join(known)}")
    return [c for c in known if not connections or c in connections]


def _start(settings: Settings, name: str, now: dt.datetime) -> dict | list:
    """Submit one connection's snapshots: [(run id, future)], or its result when it is not asked."""
    try:
        source = settings.source(CONTACT_CENTER, name)
    except NotConfigured as exc:           # a secret unset: this connection's failure only
        return {"status": "failed", "error": runs.first_line(exc), "streams": {}}
    if (window := client_for(source).in_maintenance()) is not None:
        get_run_logger().warning("%s: online snapshot skipped: the contact center is in its maintenance window %s",
                                 name, window)
        return {"status": "skipped", "skipped": f"maintenance window {window}", "streams": {}}
    submitted = []
    for stream in STREAMS:
        run_id = uuid.uuid4()
        submitted.append((run_id, land_snapshot.submit(stream.name, source, settings.database_url,
                                                       settings.lake_path, now, None if stream.ids else (), name,
                                                       run_id)))
    return submitted


def _collect(name: str, futures: list) -> dict:
    """One connection's outcome: each stream's result, or its error in one line."""
    logger = get_run_logger()
    streams: dict[str, dict] = {}
    for stream, (_, future) in zip(STREAMS, futures):
        future.wait()
        try:
            result = future.result()
        except Exception as exc:
            streams[stream.name] = {"stream": stream.name, "status": "failed", "error": runs.first_line(exc)}
            logger.warning("%s %s: %s", name, stream.name, streams[stream.name]["error"])
            continue
        result = {k: v for k, v in result.items() if k != "run"}
        streams[stream.name] = result
        slow = result["pull_to_commit_ms"] > TARGET_SECONDS * 1000
        (logger.warning if slow else logger.info)("%s %s: %s rows, pull→commit %.0f ms%s", name, stream.name,
                                                  result["rows"], result["pull_to_commit_ms"],
                                                  " (over the 5 s target)" if slow else "")
    problems = [f"{s}: {r.get('error') or '; '.join(r['held'])}" for s, r in streams.items() if r["status"] != "completed"]
    return {"status": "failed" if problems else "completed", "streams": streams,
            **({"error": "; ".join(problems)} if problems else {})}
