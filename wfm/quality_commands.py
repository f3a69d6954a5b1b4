"""`wfm quarantine list|show|replay|discard` and `wfm quality`: the quarantine lifecycle and reports.

    wfm quarantine --stream agent_calls          # the held rows (`list` is the default)
    wfm quarantine show 42                       # one row: reason, window, run, the raw record
    wfm quarantine replay --stream agent_calls   # after a fix: land the rows that pass now, once
    wfm quarantine discard --id 42 --reason "test data from the vendor"
    wfm quality --since 2026-11-01               # pass rates per stream and rule; writes the dashboard
    wfm quality waive handled_calls_match_intervals --partition date=2026-11-10 --reason "vendor counts transfers"
"""

from __future__ import annotations

import datetime as dt
import json
from typing import Annotated, Optional

import typer
from rich import box
from rich.table import Table

from wfm.console import connect_warehouse as _connect
from wfm.console import run_guarded as _run

quarantine_app = typer.Typer(help="Rows that were rejected: list (default), show, replay, discard.",
                             invoke_without_command=True, no_args_is_help=False)

StreamOpt = Annotated[Optional[str], typer.Option(help="only this stream")]
LimitOpt = Annotated[int, typer.Option(help="how many rows")]
IdsOpt = Annotated[Optional[list[int]], typer.Option("--id", help="quarantine row id (repeatable)")]
RunOpt = Annotated[Optional[str], typer.Option("--run", help="only rows quarantined by this run id")]


@quarantine_app.callback()
def quarantine(ctx: typer.Context, stream: StreamOpt = None, limit: LimitOpt = 20) -> None:
    """Rows that were rejected, and why; without a command, the held rows."""
    if ctx.invoked_subcommand is None:
        _run(lambda console: show_list(console, stream, "held", limit))


@quarantine_app.command("list")
def list_rows(stream: StreamOpt = None, limit: LimitOpt = 20,
              status: Annotated[str, typer.Option(help="held, replayed, discarded or all")] = "held") -> None:
    """Quarantined rows, newest first, with their ids."""
    _run(lambda console: show_list(console, stream, None if status == "all" else status, limit))


@quarantine_app.command("show")
def show(row_id: Annotated[int, typer.Argument(help="quarantine row id (see `wfm quarantine list`)")]) -> None:
    """One quarantined row: stream, window, run, reason, status and the raw record."""
    _run(lambda console: show_row(console, row_id))


@quarantine_app.command("replay")
def replay(stream: StreamOpt = None, ids: IdsOpt = None, run: RunOpt = None) -> None:
    """Run held rows through today's parsing and checks; land those that pass, exactly once."""
    def action(console) -> None:
        from wfm import prefect_api

        summaries = prefect_api.flows("flows.replay").replay_quarantine(stream, ids, run)
        if not summaries:
            console.print("nothing held to replay")
        for s in summaries:
            console.print(f"{s['stream']}: {s['replayed']} of {s['records']} held record(s) replayed "
                          f"({s['rows_inserted']} new rows, {s['rows_updated']} changed), {s['still_held']} still held",
                          highlight=False)
    _run(action)


@quarantine_app.command("discard")
def discard(reason: Annotated[str, typer.Option(help="why these rows will never land")],
            stream: StreamOpt = None, ids: IdsOpt = None, run: RunOpt = None) -> None:
    """Mark held rows discarded, with a reason (they stay on record)."""
    def action(console) -> None:
        from engine import database
        from engine.quality import replay as lifecycle

        count = lifecycle.discard(database.database_url(), reason, stream, ids, run)
        console.print(f"{count} row(s) discarded")
    _run(action)


quality_app = typer.Typer(help="Pass rates and the dashboard (default), waivers of reconciliation holds.",
                          invoke_without_command=True, no_args_is_help=False)


@quality_app.callback()
def quality_command(ctx: typer.Context, since: Annotated[Optional[dt.datetime], typer.Option(
        formats=["%Y-%m-%d"], help="YYYY-MM-DD (default: 30 days ago)")] = None) -> None:
    """Pass rates per stream and rule (windows, rows, reconciliation) and the HTML dashboard."""
    if ctx.invoked_subcommand is None:
        _run(lambda console: show_quality(console, since))


@quality_app.command("waive")
def waive(rule: Annotated[str, typer.Argument(help="a reconciliation rule, e.g. handled_calls_match_intervals")],
          partition: Annotated[str, typer.Option(help="the held partition of the rule's table: date=YYYY-MM-DD")],
          reason: Annotated[str, typer.Option(help="why the partition may be published anyway (kept on record)")]
          ) -> None:
    """Lift a rule's hold on one partition, with an audit row, and publish the partition."""
    _run(lambda console: run_waive(console, rule, partition, reason))


def run_waive(console, rule: str, partition: str, reason: str) -> None:
    import psycopg

    from engine.landing import lake, ledger
    from engine.quality import holds
    from engine.quality.reconcile import STREAMS
    from engine.settings import resolve_settings

    settings = resolve_settings()
    with psycopg.connect(settings.database_url, autocommit=True) as conn:
        ledger.ensure_meta(conn)
        table, lifted = holds.waive(conn, rule, partition, reason)
        name = holds.partition_named(table, partition)
        written = lake.publish_partition(conn, STREAMS[table], settings.lake_path, name)
    others = "" if written else " (still held by another rule: not published)"
    console.print(f"{rule}: {lifted} hold(s) on {table} {name} waived{others}; "
                  f"{'published' if written else 'see `wfm quality`'}", highlight=False)


def show_list(console, stream: str | None, status: str | None, limit: int) -> None:
    from engine.landing import ledger
    from engine.quality import replay as lifecycle

    with _connect() as conn:
        ledger.ensure_meta(conn)
        found = lifecycle.rows(conn, stream, status, limit)
        totals = conn.execute("""SELECT stream, count(*) FROM wfm_meta.quarantine WHERE status = 'held'
                                 GROUP BY stream ORDER BY stream""").fetchall()
    table = Table(title=f"quarantine ({status or 'all'} rows)", box=box.SIMPLE_HEAD)
    for name in ("id", "stream", "status", "window", "reason", "record"):
        table.add_column(name, overflow="fold")
    for r in found:
        table.add_row(str(r["id"]), r["stream"], r["status"], _when(r["window_start"]), r["reason"], r["record"][:160])
    console.print(table)
    console.print("held per stream: " + (", ".join(f"{s} {n}" for s, n in totals) or "none"), highlight=False)


def show_row(console, row_id: int) -> None:
    from engine.landing import ledger
    from engine.quality import replay as lifecycle

    with _connect() as conn:
        ledger.ensure_meta(conn)
        found = lifecycle.row(conn, row_id)
    if found is None:
        raise ValueError(f"no quarantine row {row_id}")
    for key in ("id", "stream", "status", "run_id", "window_start", "window_end", "quarantined_at", "reason",
                "field", "resolution", "resolved_at", "resolved_by"):
        console.print(f"[bold]{key:>14}[/] {_when(found[key]) if found[key] is not None else ''}", highlight=False)
    console.print(json.dumps(found["record"], ensure_ascii=False, indent=2, default=str), highlight=False)


def show_quality(console, since: dt.datetime | None) -> None:
    from engine import database, paths
    from engine.quality import reports

    moment = (since.replace(tzinfo=dt.timezone.utc) if since else
              dt.datetime.now(dt.timezone.utc) - dt.timedelta(days=30))
    with _connect() as conn:
        rates = reports.pass_rates(conn, moment)
        held = conn.execute("SELECT count(DISTINCT (table_name, partition)) FROM wfm_meta.partition_holds").fetchone()[0]
    table = Table(title=f"pass rates since {moment:%Y-%m-%d}", box=box.SIMPLE_HEAD, pad_edge=False)
    for name in ("stream", "rule", "unit", "checked", "passed", "rate"):
        table.add_column(name, justify="right" if name in ("checked", "passed", "rate") else "left")
    for r in rates:
        rate = "—" if r.rate is None else f"{r.rate:.1%}"
        style = "red" if r.rate is not None and r.rate < 1 else None
        table.add_row(r.stream, r.rule, r.unit, str(r.checked), str(r.passed), rate, style=style)
    console.print(table)
    dashboard = reports.write_dashboard(database.database_url(), paths.data_dir() / "docs", moment)
    console.print(f"partitions held back: {held}", highlight=False)
    console.print(f"dashboard: {dashboard}", highlight=False, soft_wrap=True)


def _when(value: object) -> str:
    if isinstance(value, dt.datetime):
        return value.astimezone(dt.timezone.utc).strftime("%Y-%m-%d %H:%M")
    return str(value)
