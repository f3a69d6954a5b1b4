"""Every `wfm` command that runs a flow gets its Prefect API the way `wfm sync` does (issue 19.1).

The commands run as real processes with no PREFECT_API_URL and a fresh PREFECT_HOME, as a new
user's would. The local API's start is slowed past Prefect's own 20 s limit by the launcher's
test hook, and Prefect's own ephemeral start-up is given 1 s: a command that left the API to
Prefect fails ("Timed out while attempting to connect to ephemeral Prefect API server"), one
that starts and waits for its own succeeds, after the delay.
"""

from __future__ import annotations

import os
import subprocess
import sys
import time
from pathlib import Path

import psycopg
import pytest

from wfm.prefect_api import SLOW_START_ENV

pytestmark = pytest.mark.slow
DELAY = 21.0   # seconds: past the 20 s Prefect gives its ephemeral server by default
GUID = "162a53e3-7a51-11e6-80ec-00155d00edab"


def run_slow_api(tmp_path: Path, database_url: str, *args: str) -> tuple[subprocess.CompletedProcess, float]:
    env = {k: v for k, v in os.environ.items() if not k.startswith("PREFECT_API")}
    env.update(PREFECT_HOME=str(tmp_path / "prefect"), COLUMNS="200", WFM_DATABASE_URL=database_url,
               WFM_LAKE_PATH=str(tmp_path / "lake"), PREFECT_SERVER_EPHEMERAL_STARTUP_TIMEOUT_SECONDS="1")
    env[SLOW_START_ENV] = str(DELAY)
    started = time.monotonic()
    done = subprocess.run([str(Path(sys.executable).parent / "wfm"), *args], env=env, capture_output=True,
                          text=True, timeout=240)
    return done, time.monotonic() - started


def test_import_waits_for_a_slow_local_api(tmp_path: Path, database_url: str) -> None:
    plan = tmp_path / "plan.csv"
    plan.write_text(f"employee;start;end\n{GUID};2026-11-09T08:00:00Z;2026-11-09T17:00:00Z\n")
    done, seconds = run_slow_api(tmp_path, database_url, "import", str(plan), "--stream", "planned_shifts",
                                 "--map", "employee=employee_id,start=shift_start,end=shift_end")
    assert done.returncode == 0, done.stdout + done.stderr
    assert seconds > DELAY and "Traceback" not in done.stderr
    assert (tmp_path / "prefect" / "prefect.db").exists()   # the run was recorded by the local API
    with psycopg.connect(database_url) as conn:
        assert conn.execute("SELECT employee_id FROM wfm.planned_shifts").fetchall() == [(GUID,)]


@pytest.mark.parametrize("args", [("outbox", "push", "schedules"), ("deviations", "build"),
                                  ("quarantine", "replay")], ids=" ".join)
def test_an_api_that_dies_while_starting_is_one_line(tmp_path: Path, database_url: str, args) -> None:
    """The same start-up and the same one-line error for the other flow commands: a local API whose
    process dies at once (the hook's delay is not a number) is reported in one line naming the
    server's last message and its log, not waited for."""
    env = {k: v for k, v in os.environ.items() if not k.startswith("PREFECT_API")}
    env.update(PREFECT_HOME=str(tmp_path / "prefect"), WFM_DATABASE_URL=database_url, **{SLOW_START_ENV: "x"})
    done = subprocess.run([str(Path(sys.executable).parent / "wfm"), *args], env=env, capture_output=True,
                          text=True, timeout=120)
    assert done.returncode == 1 and "Traceback" not in done.stderr
    [line] = done.stderr.strip().splitlines()
    assert line.startswith("error: the local Prefect API exited with code 1 while starting: ValueError: could "
                           "not convert string to float: 'x' (log: ")
    log = Path(line.rsplit("(log: ", 1)[1].rstrip(")"))
    assert "Traceback" in log.read_text()   # the server's own message is kept for whoever looks
    log.unlink()
