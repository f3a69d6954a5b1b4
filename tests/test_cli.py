"""The `wfm` command line: one-line errors, no tracebacks, real syncs through it."""

from __future__ import annotations

import pytest
from typer.testing import CliRunner

from wfm.cli import app

from .conftest import SIM_START

runner = CliRunner()
START, END = SIM_START.isoformat(), SIM_START.isoformat()


def run(*args: str):
    result = runner.invoke(app, list(args), env={"COLUMNS": "200"})
    return result, result.output + (result.stderr if result.stderr_bytes is not None else "")


def one_line_error(output: str) -> str:
    lines = [line for line in output.strip().splitlines() if line.strip()]
    assert "Traceback" not in output
    assert lines and lines[-1].startswith("error:"), output
    return lines[-1]


def test_unknown_stream_is_one_line(monkeypatch):
    result, output = run("sync", "agent_statuses")
    assert result.exit_code == 1
    line = one_line_error(output)
    assert "unknown stream 'agent_statuses'" in line and "agent_status_intervals" in line


def test_end_before_start_is_one_line():
    result, output = run("sync", "agent_logins", "--start", "2026-11-10", "--end", "2026-11-09")
    assert result.exit_code == 1
    assert "--end 2026-11-09 is before --start 2026-11-10" in one_line_error(output)


def test_unconfigured_source_is_one_line(database_url, monkeypatch, prefect_harness):
    monkeypatch.setenv("WFM_DATABASE_URL", database_url)
    result, output = run("sync", "agent_logins", "--start", START, "--end", END)
    assert result.exit_code == 1
    assert "contact center is not configured: set WFM_CC_URL" in one_line_error(output)


def test_sync_then_runs_and_quarantine(wfm_env, prefect_harness):
    wfm_env.set_faults("corrupt=0.02")
    result, output = run("sync", "agent_status_intervals", "--start", START, "--end", END)
    assert result.exit_code == 0, output
    assert "agent_status_intervals" in output and "backfill" in output
    result, output = run("runs")
    assert result.exit_code == 0 and "agent_status_intervals" in output and "completed" in output
    result, output = run("quarantine", "--stream", "agent_status_intervals")
    assert result.exit_code == 0 and "held per stream: agent_status_intervals" in output


def test_wrong_token_fails_in_one_line_naming_the_system(simulator, database_url, monkeypatch, prefect_harness):
    from connectors.simulator import AuthConfig, ServerConfig, SimConfig, start_simulator

    config = ServerConfig(sim=SimConfig(seed=3, agents=4, start=SIM_START, days=2),
                          cc_auth=AuthConfig("bearer", token="right-token"))
    with start_simulator(config) as sim:
        monkeypatch.setenv("WFM_CC_URL", sim.cc_url)
        monkeypatch.setenv("WFM_CC_TOKEN", "wrong-token")
        monkeypatch.setenv("WFM_DATABASE_URL", database_url)
        result, output = run("sync", "cc_agents")
    assert result.exit_code == 1
    line = one_line_error(output)
    assert "contact center" in line and "authentication failed (HTTP 401)" in line
    assert "wrong-token" not in output and "right-token" not in output


@pytest.mark.parametrize("args", [["sync", "agent_logins", "--start", "2026-13-01"], ["runs", "--limit", "x"]])
def test_malformed_arguments_are_usage_errors_not_tracebacks(args):
    result, output = run(*args)
    assert result.exit_code == 2 and "Traceback" not in output


def test_simulator_serve_then_check_in_real_processes(tmp_path):
    """`wfm simulator serve` in one process, `wfm check` in another: OK, then one line on a wrong token."""
    import os
    import socket
    import subprocess
    import sys
    import time
    from pathlib import Path

    wfm = str(Path(sys.executable).parent / "wfm")
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
    server = subprocess.Popen([wfm, "simulator", "serve", "--port", str(port), "--agents", "6", "--days", "2",
                               "--cc-auth", "bearer", "--cc-token", "sim-token-xyz"],
                              stdout=subprocess.PIPE, stderr=subprocess.STDOUT)
    try:
        deadline = time.monotonic() + 30
        while time.monotonic() < deadline:
            try:
                socket.create_connection(("127.0.0.1", port), timeout=0.2).close()
                break
            except OSError:
                time.sleep(0.1)
        env = {k: v for k, v in os.environ.items() if not k.startswith("WFM_")}
        env.update(WFM_CC_URL=f"http://127.0.0.1:{port}/cc", WFM_CC_TOKEN="sim-token-xyz",
                   WFM_ONEC_URL=f"http://127.0.0.1:{port}/zup/hs/wfm", WFM_ONEC_USERNAME="wfm",
                   WFM_ONEC_PASSWORD="wfm", WFM_LAKE_PATH=str(tmp_path / "lake"), WFM_DATA_DIR=str(tmp_path),
                   COLUMNS="200")
        good = subprocess.run([wfm, "check"], env=env, capture_output=True, text=True, timeout=60)
        assert good.returncode == 0, good.stdout + good.stderr
        assert good.stdout.count("OK") >= 2 and "sim-token-xyz" not in good.stdout
        env["WFM_CC_TOKEN"] = "wrong-token"
        bad = subprocess.run([wfm, "check"], env=env, capture_output=True, text=True, timeout=60)
        assert bad.returncode == 1
        failed = [line for line in bad.stdout.splitlines() if "FAILED" in line]
        assert len(failed) == 1 and "contact center" in failed[0] and "authentication failed" in failed[0]
        assert "wrong-token" not in bad.stdout + bad.stderr
    finally:
        server.terminate()
        server.wait(timeout=10)
        server.stdout.close()


def _local_apis(prefect_home) -> set[int]:
    """Pids of Prefect API servers the CLI started itself (Prefect's own add `--app-dir`) for this
    PREFECT_HOME: other processes on a shared machine run their own."""
    import subprocess
    from pathlib import Path

    found = subprocess.run(["pgrep", "-f", "uvicorn --factory prefect.server.api.server:create_app"],
                           capture_output=True, text=True).stdout.split()
    mine = f"PREFECT_HOME={prefect_home}".encode()
    pids = set()
    for pid in found:
        try:
            if mine in Path(f"/proc/{pid}/environ").read_bytes().split(b"\0"):
                pids.add(int(pid))
        except OSError:   # gone meanwhile
            pass
    return pids


def test_sync_in_a_real_process_starts_its_own_prefect_api_and_stops_it(wfm_env, database_url, tmp_path):
    """No PREFECT_API_URL: the CLI starts the local API before importing the flows, runs, and stops it."""
    import os
    import subprocess
    import sys
    from pathlib import Path

    wfm = str(Path(sys.executable).parent / "wfm")
    env = {k: v for k, v in os.environ.items() if not k.startswith("PREFECT_API")}
    env.update(PREFECT_HOME=str(tmp_path / "prefect"), COLUMNS="200")
    done = subprocess.run([wfm, "sync", "agent_logins", "--start", START, "--end", END], env=env,
                          capture_output=True, text=True, timeout=180)
    assert done.returncode == 0, done.stdout + done.stderr
    assert "completed" in done.stdout and "Traceback" not in done.stderr
    assert (tmp_path / "prefect" / "prefect.db").exists()   # the run was recorded by the local API
    assert _local_apis(tmp_path / "prefect") == set()       # and the server went with the process
