"""`wfm check`: can the pipelines reach, and log in to, every system they depend on?

For each system it makes one cheap real call and reports a row: system, target (the address
without credentials), OK / FAILED / SKIPPED (not configured), latency and a one-line detail.

    contact center   GET /personnel
    1C:ZUP           GET /agents/{today}/{today}   (the cheapest call the 1C contract has)
    warehouse        select 1 on WFM_DATABASE_URL; the embedded PostgreSQL is only started with --database
    lake             write and remove a probe file under the lake's root

Checks use a short retry policy (2 attempts) so that a dead system fails in seconds. Output
never holds a secret: details come from the connectors' credential-free messages, and every
known secret value is masked once more before printing.
"""

from __future__ import annotations

import dataclasses
import datetime as dt
import os
import socket
import time
import uuid
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass
from typing import TYPE_CHECKING, Annotated, Any, Literal
from urllib.parse import parse_qsl, urlencode, urlsplit

import typer
from rich.console import Console
from rich.table import Table
from rich.text import Text

from connectors.config.connections import Connection
from connectors.config.connections import load as load_connections
from connectors.errors import SourceError, SourceUnavailable
from connectors.http import RetryPolicy
from connectors.settings import CONTACT_CENTER, ONEC, Maintenance

if TYPE_CHECKING:   # the blocks import Prefect: only `wfm check` itself should pay for that
    from blocks import Connections, ContactCenterConnection, LakeLocation, OneCConnection, WarehouseConnection

WAREHOUSE = "warehouse"
LAKE = "lake"
Status = Literal["OK", "FAILED", "SKIPPED"]
CHECK_RETRY = RetryPolicy(attempts=2, initial_wait=0.2, max_wait=1.0, jitter=0.1, max_elapsed=60.0,
                          max_retry_after=2.0)
STYLES = {"OK": "green", "FAILED": "bold red", "SKIPPED": "yellow"}


@dataclass(frozen=True)
class ReachResult:
    """The outcome of checking one system."""

    system: str
    target: str
    status: Status
    latency_ms: float | None
    detail: str


def run_checks(connections: Connections | None = None, *, timeout: float = 10.0,
               database: bool = False) -> list[ReachResult]:
    """Check every system, in a fixed order; `database` starts the embedded PostgreSQL if need be."""
    from blocks import load_settings

    connections = load_settings() if connections is None else connections
    today = dt.date.today().isoformat()
    declared = load_connections()
    if declared.origin == "environment":
        sources = [
            check_source(CONTACT_CENTER, connections.contact_center, "/personnel", _summarize_personnel,
                         timeout=timeout, hint=_hint("contact_center", "WFM_CC_URL")),
            check_source(ONEC, connections.onec, f"/agents/{today}/{today}", _summarize_agents,
                         timeout=timeout, hint=_hint("onec", "WFM_ONEC_URL"))]
    else:   # a settings file: every connection it declares, each named
        sources = [check_connection(c, timeout=timeout) for c in declared.connections]
    results = [
        *sources,
        check_warehouse(connections.warehouse, timeout=timeout, start_embedded=database),
        check_lake(connections.lake),
    ]
    secrets = _secret_values(connections)
    return [_masked(result, secrets) for result in results]


def check_source(system: str, connection: ContactCenterConnection | OneCConnection | None, path: str,
                 summarize: Callable[[Any], str], *, timeout: float, hint: str) -> ReachResult:
    """One GET through the connectors' client: reachable, authenticated, answering the contract."""
    if connection is None:
        return ReachResult(system, "-", "SKIPPED", None, hint)
    target = public_target(connection.url)
    configured = connection.settings()
    # a person's check asks even in the source's maintenance window (and says so)
    settings = dataclasses.replace(configured, timeout=timeout, retry=CHECK_RETRY, maintenance="")
    try:
        client = settings.client()
        window = Maintenance.parse(configured.maintenance).active()
    except ValueError as exc:   # an auth style without its credentials
        return ReachResult(system, target, "FAILED", None, f"misconfigured: {exc}")
    note = f" (in its maintenance window {window})" if window else ""
    with client:
        started = time.perf_counter()
        try:
            payload = client.request_json("GET", path, not_found_is_empty=False)   # a 404 here: not the API
        except SourceError as exc:
            latency = _elapsed_ms(started)
            return ReachResult(system, target, "FAILED", latency,
                               _source_error_detail(exc, connection.url, timeout) + note)
        latency = _elapsed_ms(started)
    try:
        return ReachResult(system, target, "OK", latency, f"GET {path}: {summarize(payload)}{note}")
    except (KeyError, TypeError, IndexError, AttributeError):
        return ReachResult(system, target, "FAILED", latency, f"GET {path}: the answer does not follow the contract")


def check_warehouse(warehouse: WarehouseConnection | None, *, timeout: float,
                    start_embedded: bool) -> ReachResult:
    """`select 1` on the configured PostgreSQL; the embedded one only when asked to start it."""
    if warehouse is None:
        if not start_embedded:
            return ReachResult(WAREHOUSE, "embedded", "SKIPPED", None,
                               "embedded (started on demand); --database starts and checks it")
        target, dsn = "embedded", _embedded_dsn
    else:
        target, dsn = public_target(warehouse.dsn()), warehouse.dsn
    started = time.perf_counter()
    try:
        version = _select_one(dsn(), timeout)
    except Exception as exc:  # noqa: BLE001 - any failure is the check's answer, not a crash
        return ReachResult(WAREHOUSE, target, "FAILED", _elapsed_ms(started), _database_detail(exc))
    return ReachResult(WAREHOUSE, target, "OK", _elapsed_ms(started), f"select 1 (PostgreSQL {version})")


def check_lake(lake: LakeLocation | None) -> ReachResult:
    """Write and remove a probe file under the lake's root (the default lake when none is configured)."""
    suffix = ""
    if lake is None:
        from blocks import LakeLocation
        from engine.paths import lake_path

        lake, suffix = LakeLocation(path=lake_path()), " (default)"
    target = public_target(lake.path) + suffix
    started = time.perf_counter()
    try:
        from engine.landing.lake import filesystem  # the lake writer's own way in, storage options included

        fs, root = filesystem(lake.path, lake.storage_options.get_secret_value())
        fs.create_dir(root, recursive=True)
        probe = f"{root.rstrip('/')}/.wfm-check-{uuid.uuid4().hex}"
        with fs.open_output_stream(probe) as out:
            out.write(b"wfm check\n")
        fs.delete_file(probe)
    except Exception as exc:  # noqa: BLE001 - any failure is the check's answer, not a crash
        return ReachResult(LAKE, target, "FAILED", _elapsed_ms(started), f"not writable: {_one_line(exc)}")
    return ReachResult(LAKE, target, "OK", _elapsed_ms(started), f"writable ({fs.type_name})")


def public_target(url: str) -> str:
    """The address without user, password or query, but for a `host`/`port` given in the query."""
    parts = urlsplit(url)
    if not parts.scheme or not parts.netloc:
        return url   # a local path
    try:
        host, port = parts.hostname or "", parts.port
    except ValueError:
        host, port = parts.netloc.rpartition("@")[2], None
    host = f"[{host}]" if ":" in host else host
    where = urlencode([(key, value) for key, value in parse_qsl(parts.query) if key in ("host", "port")])
    return f"{parts.scheme}://{host}{f':{port}' if port else ''}{parts.path}{'?' + where if where else ''}"


def results_table(results: Iterable[ReachResult], origin: Mapping[str, str] | None = None) -> Table:
    """The rich table `wfm check` prints; cell text is never read as rich markup."""
    table = Table(title="wfm check", caption=_origin_caption(origin or {}))
    for column in ("system", "target", "status", "latency ms", "detail"):
        table.add_column(column, no_wrap=column in ("system", "status", "latency ms"),
                         justify="right" if column == "latency ms" else "left")
    for result in results:
        latency = "-" if result.latency_ms is None else f"{result.latency_ms:.0f}"
        table.add_row(Text(result.system), Text(result.target), Text(result.status, style=STYLES[result.status]),
                      latency, Text(result.detail))
    return table


def check_command(
    timeout: Annotated[float, typer.Option("--timeout", min=0.1, help="Seconds allowed for each request.")] = 10.0,
    database: Annotated[bool, typer.Option(
        "--database", help="Start the embedded PostgreSQL when WFM_DATABASE_URL is unset, and check it.",
    )] = False,
) -> None:
    """Test the connection to every configured system; exit 1 if any check fails."""
    console = Console()
    if not console.is_terminal:
        console.width = max(console.width, 160)   # one line per row in logs and pipes
    from blocks import load_settings

    try:
        connections = load_settings()
        load_connections()
    except ValueError as exc:   # a malformed WFM_* value or settings file; neither echoes a rejected value
        console.print(Text(f"configuration error: {exc}", style="bold red"))
        raise typer.Exit(code=1) from None
    results = run_checks(connections, timeout=timeout, database=database)
    console.print(results_table(results, connections.origin))
    if any(result.status == "FAILED" for result in results):
        raise typer.Exit(code=1)


def _summarize_personnel(payload: Any) -> str:
    return f"{len(payload['agents'])} agents, {len(payload['services'])} services"


def _summarize_agents(payload: Any) -> str:
    body = payload[0] if isinstance(payload, list) else payload
    return f"{len(body['AR_agents'])} employees, {len(body['AR_departments'])} departments"


def _source_error_detail(exc: SourceError, url: str, timeout: float) -> str:
    """The connectors' one-line detail; for a failed connect, a bare TCP connect says why."""
    if not (isinstance(exc, SourceUnavailable) and exc.detail.startswith("transport error (ConnectError)")):
        return exc.detail
    parts = urlsplit(url)
    port = parts.port or (443 if parts.scheme == "https" else 80)
    try:
        socket.create_connection((parts.hostname or "", port), timeout=min(timeout, 3.0)).close()
        return exc.detail
    except ConnectionRefusedError:
        reason = "connection refused"
    except socket.gaierror:
        reason = f"host {parts.hostname} not found"
    except TimeoutError:
        reason = "connection timed out"
    except OSError as error:
        reason = (error.strerror or type(error).__name__).lower()
    return f"{reason} (gave up after {exc.attempts} attempts)"


def _embedded_dsn() -> str:
    from engine.database import embedded_database_url

    return embedded_database_url()


def _select_one(dsn: str, timeout: float) -> str:
    import psycopg

    with psycopg.connect(dsn, connect_timeout=max(1, round(timeout))) as connection:
        connection.execute("select 1").fetchone()
        version = connection.info.server_version   # e.g. 160004
    return f"{version // 10000}.{version % 10000}"


def _database_detail(exc: Exception) -> str:
    text = str(exc).lower()
    for needle, detail in (("connection refused", "connection refused"),
                           ("password authentication failed", "authentication failed (password)"),
                           ("timeout expired", "connection timed out")):
        if needle in text:
            return detail
    return _one_line(exc)


def _one_line(exc: BaseException) -> str:
    text = " ".join(str(exc).split()) or type(exc).__name__
    return text[:200]


def _hint(attribute: str, variable: str) -> str:
    from blocks import BLOCK_NAMES

    return f"not configured (set {variable} or save block {BLOCK_NAMES[attribute][1]!r})"


def _origin_caption(origin: Mapping[str, str]) -> str:
    sources = sorted(set(origin.values()))
    return "settings from: " + ", ".join(sources) if sources else ""


def _elapsed_ms(started: float) -> float:
    return (time.perf_counter() - started) * 1000


def _secret_values(connections: Connections) -> set[str]:
    """Every credential the connections hold, to mask in anything printed."""
    values: set[str] = set()
    for block in (connections.contact_center, connections.onec, connections.warehouse):
        for name in ("password", "token", "client_secret", "url"):
            secret = getattr(block, name, None)
            if hasattr(secret, "get_secret_value"):
                values.add(secret.get_secret_value())
    if connections.warehouse is not None:
        values.add(urlsplit(connections.warehouse.dsn()).password or "")
    if connections.lake is not None:
        values.update(str(v) for v in connections.lake.storage_options.get_secret_value().values())
    return {value for value in values if value}


def _masked(result: ReachResult, secrets: set[str]) -> ReachResult:
    target, detail = result.target, result.detail
    for secret in sorted(secrets, key=len, reverse=True):
        target, detail = target.replace(secret, "***"), detail.replace(secret, "***")
    return dataclasses.replace(result, target=target, detail=detail)


def check_connection(connection: Connection, *, timeout: float = 10.0):
    """`wfm check`'s source check for one named connection; the system column names it."""
    from blocks.connections import connection_settings

    label = f"{connection.system} {connection.name}"
    try:
        settings = connection_settings(
            connection, use_blocks=os.environ.get("WFM_USE_BLOCKS", "").strip().lower() in ("1", "true", "yes"))
    except ValueError as exc:   # a secret's variable unset, a Secret block missing
        return ReachResult(label, public_target(connection.url), "FAILED", None, f"misconfigured: {exc}")
    today = dt.date.today().isoformat()
    path, summarize = (("/personnel", _summarize_personnel) if connection.system == CONTACT_CENTER
                       else (f"/agents/{today}/{today}", _summarize_agents))
    resolved = _Resolved(connection.url, settings)
    result = check_source(label, resolved, path, summarize, timeout=timeout, hint="")  # type: ignore[arg-type]
    secrets = {v for v in (settings.password, settings.token, settings.client_secret) if v}
    return _masked(result, secrets)


@dataclasses.dataclass(frozen=True)
class _Resolved:
    """What `check_source` asks of a connection: its URL and its settings."""

    url: str
    resolved: object

    def settings(self):
        return self.resolved
