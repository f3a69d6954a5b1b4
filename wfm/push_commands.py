"""The push-back commands of `wfm`: `outbox`, `deviations`, `receiver serve` and `webhooks`.

    wfm outbox [--kind schedule|fact] [--state refused]        what was sent to 1C, refused, waiting
    wfm outbox push schedules [--since 2026-11-01] [--retry-refused]
    wfm outbox push deviations [--settle-after 120]
    wfm deviations [--start D --end D] [--unconfirmed]          plan against fact, with push state
    wfm deviations build [--start D --end D]
    wfm deviations confirm EMPLOYEE DATE | --all [--start D --end D] [--by "Иванов И.И."]
    (each takes --site NAME, repeatable for push and build: one site's rows; default: every site)
    wfm receiver serve --port 8780                              the contact center's status push
    wfm webhooks add URL --events sync.failed,push.refused [--secret-block NAME]
    wfm webhooks list | remove ID | test ID | deliver
    wfm webhooks verify --secret S --timestamp T --signature v1=... [--body-file F]   (body on stdin)
"""

from __future__ import annotations

import datetime as dt
import getpass
import sys
from pathlib import Path
from typing import Annotated, Optional

import psycopg
import typer
from rich import box
from rich.table import Table

from engine import database
from wfm import prefect_api

outbox_app = typer.Typer(help="The push outbox to 1C (schedules and facts).", invoke_without_command=True)
deviations_app = typer.Typer(help="Deviations of actual from planned time, and their confirmation.",
                             invoke_without_command=True)
receiver_app = typer.Typer(help="The receiver of the contact center's status push.", no_args_is_help=True)
webhooks_app = typer.Typer(help="Signed webhook notifications.", no_args_is_help=True)
DateOpt = Annotated[Optional[dt.datetime], typer.Option(formats=["%Y-%m-%d"], help="YYYY-MM-DD")]
SiteOpt = Annotated[Optional[str], typer.Option("--site", help="only this site's rows (default: every site)")]
SitesOpt = Annotated[Optional[list[str]], typer.Option("--site", help="only this site (repeatable; default: every one)")]


def _guarded(action):
    from wfm.console import guarded

    return guarded(action)


def _console():
    from wfm.console import console

    return console


def _day(value: dt.datetime | None) -> dt.date | None:
    return value.date() if value else None


def _connect() -> psycopg.Connection:
    return psycopg.connect(database.database_url(), autocommit=True)


def _cell(value: object) -> str:
    if isinstance(value, dt.datetime):
        return value.astimezone(dt.timezone.utc).strftime("%Y-%m-%d %H:%M")
    return "" if value is None else str(value)


# ---- outbox ----------------------------------------------------------------------------------

@outbox_app.callback()
def outbox(ctx: typer.Context,
           kind: Annotated[Optional[str], typer.Option(help="schedule or fact")] = None,
           state: Annotated[Optional[str], typer.Option(help="pending, sending, sent, refused or skipped")] = None,
           limit: Annotated[int, typer.Option(help="how many rows")] = 50, site: SiteOpt = None) -> None:
    """What was sent to 1C, what 1C refused (with its message) and what is waiting."""
    if ctx.invoked_subcommand is None:
        _guarded(lambda: show_outbox(kind, state, limit, site))


def show_outbox(kind: str | None, state: str | None, limit: int, site: str | None = None) -> None:
    from engine.push import outbox as box_

    if kind not in (None, "schedule", "fact") or state not in (None, *box_.STATES):
        raise ValueError(f"--kind is schedule or fact, --state one of {', '.join(box_.STATES)}")
    with _connect() as conn:
        box_.ensure_outbox(conn)
        rows, totals = box_.listing(conn, kind, state, limit, site), box_.counts(conn, site)
    table = Table(title="push outbox (1C)", box=box.SIMPLE_HEAD, pad_edge=False)
    for name in ("id", "site", "kind", "employee", "period", "state", "tries", "message", "updated"):
        table.add_column(name, overflow="fold" if name == "message" else "ellipsis", no_wrap=name != "message")
    for r in rows:
        table.add_row(str(r["id"]), r["site"], r["kind"], r["employee_id"], r["period"], r["state"], str(r["attempts"]),
                      r["message"] or "", _cell(r["updated_at"]))
    console = _console()
    console.print(table)
    console.print("totals: " + (", ".join(f"{k} {s} {n}" for (k, s), n in sorted(totals.items())) or "empty"),
                  highlight=False)


@outbox_app.command("push")
def outbox_push(what: Annotated[str, typer.Argument(help="schedules or deviations")],
                since: DateOpt = None,
                retry_refused: Annotated[bool, typer.Option(help="offer refused schedules again")] = False,
                settle_after: Annotated[float, typer.Option(help="seconds before a lost fact answer is "
                                                                  "resolved from the timesheet")] = 120.0,
                site: SitesOpt = None) -> None:
    """Run the push flow now: `schedules` (sendSchedule) or `deviations` (sendFactWorkTime), site by site."""
    def run() -> None:
        if what not in ("schedules", "deviations"):
            raise ValueError(f"push what? {what!r}: schedules or deviations")
        push = prefect_api.flows("flows.push")
        if what == "schedules":
            result = push.push_schedules(_day(since), None, retry_refused, site or None)
        else:
            result = push.push_deviations(settle_after, sites=site or None)
        _console().print(f"{what}: " + (", ".join(f"{k} {v}" for k, v in sorted(result.items())) or "nothing to do"),
                         highlight=False)
    _guarded(run)


# ---- deviations ------------------------------------------------------------------------------

@deviations_app.callback()
def deviations(ctx: typer.Context, start: DateOpt = None, end: DateOpt = None,
               employee: Annotated[Optional[str], typer.Option(help="one employee id")] = None,
               unconfirmed: Annotated[bool, typer.Option(help="only rows not confirmed yet")] = False,
               limit: Annotated[int, typer.Option(help="how many rows")] = 50, site: SiteOpt = None) -> None:
    """Deviations of actual from planned time per employee and day, with what 1C made of them."""
    if ctx.invoked_subcommand is None:
        _guarded(lambda: show_deviations(_day(start), _day(end), employee, unconfirmed, limit, site))


SHOW = """
SELECT d.site, d.employee_id, d.work_date, d.time_types, d.deviation_hours, round(d.plan_ms / 36e5::numeric, 2),
       round(d.fact_ms / 36e5::numeric, 2), d.confirmed, d.confirmed_by, o.state,
       CASE WHEN o.state = 'sent' AND o.sent_hash IS DISTINCT FROM d.content_hash
            THEN 'changed since it was sent; not sent again' ELSE o.message END
FROM wfm.deviations d LEFT JOIN wfm_meta.push_outbox o
  ON o.site = d.site AND o.kind = 'fact' AND o.employee_id = d.employee_id AND o.period = d.work_date::text
WHERE (%(s)s::date IS NULL OR d.work_date >= %(s)s) AND (%(e)s::date IS NULL OR d.work_date <= %(e)s)
  AND (%(emp)s::text IS NULL OR d.employee_id = %(emp)s) AND (NOT %(u)s OR NOT d.confirmed)
  AND (%(site)s::text IS NULL OR d.site = %(site)s)
ORDER BY d.work_date DESC, d.site, d.employee_id LIMIT %(n)s
"""


def show_deviations(start, end, employee, unconfirmed: bool, limit: int, site: str | None = None) -> None:
    from engine.push import deviations as dev
    from engine.push import outbox as box_

    with _connect() as conn:
        dev.ensure_tables(conn)
        box_.ensure_outbox(conn)
        rows = conn.execute(SHOW, {"s": start, "e": end, "emp": employee, "u": unconfirmed, "n": limit,
                                   "site": site}).fetchall()
    table = Table(title="deviations (hours)", box=box.SIMPLE_HEAD, pad_edge=False)
    for name in ("site", "employee", "date", "1C will book", "plan", "fact", "confirmed", "1C", "note"):
        table.add_column(name, overflow="fold" if name == "note" else "ellipsis", no_wrap=name != "note")
    for where, emp, day, types, hours, plan, fact, ok, by, state, message in rows:
        table.add_row(where, emp, str(day), f"{types} {hours:g}", str(plan), str(fact), f"yes ({by})" if ok else "no",
                      state or "", message or "")
    _console().print(table)


@deviations_app.command("build")
def deviations_build(start: DateOpt = None, end: DateOpt = None, site: SitesOpt = None) -> None:
    """Rebuild the deviations of [start, end] from plan, logins and the agent map, site by site."""
    def run() -> None:
        result = prefect_api.flows("flows.push").deviations(_day(start), _day(end), site or None)
        _console().print("deviations: " + ", ".join(f"{k} {v}" for k, v in result.items()), highlight=False)
    _guarded(run)


@deviations_app.command("confirm")
def deviations_confirm(employee: Annotated[Optional[str], typer.Argument(help="employee id (1C GUID)")] = None,
                       day: Annotated[Optional[dt.datetime], typer.Argument(formats=["%Y-%m-%d"],
                                                                            help="YYYY-MM-DD")] = None,
                       all_: Annotated[bool, typer.Option("--all", help="every unconfirmed deviation")] = False,
                       start: DateOpt = None, end: DateOpt = None,
                       by: Annotated[Optional[str], typer.Option(help="who confirms (initiator_name in 1C)")] = None,
                       site: SiteOpt = None) -> None:
    """Confirm one deviation (EMPLOYEE DATE) or --all; confirmed ones are sent by `outbox push deviations`."""
    def run() -> None:
        from engine.push.deviations import confirm

        if all_ == bool(employee and day) or (employee is None) != (day is None):
            raise ValueError("give EMPLOYEE DATE, or --all (optionally with --start/--end)")
        with _connect() as conn:
            count = confirm(conn, by or getpass.getuser(), employee, _day(day), _day(start), _day(end), site)
        if employee and not count:
            raise ValueError(f"no unconfirmed deviation of {employee} on {_day(day)}")
        _console().print(f"confirmed {count} deviation(s)")
    _guarded(run)


# ---- receiver --------------------------------------------------------------------------------

@receiver_app.command("serve")
def receiver_serve(port: Annotated[int, typer.Option(help="TCP port")] = 8780,
                   host: Annotated[str, typer.Option(help="interface to listen on")] = "127.0.0.1",
                   spool: Annotated[Optional[Path], typer.Option(help="spool file (default: in the data dir)")] = None
                   ) -> None:
    """Receive the contact center's status push (POST /ccwfm/api/rest/status) until Ctrl-C."""
    from receiver.service import PATH, serve

    _console().print(f"status receiver: http://{host}:{port}{PATH}  warehouse: "
                     f"{database.describe_database(database.database_url())}; Ctrl-C stops", highlight=False)
    _guarded(lambda: serve(port, host, spool))


# ---- webhooks --------------------------------------------------------------------------------

@webhooks_app.command("add")
def webhooks_add(url: str,
                 events: Annotated[str, typer.Option(help="comma-separated: sync.completed, sync.failed, "
                                                          "quality.gate_failed, push.refused")],
                 secret: Annotated[Optional[str], typer.Option(envvar="WFM_WEBHOOK_SECRET", show_envvar=False,
                                                               help="signing secret (default: generated)")] = None,
                 secret_block: Annotated[Optional[str], typer.Option(help="a Prefect Secret block instead")] = None
                 ) -> None:
    """Subscribe URL to events; the secret is stored encrypted (or stays in the Secret block)."""
    def run() -> None:
        from engine.push.webhooks import add_subscriber

        with _connect() as conn:
            ident, generated = add_subscriber(conn, url, [e.strip() for e in events.split(",") if e.strip()],
                                              secret, secret_block)
        _console().print(f"subscriber {ident} added", highlight=False)
        if generated:
            _console().print("signing secret (shown once; keep it with the receiver):")
            _console().print(generated, highlight=False, soft_wrap=True)
    _guarded(run)


@webhooks_app.command("list")
def webhooks_list() -> None:
    """Subscribers, their events and last delivery (secrets are never shown)."""
    def run() -> None:
        from engine.push.webhooks import list_subscribers

        with _connect() as conn:
            rows = list_subscribers(conn)
        table = Table(title="webhook subscribers", box=box.SIMPLE_HEAD, pad_edge=False)
        for name in ("id", "url", "events", "secret", "last delivery"):
            table.add_column(name, overflow="fold")
        for r in rows:
            table.add_row(str(r["id"]), r["url"], ", ".join(r["events"]), r["secret"],
                          f"{r['last_outcome'] or ''} {_cell(r['last_attempt'])}".strip())
        _console().print(table)
    _guarded(run)


@webhooks_app.command("remove")
def webhooks_remove(subscriber_id: int) -> None:
    """Delete a subscriber and its delivery log."""
    def run() -> None:
        from engine.push.webhooks import remove_subscriber

        with _connect() as conn:
            if not remove_subscriber(conn, subscriber_id):
                raise ValueError(f"no webhook subscriber {subscriber_id}")
        _console().print(f"subscriber {subscriber_id} removed")
    _guarded(run)


@webhooks_app.command("test")
def webhooks_test(subscriber_id: int) -> None:
    """Send a signed `webhook.test` event to one subscriber now, with the retries, and show the outcome."""
    def run() -> None:
        from engine.push.webhook_outbox import send_test

        tally = send_test(database.database_url(), subscriber_id)
        if tally is None:
            raise ValueError(f"no webhook subscriber {subscriber_id}")
        for _, outcome, status, error in tally.outcomes:
            _console().print(f"{outcome} {status or ''} {error or ''}".rstrip(), highlight=False)
        if not tally.delivered:
            raise RuntimeError(f"subscriber {subscriber_id}: not delivered; the outbox tries again later")
    _guarded(run)


@webhooks_app.command("deliver")
def webhooks_deliver() -> None:
    """Deliver every due event of the outbox now (what the `deliver-webhooks` deployment does each minute)."""
    def run() -> None:
        from engine.push.webhook_outbox import deliver_due

        tally = deliver_due(database.database_url())
        _console().print(f"delivered {tally.delivered}, retrying later {tally.retrying}, failed {tally.failed}")
    _guarded(run)


@webhooks_app.command("verify")
def webhooks_verify(secret: Annotated[str, typer.Option(envvar="WFM_WEBHOOK_SECRET", show_envvar=False)],
                    timestamp: Annotated[str, typer.Option(help="the X-WFM-Timestamp header")],
                    signature: Annotated[str, typer.Option(help="the X-WFM-Signature header")],
                    body_file: Annotated[Optional[Path], typer.Option(help="the raw body (default: stdin)")] = None,
                    tolerance: Annotated[float, typer.Option(help="seconds a timestamp may be off")] = 300) -> None:
    """Check a delivery's signature as a receiver would; exits 1 with the reason if it is not valid."""
    def run() -> None:
        from engine.push.webhooks import check_signature

        body = body_file.read_bytes() if body_file else sys.stdin.buffer.read()
        problem = check_signature(secret, timestamp, body, signature, tolerance)
        if problem:
            raise ValueError(f"signature rejected: {problem}")
        _console().print("signature valid")
    _guarded(run)
