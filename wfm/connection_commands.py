"""`wfm connections list | test NAME | status NAME`: the configured connections and sites, whether
each answers, and how its streams are doing.

The connections come from the settings file (`connectors/config/connections.py`), or are the `default`
ones of the WFM_* variables. `test` makes the same one cheap call as `wfm check` through each
connection called NAME (the `default` name can be a contact center and a 1C base); `status` reads
the ledger: per stream its last run, the watermark, how far it lags behind now and the failed
runs of the last day. Nothing printed ever holds a secret.
"""

from __future__ import annotations

import datetime as dt
from typing import Annotated

import typer
from rich.console import Console
from rich.table import Table
from rich.text import Text

from connectors.config.connections import DEFAULT, Connections, load
from connectors.config.file import ConfigError
from connectors.settings import CONTACT_CENTER

connections_app = typer.Typer(help="Named source connections and the sites that pair them (wfm.toml).",
                              no_args_is_help=True)


def check_name(name: str) -> str:
    """A connection name as rows carry it (`--connection` of `wfm import`): lower case, path-safe."""
    from connectors.config.connections import NAME

    if not NAME.match(name):
        raise ValueError(f"--connection {name!r}: 1-63 of a-z, 0-9, '-', '_', starting with a letter or digit")
    return name


def owner_of_import(stream: str, connection: str, site: str | None) -> str:
    """Whose rows an imported file holds: a site's for a per-site table (a plan file: `--site`, default
    `default`, a site the settings declare), else the connection's."""
    from engine.landing.warehouse import SITE_TABLES

    if stream not in SITE_TABLES:
        if site is not None:
            raise ValueError(f"--site is for a plan file (planned_shifts); {stream} rows belong to a --connection")
        return connection
    if connection != DEFAULT:
        raise ValueError(f"{stream} rows belong to a site: give --site, not --connection")
    site = site or DEFAULT
    known = load().sites or {DEFAULT: None}
    if site not in known:
        raise ValueError(f"--site {site!r}: no such site; known: {', '.join(known)}")
    return site


def _console() -> Console:
    console = Console()
    if not console.is_terminal:
        console.width = max(console.width, 160)
    return console


def _load(console: Console) -> Connections:
    try:
        return load()
    except ConfigError as exc:
        console.print(Text(f"configuration error: {exc}", style="bold red"))
        raise typer.Exit(code=1) from None


@connections_app.command("list")
def list_command() -> None:
    """Every configured connection (name, system, address, auth, site) and every site."""
    from wfm.check import public_target

    console = _console()
    found = _load(console)
    table = Table(title="connections", caption=f"settings from: {found.origin}")
    for column in ("name", "system", "target", "auth", "site", "host"):
        table.add_column(column)
    for c in found.connections:
        sites = [s.name for s in found.sites.values()
                 if (s.contact_center if c.system == CONTACT_CENTER else s.onec) == c.name]
        table.add_row(Text(c.name), Text(c.system), Text(public_target(c.url)), Text(c.base.auth),
                      Text(", ".join(sites) or "-"), Text(c.host))
    console.print(table)
    if found.sites:
        sites = Table(title="sites")
        for column in ("site", "contact center", "1C:ZUP", "time zone"):
            sites.add_column(column)
        for s in found.sites.values():
            sites.add_row(Text(s.name), Text(s.contact_center or "-"), Text(s.onec or "-"), Text(s.timezone))
        console.print(sites)
    if not found.connections:
        console.print("no connection configured: write wfm.toml (WFM_CONFIG) or set WFM_CC_URL / WFM_ONEC_URL")


@connections_app.command("test")
def test_command(name: Annotated[str, typer.Argument(help="connection name (see `wfm connections list`)")],
                 timeout: Annotated[float, typer.Option(min=0.1, help="Seconds allowed for each request.")] = 10.0
                 ) -> None:
    """One cheap real call through each connection called NAME; exit 1 if any fails."""
    from wfm.check import check_connection, results_table

    console = _console()
    found = _load(console)
    try:
        chosen = found.named(name)
    except ConfigError as exc:
        console.print(Text(str(exc), style="bold red"))
        raise typer.Exit(code=1) from None
    results = [check_connection(c, timeout=timeout) for c in chosen]
    console.print(results_table(results, {"connections": found.origin}))
    if any(r.status == "FAILED" for r in results):
        raise typer.Exit(code=1)


STATUS = """
SELECT w.stream, r.status, r.started_at, r.error, w.value AS watermark,
       (SELECT count(*) FROM wfm_meta.sync_runs f WHERE f.stream = w.stream AND f.source = w.source
          AND f.status = 'failed' AND f.started_at > now() - interval '1 day') AS failed_24h
FROM wfm_meta.watermarks w
LEFT JOIN LATERAL (SELECT status, started_at, error FROM wfm_meta.sync_runs x WHERE x.stream = w.stream
                   AND x.source = w.source ORDER BY started_at DESC LIMIT 1) r ON true
WHERE w.source = %s ORDER BY w.stream
"""


@connections_app.command("status")
def status_command(name: Annotated[str, typer.Argument(help="connection name (see `wfm connections list`)")]
                   ) -> None:
    """Per stream of connection NAME: the last run, the watermark, the lag behind now, failures of the last day."""
    import psycopg

    from engine import database
    from engine.landing import ledger
    from wfm.commands import _cell

    console = _console()
    found = _load(console)
    try:
        found.named(name)
    except ConfigError as exc:
        console.print(Text(str(exc), style="bold red"))
        raise typer.Exit(code=1) from None
    with psycopg.connect(database.database_url(), autocommit=True) as conn:
        ledger.ensure_meta(conn)
        rows = conn.execute(STATUS, (name,)).fetchall()
    now = dt.datetime.now(dt.timezone.utc)
    table = Table(title=f"connection {name}")
    for column in ("stream", "last run", "status", "watermark", "lag", "failed (24 h)", "error"):
        table.add_column(column)
    for stream, status, started, error, mark, failed in rows:
        lag = "-" if mark is None else _duration(now - mark)
        table.add_row(Text(stream), Text(_cell(started)), Text(status or "-"), Text(_cell(mark)), Text(lag),
                      Text(str(failed)), Text((error or "")[:120]))
    console.print(table)
    if not rows:
        console.print(f"no run of connection {name} in the ledger yet")


def _duration(delta: dt.timedelta) -> str:
    minutes = int(delta.total_seconds() // 60)
    return f"{minutes // 1440}d {minutes % 1440 // 60}h" if minutes >= 1440 else f"{minutes // 60}h {minutes % 60}m"

