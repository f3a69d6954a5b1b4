"""`make server`: the Prefect server on PostgreSQL, telemetry off, the UI on the address given.

    python -m deployments.server --host 0.0.0.0 --port 4200 \\
        --database postgresql://prefect:...@db-host:5432/prefect

The database is created when missing; the URL may be given in libpq form (`postgresql://`), it is
handed to Prefect in SQLAlchemy's asyncpg form. The UI calls the API at `--public-url` (default:
this host's name and the port), which is what browsers on other machines must reach.
"""

from __future__ import annotations

import argparse
import os
import socket
import subprocess
import sys
from pathlib import Path
from urllib.parse import urlsplit, urlunsplit

import psycopg
from psycopg import sql

DEFAULT_DATABASE = "postgresql://postgres@127.0.0.1:5432/prefect"


def asyncpg_url(url: str) -> str:
    """`postgresql+asyncpg://...` for any PostgreSQL URL (`postgres://`, `postgresql+psycopg://`...)."""
    parts = urlsplit(url)
    if not parts.scheme.startswith(("postgres", "postgresql")):
        raise ValueError(f"the Prefect server needs PostgreSQL here, got a {parts.scheme!r} URL")
    return urlunsplit(parts._replace(scheme="postgresql+asyncpg"))


def ensure_database(url: str) -> None:
    """Create the URL's database on its server unless it exists."""
    parts = urlsplit(url)
    name = parts.path.lstrip("/")
    admin = urlunsplit(parts._replace(scheme="postgresql", path="/postgres"))
    with psycopg.connect(admin, autocommit=True) as conn:
        if not conn.execute("SELECT 1 FROM pg_database WHERE datname = %s", (name,)).fetchone():
            conn.execute(sql.SQL("CREATE DATABASE {}").format(sql.Identifier(name)))


def server_environment(database_url: str, public_url: str) -> dict[str, str]:
    """The environment of `prefect server start`: PostgreSQL, the UI's API address, no telemetry."""
    env = dict(os.environ)
    env.update({
        "PREFECT_SERVER_DATABASE_CONNECTION_URL": asyncpg_url(database_url),
        "PREFECT_SERVER_UI_API_URL": public_url,
        "PREFECT_API_URL": public_url,
        "DO_NOT_TRACK": "1",
        "PREFECT_SERVER_ANALYTICS_ENABLED": "false",
    })
    return env


def server_command(host: str, port: int) -> list[str]:
    prefect = Path(sys.executable).with_name("prefect")
    return [str(prefect), "server", "start", "--host", host, "--port", str(port)]


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--host", default="127.0.0.1")
    parser.add_argument("--port", type=int, default=4200)
    parser.add_argument("--database", default=os.environ.get("PREFECT_DB", DEFAULT_DATABASE),
                        help="PostgreSQL URL of the Prefect database")
    parser.add_argument("--public-url", help="API address the UI uses (default http://HOST:PORT/api)")
    args = parser.parse_args(argv)
    host = socket.getfqdn() if args.host in ("0.0.0.0", "::") else args.host
    public_url = args.public_url or f"http://{host}:{args.port}/api"
    ensure_database(args.database)
    where = urlsplit(args.database)
    print(f"Prefect server on PostgreSQL {where.hostname}{where.path}; UI http://{host}:{args.port}, "
          f"API {public_url}", flush=True)
    server = subprocess.Popen(server_command(args.host, args.port),
                              env=server_environment(args.database, public_url))
    try:
        return server.wait()
    except KeyboardInterrupt:   # Ctrl-C reached the server too; give it time to shut down cleanly
        try:
            return server.wait(timeout=15)
        except subprocess.TimeoutExpired:
            server.terminate()
            return server.wait(timeout=15)


if __name__ == "__main__":  # pragma: no cover - a long-running process
    sys.exit(main())
