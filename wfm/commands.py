"""What the `wfm` commands do, kept apart from argument parsing in `wfm.cli`."""

from __future__ import annotations

import datetime as dt
import os
from pathlib import Path

import psycopg
from rich import box
from rich.console import Console
from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn
from rich.table import Table

from engine import database, paths
from wfm import prefect_api


def run_sync(console: Console, streams: list[str], start: dt.date | None, end: dt.date | None,
             force: bool, dry_run: bool, dask_address: str | None = None,
             connections: list[str] | None = None) -> list[dict]:
    """Run the `sync` flow with a progress bar per stream; prints the ledger rows of the runs."""
    from engine import catalog, progress

    catalog.resolve(streams)  # an unknown name fails here, in one line, before Prefect starts
    if start and end and end < start:
        raise ValueError(f"--end {end} is before --start {start}")
    prefect_api.start()
    from engine.quality import gate
    from flows.sync import sync, sync_stream  # imports for seconds, while the API starts

    prefect_api.ready(meanwhile=gate.preload)
    bars = Progress(TextColumn("{task.description:<26}"), BarColumn(), MofNCompleteColumn(), TimeElapsedColumn(),
                    console=console, transient=False)
    ids: dict[str, int] = {}

    def listener(event: str, stream: str, count: int) -> None:
        if event == "start":
            ids[stream] = bars.add_task(stream, total=count)
        elif stream in ids:
            bars.advance(ids[stream], count)

    progress.subscribe(listener)
    try:
        with bars:
            single = _single_connection(connections)
            if len(streams) == 1 and streams[0] in catalog.STREAMS and not dask_address and single:
                # one stream is one flow run: a parent flow around it would cost a second flow start
                results = [sync_stream(streams[0], start, end, force, dry_run, connection=single)]
            else:
                results = sync(streams, start, end, force, dry_run, dask_address, connections)
    finally:
        progress.unsubscribe(listener)
    print_runs(console, results)
    return results


def _single_connection(connections: list[str] | None) -> str | None:
    """The one connection a run is for: the one named, or `default` when no settings file declares any."""
    from connectors.config.connections import DEFAULT, load

    if connections:
        return connections[0] if len(connections) == 1 else None
    return DEFAULT if load().origin == "environment" else None


RUN_COLUMNS = {   # header -> how to read it off a ledger row
    "stream": lambda r: r["stream"], "connection": lambda r: r.get("source", ""), "mode": lambda r: r["mode"],
    "status": lambda r: r["status"],
    "l/s/h": lambda r: f"{r['windows_landed']}/{r['windows_skipped']}/{r['windows_held']}",
    "anom.": lambda r: r.get("windows_anomaly") or "", "def.": lambda r: r.get("windows_deferred") or "",
    "fetched": lambda r: r["rows_fetched"], "dupes": lambda r: r["duplicates_removed"],
    "new": lambda r: r["rows_inserted"], "changed": lambda r: r["rows_updated"],
    "quar.": lambda r: r["rows_quarantined"], "calls": lambda r: r["api_calls"],
    "retries": lambda r: r["retries"], "watermark": lambda r: r["watermark_after"],
}


NARROW = ("stream", "connection", "status", "l/s/h", "anom.", "fetched", "new", "changed", "quar.")


def print_runs(console: Console, runs: list[dict]) -> None:
    """The ledger rows as a table; on a narrow terminal, the columns that matter most."""
    shown = {k: v for k, v in RUN_COLUMNS.items() if console.width >= 130 or k in NARROW}
    table = Table(title="sync runs (windows landed/skipped/held)", box=box.SIMPLE_HEAD, pad_edge=False)
    for name in shown:
        table.add_column(name, no_wrap=True,
                         justify="left" if name in ("stream", "connection", "mode", "status") else "right")
    for run in runs:
        table.add_row(*(_cell(read(run)) for read in shown.values()))
    console.print(table)
    failed = [r for r in runs if r.get("error")]
    for run in failed:
        console.print(f"[red]{run['stream']} ({run.get('source', '')})[/]: {run['error']}", highlight=False)
    for run in (r for r in runs if r.get("notice")):   # anomalies and deferred windows: not failures
        console.print(f"[yellow]{run['stream']} ({run.get('source', '')})[/]: {run['notice']}", highlight=False)


def _cell(value: object) -> str:
    if isinstance(value, dt.datetime):
        return value.astimezone(dt.timezone.utc).strftime("%Y-%m-%d %H:%M")
    return "" if value is None else str(value)


def _connect() -> psycopg.Connection:
    return psycopg.connect(database.database_url(), autocommit=True)


def run_migrate(console: Console) -> None:
    from engine import schema

    with _connect() as conn:
        ran = schema.migrate(conn)
        recorded = schema.applied(conn)
        moved = schema.migrate_lake(paths.lake_path())
    for step in ran:
        console.print(f"applied migration {step.version}: {step.name}", highlight=False)
    if moved:
        console.print(f"lake {paths.lake_path()}: {moved} file(s) moved to the current layout", highlight=False)
    latest = max(recorded, default=0)
    console.print(f"schema is current (migration {latest}, {len(ran)} applied now)", highlight=False)


def run_prune(console: Console, tables: list[str] | None, dry_run: bool) -> None:
    """`wfm prune`: every retention policy (or the named ones), with what went."""
    from engine import retention

    done = retention.prune(database.database_url(), paths.data_dir(), paths.lake_path(), tables, dry_run)
    table = Table(title="would prune" if dry_run else "pruned", box=box.SIMPLE_HEAD, pad_edge=False)
    for name in ("table", "keeps days", "older than", "rows", "note"):
        table.add_column(name)
    for p in done:
        table.add_row(p.policy, str(p.days) if p.days > 0 else "forever", _cell(p.cutoff), f"{p.rows:,}", p.note)
    console.print(table)


def show_runs(console: Console, limit: int, stream: str | None, connection: str | None = None) -> None:
    from engine.landing import ledger

    with _connect() as conn:
        ledger.ensure_meta(conn)
        cur = conn.execute(f"""SELECT * FROM {ledger.META}.sync_runs WHERE (%(s)s::text IS NULL OR stream = %(s)s)
                               AND (%(c)s::text IS NULL OR source = %(c)s)
                               ORDER BY started_at DESC, stream LIMIT %(n)s""",
                           {"s": stream, "c": connection, "n": limit})
        names = [c.name for c in cur.description]
        print_runs(console, [dict(zip(names, row)) for row in cur.fetchall()])


def serve_simulator(console: Console, *, port: int, seed: int, agents: int, services: int, groups: int, days: int,
                    faults: str, cc_auth: str, cc_token: str | None, onec_user: str, onec_password: str,
                    sites: int = 1) -> None:
    from connectors.simulator import AuthConfig, ServerConfig, SimConfig, serve_forever

    start = dt.date.today() - dt.timedelta(days=days - 1)
    auth = AuthConfig(cc_auth, username="wfm" if cc_auth == "basic" else None,
                      password=cc_token if cc_auth == "basic" else None,
                      token=cc_token if cc_auth in ("bearer", "apikey") else None,
                      client_id="wfm" if cc_auth == "oauth2" else None,
                      client_secret=cc_token if cc_auth == "oauth2" else None)
    cfg = ServerConfig(sim=SimConfig(seed=seed, agents=agents, services=services, groups_per_service=groups,
                                     start=start, days=days), port=port, faults=faults, cc_auth=auth,
                       onec_auth=AuthConfig("basic", username=onec_user, password=onec_password))
    if sites > 1:
        return _serve_fleet(console, cfg, sites)
    console.print(f"contact center: http://127.0.0.1:{port}/cc   1C: http://127.0.0.1:{port}/zup/hs/wfm "
                  f"(history {start}..{dt.date.today()}, seed {seed}); Ctrl-C stops")
    serve_forever(cfg)


def _serve_fleet(console: Console, base, sites: int) -> None:
    """Several simulated sites, site i on port+i (connectors/simulator/fleet.py), until Ctrl-C."""
    import threading

    from connectors.simulator.fleet import fleet_configs, start_fleet

    configs = fleet_configs(sites, base)
    with start_fleet(configs) as fleet:
        for name, running in fleet.items():
            console.print(f"{name}: contact center {running.cc_url}   1C {running.onec_url} "
                          f"(seed {configs[name].sim.seed})", highlight=False)
        console.print("Ctrl-C stops")
        try:
            threading.Event().wait()
        except KeyboardInterrupt:
            pass


def run_demo(console: Console, days: int, agents: int, sites: int = 2) -> None:
    """Simulated sites + embedded PostgreSQL + a backfill of everything, then where to look.

    Each site is a contact center and a 1C base of its own (seeds apart, colliding ids), declared
    as connections `cc-siteN` / `zup-siteN` in a settings file under the data dir.
    """
    from connectors.simulator import ServerConfig, SimConfig
    from connectors.simulator.fleet import fleet_configs, sites_settings, start_fleet

    today = dt.date.today()
    start = today - dt.timedelta(days=days)
    base = ServerConfig(sim=SimConfig(seed=42, agents=max(2, agents // sites), start=start, days=days + 1))
    with start_fleet(fleet_configs(sites, base)) as fleet:
        settings = paths.data_dir() / "demo-sites.toml"
        settings.write_text(sites_settings(fleet, "DEMO_ONEC_PASSWORD"), encoding="utf-8")
        os.environ.update(WFM_CONFIG=str(settings), DEMO_ONEC_PASSWORD="wfm")
        for name, running in fleet.items():
            console.print(f"{name}: contact center {running.cc_url}, 1C {running.onec_url}", highlight=False)
        console.print(f"connections: {settings}")
        console.print(f"warehouse: {database.describe_database(database.database_url())}")
        run_sync(console, ["all"], start, today - dt.timedelta(days=1), False, False)
    lake = Path(paths.lake_path())
    console.print(f"\nParquet lake: {lake}")
    for table in sorted(p.name for p in lake.iterdir() if p.is_dir()):
        files = list((lake / table).rglob("*.parquet"))
        console.print(f"  {table:<26} {len(files):>3} file(s)")
    query = (f"SELECT source, state_code, count(*) AS n FROM read_parquet('{lake}/agent_status_intervals/**/*.parquet')"
             " GROUP BY 1, 2 ORDER BY 1, 3 DESC")
    console.print("\nQuery it with DuckDB (paste as one line):", highlight=False)
    console.print(f'  .venv/bin/python -c "import duckdb; duckdb.sql(\\"{query}\\").show()"', highlight=False,
                  soft_wrap=True)


