"""The CLI's local Prefect API: one start-up, one wait, one error for every command that runs a flow.

With no PREFECT_API_URL, Prefect starts its own ephemeral server on the first client call and
gives it 20 s; on a busy machine that ends in "Timed out while attempting to connect to ephemeral
Prefect API server". So a command that runs a flow calls `start()` first, before anything imports
Prefect, and `ready()` just before its first flow call (`flows(module)` does both around the
import): the local API comes up on the other core while the command imports its flows and checks
its input, `ready()` waits up to 90 s for it and fails in one line, and a mistake in the input
still fails at once. With PREFECT_API_URL set (a server, `make server`) both do nothing.
The API started here serves this process alone, so it is registered with `engine/landing/limits.py`:
the source limits stay in-process instead of costing Prefect round trips per request.
"""

from __future__ import annotations

import atexit
import contextlib
import ctypes
import os
import signal
import socket
import subprocess
import sys
import tempfile
import time
import urllib.request
from collections.abc import Callable
from importlib import import_module
from pathlib import Path
from types import ModuleType

EPHEMERAL_API_ENV = {"PREFECT_UI_ENABLED": "0", "PREFECT__SERVER_EPHEMERAL": "1", "PREFECT__SERVER_FINAL": "1"}
# test hook: seconds the local API's process sleeps before it starts (a busy machine, made repeatable)
SLOW_START_ENV = "WFM_TEST_PREFECT_API_DELAY"
SLOW_START = ("import os, runpy, sys, time; time.sleep(float(os.environ['WFM_TEST_PREFECT_API_DELAY'])); "
              "sys.argv = sys.argv[1:]; runpy.run_module('uvicorn', run_name='__main__')")

_wait: Callable[[], None] | None = None
_started = False
_failed: set[str] = set()   # logs of servers that did not come up: kept for the user to read


def start() -> None:
    """Start the local Prefect API in the background, once per process (if one is needed)."""
    global _started, _wait
    if not _started:
        _started = True
        _wait = prefect_api_in_background()


def ready(meanwhile: Callable[[], None] | None = None) -> None:
    """Return when the API answers (starting it first if `start` was not called). `meanwhile`
    runs first if there is a local API to wait for: work the command needs anyway (GX's import
    for one that validates) done on this core while the API starts on the other."""
    global _wait
    start()
    if _wait is not None:
        if meanwhile is not None:
            meanwhile()
        _wait()
        _wait = None


def flows(module: str) -> ModuleType:
    """`start`, import the flow module (seconds, while the API starts), `ready`: for commands that
    have nothing to check before their flow runs."""
    start()
    loaded = import_module(module)
    ready()
    return loaded


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
    uvicorn = ["uvicorn", "--factory", "prefect.server.api.server:create_app", "--host", "127.0.0.1",
               "--port", str(port), "--log-level", "error", "--lifespan", "on"]
    # the server's own messages go to a log, kept only when it fails: the terminal gets one line
    with tempfile.NamedTemporaryFile(prefix="wfm-prefect-api-", suffix=".log", delete=False) as log:
        server = subprocess.Popen(
            [sys.executable, *(["-c", SLOW_START] if os.environ.get(SLOW_START_ENV) else ["-m"]), *uvicorn],
            env={**os.environ, **EPHEMERAL_API_ENV}, stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL,
            stderr=log, preexec_fn=_die_with_parent if sys.platform == "linux" else None)
    atexit.register(_stop, server, log.name)
    os.environ["PREFECT_API_URL"] = api = f"http://127.0.0.1:{port}/api"
    from engine.landing import limits

    limits.own_api(api)   # it serves this process alone: source limits stay in-process (no API round trips)

    def wait_ready(timeout: float = 90.0) -> None:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if server.poll() is not None:
                _failed.add(log.name)
                raise RuntimeError(f"the local Prefect API exited with code {server.returncode} while starting: "
                                   f"{_last_line(log.name)} (log: {log.name})")
            with contextlib.suppress(OSError):
                with urllib.request.urlopen(f"{api}/health", timeout=2) as answer:
                    if answer.status == 200:
                        return
            time.sleep(0.1)
        _failed.add(log.name)
        raise RuntimeError(f"the local Prefect API did not answer on {api} within {timeout:.0f} s (log: {log.name})")
    return wait_ready


def _die_with_parent() -> None:
    """In the server's process: SIGTERM when the CLI process dies, even of SIGKILL (Linux prctl)."""
    with contextlib.suppress(Exception):
        ctypes.CDLL(None).prctl(1, signal.SIGTERM)   # PR_SET_PDEATHSIG


def _last_line(path: str) -> str:
    lines = [line.strip() for line in Path(path).read_text(errors="replace").splitlines() if line.strip()]
    return lines[-1] if lines else "no message"


def _stop(server: subprocess.Popen, log: str) -> None:
    server.terminate()
    try:
        server.wait(timeout=5)
    except subprocess.TimeoutExpired:
        server.kill()
        server.wait()
    if log not in _failed:
        with contextlib.suppress(OSError):
            os.unlink(log)
