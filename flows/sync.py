"""Sync flows: one per stream family and `sync_all`, all built on `sync_stream`.

    incremental (no dates):  from the watermark minus the stream's lookback up to now
    backfill (--start/--end): the given days; the watermark does not move; windows an earlier
                              run landed are skipped unless force=True
    snapshot (no cursor):     the family's period (today, now, or this year)
"""

from __future__ import annotations

import dataclasses
import datetime as dt
import logging
import uuid
from dataclasses import dataclass, field

import psycopg
from prefect import flow, get_run_logger
from prefect.context import get_run_context
from prefect.task_runners import ThreadPoolTaskRunner

from connectors import timing
from connectors.config.connections import DEFAULT
from connectors.config.systems import SYSTEMS
from connectors.contact_center import personnel_ids
from connectors.errors import SourceDeferred, SourceUnavailable
from connectors.http import Breaker, breaker_for, forget_breakers
from connectors.settings import CONTACT_CENTER, ONEC
from connectors.streams import Stream, Window, bucket_count, windows
from engine import catalog, derived, progress, schema
from engine.landing import lake, ledger, roster, runs, warehouse
from engine.landing.limits import breaker_failures, source_slot
from engine.landing.window import RunPlan, client_for
from engine.quality.reconcile import period_days
from engine.settings import Settings, resolve_settings
from flows.runs import after_runs
from tasks.checks import reconcile_landed
from tasks.derived import build_agent_employee_map
from tasks.sync import publish_lake, sync_window

log = logging.getLogger(__name__)
UTC = dt.timezone.utc
INITIAL_DAYS = 7   # how far back an incremental stream with no watermark starts


class SyncFailed(RuntimeError):
    """A stream run ended with held or failed windows; the message is one line per problem."""


def plan_period(stream: Stream, watermark: dt.datetime | None, now: dt.datetime,
                start: dt.date | None, end: dt.date | None) -> tuple[str, dt.datetime, dt.datetime]:
    """(mode, period start, period end) of a run."""
    family = catalog.FAMILY_OF[stream.name]
    if not stream.incremental and family.snapshot_period is catalog.instant:
        return "snapshot", now, now          # an online snapshot is always of this moment
    if start is not None or end is not None:
        first = start or (end or now.date())
        last = end or now.date()
        if last < first:
            raise ValueError(f"--end {last} is before --start {first}")
        return "backfill", _midnight(first), _midnight(last) + dt.timedelta(days=1)
    if not stream.incremental:
        period_start, period_end = family.snapshot_period(now)
        return "snapshot", period_start, period_end
    base = watermark or _midnight(now.date()) - dt.timedelta(days=INITIAL_DAYS)
    return "incremental", _midnight((base - stream.lookback).date()), now


def _midnight(day: dt.date) -> dt.datetime:
    return dt.datetime.combine(day, dt.time(), UTC)


def request_windows(stream: Stream, settings: Settings, conn: psycopg.Connection,
                    start: dt.datetime, end: dt.datetime, now: dt.datetime | None = None,
                    breaker: Breaker | None = None, connection: str = DEFAULT) -> list[Window]:
    """The windows of a run of one connection: period spans × id buckets, with the context a request needs.

    A history stream asks, for each window, every id known for its period (`engine/landing/roster.py`):
    today's /personnel and the agents or groups that have left it since. A snapshot asks today's.
    When /personnel cannot be asked (the source is down or in maintenance), a history stream
    plans with the ids the warehouse remembers, and its windows are deferred or fail on their own.
    """
    if stream.ids in ("agents", "groups"):
        source = settings.source(stream.system, connection)
        try:
            with source_slot(source.url):   # the id lookup is a request to the source too
                listed: list[str] | None = personnel_ids(client_for(source), breaker)[stream.ids]
        except (SourceDeferred, SourceUnavailable) as exc:
            if not stream.incremental:
                raise
            log.warning("%s; planning with the ids the warehouse knows", _one_line_text(exc))
            listed = None
        if not stream.incremental:
            return windows(stream, start, end, listed) if listed else []
        known = roster.look(conn, connection, stream.ids, listed, now or dt.datetime.now(UTC), former=source.key)
        planned = windows(stream, start, end, known.ids, buckets=bucket_count(len(known.current)))
        return [narrowed for window in planned if (narrowed := known.narrow(window)).ids]
    if stream.ids == "employees":
        employees = conn.execute(
            """SELECT employee_id, norm_week, norm_week_change_date FROM wfm.employees WHERE source = %s
               AND (finish_work IS NULL OR finish_work >= %s) ORDER BY employee_id""",
            (connection, start.date())).fetchall()
        norms = {e: [(w, d.isoformat())] for e, w, d in employees}
        return [dataclasses.replace(w, context={"norms": norms, "mode": "month"})
                for w in windows(stream, start, end, list(norms))]
    return windows(stream, start, end)


@flow(name="sync-stream", flow_run_name="sync {stream} {connection}", task_runner=ThreadPoolTaskRunner(max_workers=4))
def sync_stream(stream: str, start: dt.date | None = None, end: dt.date | None = None, force: bool = False,
                dry_run: bool = False, threshold: float | None = None, breaker_scope: str | None = None,
                connection: str = DEFAULT) -> dict:
    """Sync one stream of one connection into PostgreSQL and the Parquet lake; returns the run's ledger row.

    `breaker_scope`: the sync this run is part of; its streams share one circuit breaker per
    source, so a dead source costs one retry budget per sync, not one per stream. The run's
    lifecycle is `engine/landing/runs.py`'s: whatever raises after the run opened closes it `failed`."""
    declared = catalog.STREAMS[stream]
    settings = resolve_settings()
    source = settings.source(declared.system, connection)
    now = dt.datetime.now(UTC).replace(microsecond=0)
    with timing.stage("planning + run ledger"):
        schema.ensure(settings.database_url, settings.lake_path)
    run_id = uuid.uuid4()
    scope = breaker_scope or str(run_id)
    try:
        run, mode, period_end, todo = _open(declared, settings, source, now, start, end, force, run_id, scope,
                                            connection)
        with run:
            plan = RunPlan(run_id, declared, source, settings.database_url, mode, period_end, now, threshold, dry_run,
                           force, scope, connection)
            outcome = _land_windows(plan, todo)
            held = None if dry_run else _check_and_publish(plan, settings, outcome)
            with timing.stage("finish (run ledger, artifact, webhooks)"):
                row = run.close("failed" if outcome.problems else "deferred" if outcome.deferred else "completed",
                                "; ".join(p for p in [*outcome.problems, held] if p) or None,
                                _notice(outcome.notices, outcome.deferred))
    finally:
        if breaker_scope is None:
            forget_breakers(scope)
    with timing.stage("finish (run ledger, artifact, webhooks)"):
        for message in outcome.notices:
            get_run_logger().warning("anomaly: %s", message)
        after_runs(settings.database_url, [row])
    if outcome.problems:
        later = f"; {len(outcome.deferred)} deferred" if outcome.deferred else ""
        raise SyncFailed(f"{_label(stream, connection)}: {len(outcome.problems)} window(s) not landed{later} — "
                         f"{outcome.problems[0]}")
    if held:
        raise SyncFailed(f"{_label(stream, connection)}: {held}")
    return row


def _open(declared: Stream, settings: Settings, source, now: dt.datetime, start: dt.date | None,
          end: dt.date | None, force: bool, run_id: uuid.UUID, scope: str,
          connection: str) -> tuple[runs.Run, str, dt.datetime, list[Window]]:
    """Plan the run's windows and open it in the ledger; a backfill skips the windows landed before.
    A source down before the first window is a run closed `failed` at once (and its error raised)."""
    with timing.stage("planning + run ledger"), psycopg.connect(settings.database_url, autocommit=True) as conn:
        warehouse.ensure_table(conn, declared)
        if declared.ids == "employees":
            warehouse.ensure_table(conn, catalog.STREAMS["employees"])
        stream = declared.name
        mode, period_start, period_end = plan_period(declared, ledger.watermark(conn, stream, connection), now,
                                                     start, end)
        breaker = breaker_for(scope, source.key, breaker_failures())   # the windows' tasks share it
        try:
            todo = request_windows(declared, settings, conn, period_start, period_end, now, breaker, connection)
        except Exception as exc:   # the source is down before the first window: the ledger says so too
            failed = runs.failed_run(conn, settings.database_url, stream, mode, period_start, period_end, exc, now,
                                     _flow_run_id(), connection, run_id)
            after_runs(settings.database_url, [failed])
            raise
        run = runs.open_run(conn, settings.database_url, stream, mode, period_start, period_end, todo, now,
                            _flow_run_id(), connection, run_id)
        with run:
            if mode == "backfill" and not force:
                done = ledger.landed_windows(conn, stream, period_start, period_end, connection)
                skipped = [w for w in todo if (w.start, w.end, ledger.ids_hash(w)) in done]
                ledger.mark_skipped(conn, run_id, skipped)
                todo = [w for w in todo if w not in skipped]
    get_run_logger().info("%s (%s): %s %s..%s, %d windows", stream, connection, mode, period_start, period_end,
                          len(todo))
    return run, mode, period_end, todo


@dataclass
class _Outcome:
    """What the windows of a run came to."""

    problems: list[str] = field(default_factory=list)   # held or failed: the run fails
    notices: list[str] = field(default_factory=list)    # anomalies: landed, but the watermark waits for them
    deferred: list[str] = field(default_factory=list)   # not asked (circuit open, maintenance): the next run's
    landed: set[str] = field(default_factory=set)       # partitions
    inserted: int = 0


def _land_windows(plan: RunPlan, todo: list[Window]) -> _Outcome:
    """Every window a task of its own (bounded by the flow's task runner); their reports summed up."""
    stream = plan.stream.name
    progress.emit("start", stream, len(todo))
    futures = [sync_window.submit(plan, window) for window in todo]
    outcome = _Outcome()
    for future in futures:
        future.wait()
        state = future.state
        progress.emit("advance", stream)
        if not state.is_completed():
            outcome.problems.append(_one_line(state))
            continue
        report = future.result()
        outcome.landed |= report.partitions
        outcome.inserted += report.counts.get("rows_inserted", 0)
        if report.status == "held":
            outcome.problems.append(report.message)
        elif report.status == "anomaly":
            outcome.notices.append(report.message)
        elif report.status == "deferred":
            outcome.deferred.append(report.message)
    return outcome


def _check_and_publish(plan: RunPlan, settings: Settings, outcome: _Outcome) -> str | None:
    """Reconciliation of what landed, then the lake from committed rows; returns why the run is held, if it is."""
    declared, stream = plan.stream, plan.stream.name
    if outcome.inserted >= warehouse.ANALYZE_AFTER_ROWS:   # the checks and readers that follow plan with fresh statistics
        with timing.stage("reconciliation"), psycopg.connect(settings.database_url, autocommit=True) as conn:
            warehouse.analyze(conn, declared)
    held = None
    try:   # reconciliation first: a partition it holds back is not published
        with timing.stage("reconciliation"):
            checks = reconcile_landed(settings.database_url, settings.lake_path, plan.run_id, {stream: outcome.landed},
                                      skip_publish=stream, label=_label(stream, plan.connection),
                                      sites=settings.map_sites())
        held = f"reconciliation held {len(checks.held)} partition(s) — {checks.message}" if checks.errors else None
    except Exception as exc:  # a broken rule must not keep what landed from being published
        held = f"reconciliation failed: {_one_line_text(exc)}"
    publish_lake(declared, settings.database_url, settings.lake_path)
    return held


def _notice(anomalies: list[str], deferred: list[str]) -> str | None:
    """What the run did not fail on but someone should read, in one line."""
    parts = []
    if deferred:
        parts.append(f"{len(deferred)} window(s) deferred to the next run — {deferred[0]}")
    if anomalies:
        more = f" (and {len(anomalies) - 1} more window(s))" if len(anomalies) > 1 else ""
        parts.append(f"anomaly: {anomalies[0]}{more}")
    return "; ".join(parts)[:2000] or None


def _label(stream: str, connection: str) -> str:
    """How messages name a run: `agent_calls (cc-north)`; a single-source installation's just `agent_calls`."""
    return stream if connection == DEFAULT else f"{stream} ({connection})"


def _one_line_text(exc: BaseException) -> str:
    return str(exc).splitlines()[0] if str(exc) else type(exc).__name__


def _one_line(state) -> str:
    try:
        state.result()
    except Exception as exc:  # the window task's own one-line error
        return str(exc).splitlines()[0] if str(exc) else type(exc).__name__
    return state.message or state.name


def _flow_run_id() -> str | None:
    try:
        return str(get_run_context().flow_run.id)
    except Exception:
        return None


def stream_runner(dask_address: str | None = None):
    """`sync_stream` with its windows on a local thread pool (default) or on a Dask cluster.

    Threads suit these I/O-bound windows on one machine; `dask_address` (`tcp://host:8786`) spreads
    a wide backfill over the cluster's workers. Either way the same windows land the same rows.
    """
    if not dask_address:
        return sync_stream
    from prefect_dask import DaskTaskRunner

    return sync_stream.with_options(task_runner=DaskTaskRunner(address=dask_address))


def _sync_streams(names: list[str], start: dt.date | None, end: dt.date | None, force: bool,
                  dry_run: bool, dask_address: str | None = None, connections: list[str] | None = None) -> list[dict]:
    """Run each stream for each connection of its system (or the `connections` named), one after
    another; one failing stream or connection does not stop the others, and the error says which
    failed and why.

    `all` means every stream of the systems that are configured; naming a stream of a system
    that is not configured is an error.
    """
    if not names:
        raise ValueError("no streams given: name streams, families or 'all'")
    today = dt.datetime.now(UTC).date()
    if (start is not None or end is not None) and (end or today) < (start or end or today):
        # before any stream runs: the online snapshots, which ignore the period, would land first
        raise ValueError(f"--end {end or today} is before --start {start}")
    settings = resolve_settings()
    chosen = catalog.resolve(names)
    if "all" in names:
        skipped = sorted({s.system for s in chosen if not settings.configured(s.system)})
        chosen = [s for s in chosen if settings.configured(s.system)]
        if skipped:
            get_run_logger().warning("not configured, skipped: %s", ", ".join(skipped))
        if not chosen:
            raise SyncFailed("no source is configured: set WFM_CC_URL and/or WFM_ONEC_URL")
    runs = _runs_of(settings, chosen, connections)
    results, failures, failed = [], [], set()
    run_stream = stream_runner(dask_address)
    scope = f"sync-{uuid.uuid4()}"   # one circuit breaker per source for all these streams
    try:
        for declared, connection in runs:
            try:
                results.append(run_stream(declared.name, start, end, force, dry_run, breaker_scope=scope,
                                          connection=connection))
            except Exception as exc:
                failed.add((declared.system, connection))
                text = str(exc).splitlines()[0] if str(exc) else type(exc).__name__
                label = _label(declared.name, connection)
                failures.append(text if text.startswith(label) else f"{label}: {text}")
    finally:
        forget_breakers(scope)
    personnel = {s.name for s in chosen} & derived.MAP_INPUTS.keys()   # a map reader must not find it stale
    if not dry_run and (any(n in ("all", "agent_employee_map") for n in names) or (
            personnel and derived.map_stale(settings.database_url))):
        _map_sites(settings, results, failed, connections)
    if failures:
        raise SyncFailed("; ".join(failures) if len(failures) == 1 or all(c == DEFAULT for _, c in runs) else
                         f"{len(failures)} of {len(runs)} run(s) failed: " + "; ".join(failures))
    return results


def _runs_of(settings: Settings, chosen: list[Stream], connections: list[str] | None) -> list[tuple[Stream, str]]:
    """(stream, connection) pairs: every connection of each stream's system, or those named."""
    if connections:
        known = {c for s in SYSTEMS for c in settings.connections(s)}
        unknown = sorted(set(connections) - known)
        if unknown:
            raise SyncFailed(f"unknown connection(s) {', '.join(unknown)} ({settings.origin}); known: "
                             f"{', '.join(sorted(known)) or 'none'}")
    runs = [(s, c) for s in chosen for c in settings.connections(s.system) if not connections or c in connections]
    if not runs and chosen:
        raise SyncFailed(f"no connection of {', '.join(sorted({s.system for s in chosen}))} named "
                         f"{', '.join(connections or [])}")
    return runs


def _map_sites(settings: Settings, results: list[dict], failed: set[tuple[str, str]],
               connections: list[str] | None) -> None:
    """Rebuild the agent map of every site whose connections ran and none failed."""
    sites = [(site, cc, zup) for site, cc, zup in settings.pairings()
             if not ({(CONTACT_CENTER, cc), (ONEC, zup)} & failed)
             and (not connections or cc in connections or zup in connections)]
    if not sites:
        return
    build_agent_employee_map(settings.database_url, settings.lake_path, sites)
    partitions = [lake.owned_partition("agent_employee_map", site, None) for site, _, _ in sites]
    reconcile_landed(settings.database_url, settings.lake_path, uuid.uuid4(), {"agent_employee_map": partitions},
                     days=period_days(results), label="agent_employee_map", sites=settings.map_sites())


def _family_flow(family: catalog.Family):
    @flow(name=f"sync-{family.name.replace('_', '-')}")
    def sync_family(start: dt.date | None = None, end: dt.date | None = None, force: bool = False,
                    dry_run: bool = False, connections: list[str] | None = None) -> list[dict]:
        return _sync_streams([s.name for s in family.streams], start, end, force, dry_run, connections=connections)
    sync_family.__doc__ = f"Sync {', '.join(s.name for s in family.streams)}."
    return sync_family


FAMILY_FLOWS = {family.name: _family_flow(family) for family in catalog.FAMILIES}


@flow(name="sync-all")
def sync_all(start: dt.date | None = None, end: dt.date | None = None, force: bool = False,
             dry_run: bool = False, connections: list[str] | None = None) -> list[dict]:
    """Every stream of every connection (or of the `connections` named), then each site's agent ↔ employee map."""
    return _sync_streams(["all"], start, end, force, dry_run, connections=connections)


@flow(name="sync")
def sync(streams: list[str], start: dt.date | None = None, end: dt.date | None = None, force: bool = False,
         dry_run: bool = False, dask_address: str | None = None, connections: list[str] | None = None) -> list[dict]:
    """Sync the named streams or families (the `wfm sync` command) of every connection, or of the
    `connections` named; windows on Dask with `dask_address`."""
    return _sync_streams(streams, start, end, force, dry_run, dask_address, connections)
