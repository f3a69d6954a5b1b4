"""`wfm state show|set|reset`, `wfm lake rebuild|verify` and `wfm grants`: the operator's commands.

    wfm state show                                # every incremental stream at every connection: watermark, lag
    wfm state set agent_calls --watermark 2026-11-10 --reason "re-read after the vendor's restatement"
    wfm state reset agent_calls --connection cc-north   # its next incremental starts as on the first day
    wfm lake rebuild agent_calls --start 2026-11-01 --end 2026-11-30
    wfm lake verify                               # exit 1 when any partition differs from PostgreSQL
    wfm grants --role wfm_analyst                 # read-only on the published tables, personal columns withheld
"""

from __future__ import annotations

import datetime as dt
from typing import Annotated, Optional

import typer
from rich import box
from rich.table import Table

from wfm.console import connect_warehouse as _connect
from wfm.console import run_guarded as _run

state_app = typer.Typer(help="Watermarks: show, set, reset (each change logged in wfm_meta.state_changes).",
                        no_args_is_help=True)
lake_app = typer.Typer(help="The Parquet lake: rebuild from PostgreSQL, verify against it.", no_args_is_help=True)

StreamArg = Annotated[str, typer.Argument(help="an incremental stream, e.g. agent_calls")]
ReasonOpt = Annotated[Optional[str], typer.Option(help="why (kept with the change)")]
ForceOpt = Annotated[bool, typer.Option(help="even though the ledger says a run is going (it died)")]
ConnectionOpt = Annotated[str, typer.Option("--connection", "-c", help="the connection whose watermark changes")]
TableArg = Annotated[Optional[str], typer.Argument(help="one table (default: every table)")]
DayOpt = Annotated[Optional[dt.datetime], typer.Option(formats=["%Y-%m-%d"], help="YYYY-MM-DD, inclusive")]


@state_app.command("show")
def show(stream: Annotated[Optional[str], typer.Argument(help="one stream (default: all incremental)")] = None,
         connection: Annotated[Optional[str], typer.Option(
             "--connection", "-c", help="one connection (default: every one with state or configured)")] = None,
         ) -> None:
    """Per stream and connection: watermark, last run, lag behind now, a run going, the last manual change."""
    def action(console) -> None:
        from engine.repair import state

        with _connect() as conn:
            _ensure(conn)
            found = state.states(conn, stream, connection, _configured())
        table = Table(title="stream state", box=box.SIMPLE_HEAD, pad_edge=False)
        for name in ("stream", "connection", "watermark", "lag", "last run", "finished", "running", "last change"):
            table.add_column(name, no_wrap=name != "last change")
        for s in found:
            table.add_row(s.stream, s.source, _when(s.watermark), _lag(s.lag), s.last_status or "", _when(s.last_finished),
                          s.running or "", s.last_change or "")
        console.print(table)
    _run(action)


@state_app.command("set")
def set_(stream: StreamArg,
         watermark: Annotated[str, typer.Option(help="YYYY-MM-DD (midnight UTC) or an ISO time with a zone")],
         reason: ReasonOpt = None, force: ForceOpt = False, connection: ConnectionOpt = "default") -> None:
    """Move a stream's watermark at one connection: its next incremental run starts there (minus the lookback)."""
    def action(console) -> None:
        from engine.repair import state

        with _connect() as conn:
            _ensure(conn)
            before, after = state.set_watermark(conn, stream, state.parse_watermark(watermark), reason, force=force,
                                                source=connection, known=_known(stream))
        console.print(f"{_label(stream, connection)}: watermark {_when(before) or 'none'} -> {_when(after)}",
                      highlight=False)
    _run(action)


@state_app.command("reset")
def reset(stream: StreamArg, reason: ReasonOpt = None, force: ForceOpt = False,
          connection: ConnectionOpt = "default") -> None:
    """Remove a stream's watermark at one connection: its next incremental run starts as a first one would."""
    def action(console) -> None:
        from engine.repair import state

        with _connect() as conn:
            _ensure(conn)
            before, _ = state.set_watermark(conn, stream, None, reason, force=force, source=connection,
                                            known=_known(stream))
        console.print(f"{_label(stream, connection)}: watermark {_when(before) or 'none'} -> none", highlight=False)
    _run(action)


@lake_app.command("rebuild")
def rebuild(table: TableArg = None, start: DayOpt = None, end: DayOpt = None) -> None:
    """Rewrite the lake's partitions from committed rows (atomically each, holds honoured)."""
    def action(console) -> None:
        from engine.repair import lake_repair
        from engine.settings import resolve_settings

        if start and end and end < start:
            raise ValueError(f"--end {end:%Y-%m-%d} is before --start {start:%Y-%m-%d}")
        streams = [lake_repair.table_named(table)] if table else list(lake_repair.lake_tables().values())
        settings = resolve_settings()     # the lake's storage options too, when it is a saved block
        for stream in streams:
            report = lake_repair.rebuild(settings.database_url, settings.lake_path, stream,
                                         start and start.date(), end and end.date())
            if report.written or report.withdrawn or table:
                console.print(f"{stream.name}: {len(report.written)} partition(s) written, "
                              f"{len(report.withdrawn)} removed", highlight=False)
    _run(action)


@lake_app.command("verify")
def verify(table: TableArg = None) -> None:
    """Compare every partition with PostgreSQL (count and checksum); exit 1 on any difference."""
    def action(console) -> None:
        from engine.repair import lake_repair
        from engine.settings import resolve_settings

        streams = [lake_repair.table_named(table)] if table else list(lake_repair.lake_tables().values())
        settings = resolve_settings()
        findings = [f for s in streams for f in lake_repair.verify(settings.database_url, settings.lake_path, s)]
        faults = [f for f in findings if f.status in lake_repair.FAULTS]
        listed = Table(title="lake vs PostgreSQL", box=box.SIMPLE_HEAD, pad_edge=False)
        for name in ("table", "partition", "status", "detail"):
            listed.add_column(name)
        for f in findings:
            if f.status != "equal":
                listed.add_row(f.table, f.partition or "(one file)", f.status, f.detail,
                               style="red" if f in faults else None)
        if listed.row_count:
            console.print(listed)
        equal = sum(f.status == "equal" for f in findings)
        console.print(f"{equal} partition(s) equal, {len(faults)} fault(s)", highlight=False)
        if faults:
            raise typer.Exit(1)
    _run(action)


def grants_command(role: Annotated[str, typer.Option(help="the role to create or update (NOLOGIN)")] = "wfm_analyst"
                   ) -> None:
    """Create a read-only analyst role on the published tables (no personal columns, nothing in wfm_meta)."""
    def action(console) -> None:
        from engine.privacy import grants

        with _connect() as conn:
            withheld = grants.grant_analyst(conn, role)
        console.print(f"{role}: SELECT on the published tables; withheld: "
                      + ("; ".join(f"{t} {', '.join(c)}" for t, c in withheld.items()) or "nothing")
                      + f"; nothing in wfm_meta. Give it to people with GRANT {role} TO <user>", highlight=False)
    _run(action)


def _ensure(conn) -> None:
    """The warehouse at this release's schema (a watermark change records its connection: migration 3)."""
    from engine import schema

    schema.migrate(conn)


def _configured() -> dict[str, list[str]]:
    """System -> the names of its configured connections (the settings file, else WFM_* variables)."""
    from connectors.config.connections import load

    found: dict[str, list[str]] = {}
    for c in load().connections:
        found.setdefault(c.system, []).append(c.name)
    return found


def _known(stream: str) -> list[str]:
    from engine.repair import state

    return _configured().get(state.incremental(stream).system, [])


def _label(stream: str, connection: str) -> str:
    return stream if connection == "default" else f"{stream} ({connection})"


def _when(value: object) -> str:
    if isinstance(value, dt.datetime):
        return value.astimezone(dt.timezone.utc).strftime("%Y-%m-%d %H:%M")
    return "" if value is None else str(value)


def _lag(lag: dt.timedelta | None) -> str:
    if lag is None:
        return ""
    hours = lag.total_seconds() / 3600
    return f"{hours:.1f} h" if hours < 48 else f"{hours / 24:.1f} d"
