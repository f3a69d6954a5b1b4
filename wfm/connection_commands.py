"""`wfm connections list | test NAME`: the configured connections and sites, and whether each answers.

The connections come from the settings file (`connectors/config/connections.py`), or are the `default`
ones of the WFM_* variables. `test` makes the same one cheap call as `wfm check` through each
connection called NAME (the `default` name can be a contact center and a 1C base). Nothing
printed ever holds a secret.
"""

from __future__ import annotations

from typing import Annotated

import typer
from rich.console import Console
from rich.table import Table
from rich.text import Text

from connectors.config.connections import Connections, load
from connectors.config.file import ConfigError
from connectors.settings import CONTACT_CENTER

connections_app = typer.Typer(help="Named source connections and the sites that pair them (wfm.toml).",
                              no_args_is_help=True)


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
