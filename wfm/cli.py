"""The `wfm` command line: ad-hoc syncs, the ledger, quarantine, quality, the simulator and the demo."""

from __future__ import annotations

import os

os.environ.setdefault("DO_NOT_TRACK", "1")
os.environ.setdefault("PREFECT_SERVER_ANALYTICS_ENABLED", "false")
os.environ.setdefault("PREFECT_LOGGING_LEVEL", "WARNING")
os.environ.setdefault("PREFECT_LOGGING_HANDLERS_CONSOLE_LEVEL", "WARNING")

import datetime as dt  # noqa: E402
import sys  # noqa: E402
from pathlib import Path  # noqa: E402
from typing import Annotated, Optional  # noqa: E402

import typer  # noqa: E402

from wfm.console import console, guarded  # noqa: E402

app = typer.Typer(help="wfm-pipelines: WFM data between the contact center, 1C:ZUP and the warehouse.",
                  no_args_is_help=True, pretty_exceptions_enable=False)
simulator_app = typer.Typer(help="The simulated contact center and 1C:ZUP.", no_args_is_help=True)
app.add_typer(simulator_app, name="simulator")
DateOpt = Annotated[Optional[dt.datetime], typer.Option(formats=["%Y-%m-%d"], help="YYYY-MM-DD")]


@app.command()
def sync(streams: Annotated[list[str], typer.Argument(help="streams or families, or 'all'")],
         start: DateOpt = None, end: DateOpt = None,
         force: Annotated[bool, typer.Option(help="re-land windows an earlier backfill landed")] = False,
         dry_run: Annotated[bool, typer.Option(help="extract and validate, land nothing")] = False,
         dask: Annotated[Optional[str], typer.Option(
             help="run the windows on this Dask scheduler, e.g. tcp://HOST:8786 (default: local threads)")] = None,
         connection: Annotated[Optional[list[str]], typer.Option(
             "--connection", "-c", help="only this connection (repeatable; default: every configured one)")] = None
         ) -> None:
    """Sync streams of every connection: incremental from each watermark, or a backfill with --start/--end."""
    from wfm.commands import run_sync

    guarded(lambda: run_sync(console, streams, start and start.date(), end and end.date(), force, dry_run, dask,
                             connection or None))


@app.command()
def prune(table: Annotated[Optional[list[str]], typer.Option(help="only this retention policy (repeatable)")] = None,
          dry_run: Annotated[bool, typer.Option("--dry-run", help="count what would go, delete nothing")] = False
          ) -> None:
    """Delete ledger, audit and online rows older than their retention (WFM_RETENTION)."""
    from wfm.commands import run_prune

    guarded(lambda: run_prune(console, table, dry_run))


@app.command()
def runs(limit: Annotated[int, typer.Option(help="how many runs")] = 20,
         stream: Annotated[Optional[str], typer.Option(help="only this stream")] = None,
         connection: Annotated[Optional[str], typer.Option("--connection", "-c", help="only this connection")] = None
         ) -> None:
    """The recent run ledger."""
    from wfm.commands import show_runs

    guarded(lambda: show_runs(console, limit, stream, connection))


@app.command()
def migrate() -> None:
    """Bring the warehouse's schema and the lake's layout to this release (every sync does it too); idempotent."""
    from wfm.commands import run_migrate

    guarded(lambda: run_migrate(console))


def _register_quality() -> None:
    """`wfm quarantine [list|show|replay|discard]` and `wfm quality [waive]` (see wfm/quality_commands.py)."""
    from wfm.quality_commands import quality_app, quarantine_app

    app.add_typer(quarantine_app, name="quarantine")
    app.add_typer(quality_app, name="quality")


_register_quality()


def _register_state() -> None:
    """`wfm state show|set|reset`, `wfm lake rebuild|verify`, `wfm grants` (see wfm/state_commands.py)."""
    from wfm.state_commands import grants_command, lake_app, state_app

    app.add_typer(state_app, name="state")
    app.add_typer(lake_app, name="lake")
    app.command("grants")(grants_command)


_register_state()


# readable=False: an unreadable file is refused by the reader, in one line naming it, not by click's usage box
FileArg = Annotated[Path, typer.Argument(help="CSV, Parquet, JSON or NDJSON file", readable=False)]
StreamOpt = Annotated[str, typer.Option("--stream", help="the stream (table) the file holds")]
MapOpt = Annotated[Optional[str], typer.Option("--map", help='file column=stream field, e.g. "Табельный=employee_id"')]
MappingOpt = Annotated[Optional[Path], typer.Option("--mapping", help="YAML file: file column: stream field",
                                                    readable=False)]
FormatOpt = Annotated[str, typer.Option("--format", help="auto|csv|parquet|json|ndjson")]
EncodingOpt = Annotated[Optional[str], typer.Option(help="e.g. utf-8, cp1251 (default: detected)")]
DelimiterOpt = Annotated[Optional[str], typer.Option(help="CSV delimiter (default: detected; tab as \\t)")]
ChunkOpt = Annotated[int, typer.Option(help="rows per chunk")]
ZoneOpt = Annotated[Optional[str], typer.Option(
    "--timezone", help="zone of times written without one, e.g. Asia/Yekaterinburg (default: WFM_DEFAULT_TIMEZONE)")]
TimeFormatOpt = Annotated[Optional[str], typer.Option(
    "--datetime-format", help="strptime format of zoneless times, e.g. '%m/%d/%Y %I:%M %p'")]


@app.command("import")
def import_file(path: FileArg, stream: StreamOpt, map_: MapOpt = None, mapping: MappingOpt = None,
                file_format: FormatOpt = "auto", encoding: EncodingOpt = None, delimiter: DelimiterOpt = None,
                chunk_rows: ChunkOpt = 50_000,
                threshold: Annotated[float, typer.Option(help="hold a chunk back above this invalid share")] = 1.0,
                timezone: ZoneOpt = None, datetime_format: TimeFormatOpt = None,
                connection: Annotated[str, typer.Option("--connection", "-c",
                                                        help="whose rows these are (a connection name)")] = "default",
                site: Annotated[Optional[str], typer.Option(
                    "--site", help="the site a plan file is for (planned_shifts; default: default)")] = None
                ) -> None:
    """Import a file into a stream's table: valid rows land exactly once, invalid rows are quarantined."""
    from wfm.bulk_commands import run_import
    from wfm.connection_commands import check_name, owner_of_import

    guarded(lambda: run_import(console, path, stream, map_, mapping, file_format, encoding, delimiter, chunk_rows,
                               threshold, timezone, datetime_format,
                               owner_of_import(stream, check_name(connection), site)))


@app.command()
def validate(path: FileArg, stream: StreamOpt, map_: MapOpt = None, mapping: MappingOpt = None,
             file_format: FormatOpt = "auto", encoding: EncodingOpt = None, delimiter: DelimiterOpt = None,
             chunk_rows: ChunkOpt = 50_000,
             report: Annotated[Optional[Path], typer.Option(help="also write the report as JSON here")] = None,
             timezone: ZoneOpt = None, datetime_format: TimeFormatOpt = None) -> None:
    """Check a file as an import would and land nothing; exit 1 when any row is invalid."""
    from wfm.bulk_commands import run_validate

    guarded(lambda: run_validate(console, path, stream, map_, mapping, file_format, encoding, delimiter, chunk_rows,
                                 report, timezone, datetime_format))


@app.command()
def export(table: Annotated[str, typer.Argument(help="a stream's table, e.g. agent_status_intervals")],
           out: Annotated[Path, typer.Option(help="the file to write")],
           start: DateOpt = None, end: DateOpt = None,
           filter_: Annotated[Optional[list[str]], typer.Option("--filter", help="COLUMN=VALUE, repeatable")] = None,
           file_format: Annotated[str, typer.Option("--format", help="parquet|csv")] = "parquet",
           force: Annotated[bool, typer.Option(help="overwrite an existing file")] = False) -> None:
    """Export a table (inclusive days of its partition column with --start/--end) to Parquet or CSV."""
    from wfm.bulk_commands import run_export

    guarded(lambda: run_export(console, table, out, start and start.date(), end and end.date(), filter_ or [],
                               file_format, force))


@app.command()
def serve(deployment: Annotated[Optional[list[str]], typer.Option(
              "--deployment", "-d", help="FLOW/DEPLOYMENT to serve, repeatable (default: every one)")] = None,
          limit: Annotated[Optional[int], typer.Option(help="most flow runs going at once")] = None) -> None:
    """Schedule and run every deployment from this one process (Prefect serve), until Ctrl-C."""
    from wfm import prefect_api

    guarded(lambda: prefect_api.flows("deployments.serve").serve(deployment or (), limit))


@app.command()
def demo(days: Annotated[int, typer.Option(help="days of simulated history")] = 7,
         agents: Annotated[int, typer.Option(help="simulated agents")] = 60) -> None:
    """Start the simulator (and the embedded PostgreSQL), sync everything, show the results."""
    from wfm.commands import run_demo

    guarded(lambda: run_demo(console, days, agents))


@simulator_app.command("serve")
def simulator_serve(port: Annotated[int, typer.Option(help="TCP port on 127.0.0.1")] = 8765,
                    seed: Annotated[int, typer.Option(help="data seed")] = 42,
                    agents: Annotated[int, typer.Option()] = 40,
                    services: Annotated[int, typer.Option()] = 2,
                    groups: Annotated[int, typer.Option(help="groups per service")] = 3,
                    days: Annotated[int, typer.Option(help="days of history ending today")] = 8,
                    faults: Annotated[str, typer.Option(help="e.g. 500=0.05,429=0.05,drop=0.02")] = "",
                    cc_auth: Annotated[str, typer.Option(help="none|basic|bearer|apikey|oauth2")] = "none",
                    cc_token: Annotated[Optional[str], typer.Option(help="token / API key / client secret")] = None,
                    onec_user: Annotated[str, typer.Option()] = "wfm",
                    onec_password: Annotated[str, typer.Option()] = "wfm",
                    sites: Annotated[int, typer.Option(min=1, help="simulated sites (seed+i, colliding ids), "
                                                                   "site i on port+i")] = 1) -> None:
    """Serve both simulated systems (of one site, or of several) until Ctrl-C."""
    from wfm.commands import serve_simulator

    guarded(lambda: serve_simulator(console, port=port, seed=seed, agents=agents, services=services,
                                    groups=groups, days=days, faults=faults, cc_auth=cc_auth, cc_token=cc_token,
                                    onec_user=onec_user, onec_password=onec_password, sites=sites))


def _register_check() -> None:
    try:
        from wfm.check import check_command
    except ImportError:  # pragma: no cover - the module ships with the package
        return
    app.command("check")(check_command)


_register_check()


def _register_push() -> None:
    """`outbox`, `deviations`, `receiver serve`, `webhooks`: commands in wfm.push_commands, run via guarded()."""
    from wfm.push_commands import deviations_app, outbox_app, receiver_app, webhooks_app

    app.add_typer(outbox_app, name="outbox")
    app.add_typer(deviations_app, name="deviations")
    app.add_typer(receiver_app, name="receiver")
    app.add_typer(webhooks_app, name="webhooks")


_register_push()


def _register_connections() -> None:
    from wfm.connection_commands import connections_app

    app.add_typer(connections_app, name="connections")


_register_connections()


def main() -> None:  # pragma: no cover - console entry point
    """`wfm`: the command, then an exit without the interpreter's teardown (see `_leave`)."""
    try:
        app()
        code: object = 0
    except SystemExit as done:
        code = done.code
    _leave(code)


def _leave(code: object) -> None:
    """Do what a normal exit does that matters — join the worker threads, run the atexit handlers
    (Prefect's log and event flush, the local API's stop, temporary directories), flush output —
    then leave with os._exit: freeing GX, pandas and Prefect object by object costs a fresh
    process seconds (1.5-12 s measured here) after the work is done and changes nothing on disk."""
    import atexit
    import threading

    if not isinstance(code, int):
        if code is not None:
            print(code, file=sys.stderr)
        code = 0 if code is None else 1
    getattr(threading, "_shutdown", lambda: None)()   # what Python does first at exit: joins non-daemon threads
    atexit._run_exitfuncs()
    for stream in (sys.stdout, sys.stderr):
        try:
            stream.flush()
        except (OSError, ValueError):   # a closed pipe (`wfm ... | head`) has nothing left to say
            pass
    os._exit(code)
