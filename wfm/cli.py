"""The `wfm` command line: ad-hoc syncs, the ledger, quarantine, the simulator and the demo."""

from __future__ import annotations

import os

os.environ.setdefault("DO_NOT_TRACK", "1")
os.environ.setdefault("PREFECT_SERVER_ANALYTICS_ENABLED", "false")
os.environ.setdefault("PREFECT_LOGGING_LEVEL", "WARNING")
os.environ.setdefault("PREFECT_LOGGING_HANDLERS_CONSOLE_LEVEL", "WARNING")

import datetime as dt  # noqa: E402
import logging  # noqa: E402
import sys  # noqa: E402
from typing import Annotated, Optional  # noqa: E402

import typer  # noqa: E402
from rich.console import Console  # noqa: E402

app = typer.Typer(help="wfm-pipelines: WFM data between the contact center, 1C:ZUP and the warehouse.",
                  no_args_is_help=True, pretty_exceptions_enable=False)
simulator_app = typer.Typer(help="The simulated contact center and 1C:ZUP.", no_args_is_help=True)
app.add_typer(simulator_app, name="simulator")
console = Console()
err = Console(stderr=True)

DateOpt = Annotated[Optional[dt.datetime], typer.Option(formats=["%Y-%m-%d"], help="YYYY-MM-DD")]


def fail(message: str, code: int = 1) -> None:
    """One line on stderr, no traceback, a non-zero exit."""
    err.print(f"[bold red]error:[/] {message}", highlight=False, soft_wrap=True)
    raise typer.Exit(code)


def _quiet_prefect_tracebacks() -> None:
    """Prefect logs a failed run with its traceback; the CLI says the same in one line."""
    make_record = logging.getLogRecordFactory()
    if getattr(make_record, "wfm_quiet", False):
        return

    def without_traceback(name, level, fn, lno, msg, args, exc_info, *rest, **kwargs):
        if name.startswith(("prefect.flow_runs", "prefect.task_runs")) and level >= logging.ERROR or (
                name.startswith("prefect") and exc_info):
            # a run's failure is kept in its state, its logs in the API and the ledger; the
            # terminal gets it once, as our one-line error
            exc_info, level = None, logging.INFO
        return make_record(name, level, fn, lno, msg, args, exc_info, *rest, **kwargs)

    without_traceback.wfm_quiet = True  # type: ignore[attr-defined]
    logging.setLogRecordFactory(without_traceback)


def guarded(action):
    """Run an action; user mistakes and source failures become one line (WFM_DEBUG=1 shows tracebacks)."""
    if not os.environ.get("WFM_DEBUG"):
        _quiet_prefect_tracebacks()
    try:
        return action()
    except typer.Exit:
        raise
    except KeyboardInterrupt:
        fail("interrupted", 130)
    except Exception as exc:  # every failure the user can act on carries a one-line message
        if os.environ.get("WFM_DEBUG"):
            raise
        message = str(exc).strip().splitlines()[0] if str(exc).strip() else type(exc).__name__
        fail(message)


@app.command()
def sync(streams: Annotated[list[str], typer.Argument(help="streams or families, or 'all'")],
         start: DateOpt = None, end: DateOpt = None,
         force: Annotated[bool, typer.Option(help="re-land windows an earlier backfill landed")] = False,
         dry_run: Annotated[bool, typer.Option(help="extract and validate, land nothing")] = False) -> None:
    """Sync streams: incremental from the watermark, or a backfill with --start/--end (inclusive days)."""
    from wfm.commands import run_sync

    guarded(lambda: run_sync(console, streams, start and start.date(), end and end.date(), force, dry_run))


@app.command()
def runs(limit: Annotated[int, typer.Option(help="how many runs")] = 20,
         stream: Annotated[Optional[str], typer.Option(help="only this stream")] = None) -> None:
    """The recent run ledger."""
    from wfm.commands import show_runs

    guarded(lambda: show_runs(console, limit, stream))


@app.command()
def quarantine(stream: Annotated[Optional[str], typer.Option(help="only this stream")] = None,
               limit: Annotated[int, typer.Option(help="how many rows")] = 20) -> None:
    """Rows that were rejected, and why."""
    from wfm.commands import show_quarantine

    guarded(lambda: show_quarantine(console, stream, limit))


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
                    onec_password: Annotated[str, typer.Option()] = "wfm") -> None:
    """Serve both simulated systems until Ctrl-C."""
    from wfm.commands import serve_simulator

    guarded(lambda: serve_simulator(console, port=port, seed=seed, agents=agents, services=services,
                                    groups=groups, days=days, faults=faults, cc_auth=cc_auth, cc_token=cc_token,
                                    onec_user=onec_user, onec_password=onec_password))


def _register_check() -> None:
    try:
        from wfm.check import check_command
    except ImportError:  # pragma: no cover - the module ships with the package
        return
    app.command("check")(check_command)


_register_check()


def main() -> None:  # pragma: no cover - console entry point
    sys.exit(app())
