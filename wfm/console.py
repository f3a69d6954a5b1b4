"""The CLI's shared console and guard: every command's output, and its one-line errors.

A user's mistake or a source's failure ends a command with one line on stderr and a non-zero
exit, never a traceback (`WFM_DEBUG=1` shows it). Every command module imports these from here.
"""

from __future__ import annotations

import logging
import os

import typer
from rich.console import Console

console = Console()
err = Console(stderr=True)

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


def run_guarded(action) -> None:
    """`action(console)`, its failures turned into one line."""
    guarded(lambda: action(console))


def connect_warehouse():
    """An autocommit connection to the warehouse (`WFM_DATABASE_URL` or the embedded one)."""
    import psycopg

    from engine import database

    return psycopg.connect(database.database_url(), autocommit=True)
