"""`wfm check` against a small real HTTP server on 127.0.0.1 playing the contact center and 1C."""

from __future__ import annotations

import base64
import datetime as dt
import json
import socket
import threading
from collections import Counter
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

import pytest
import typer
from typer.testing import CliRunner

from blocks import load_settings
from wfm.check import ReachResult, check_command, public_target, run_checks

CC_TOKEN, ONEC_PASSWORD, DB_PASSWORD = "cc-token-good-7g", "onec-password-good-8h", "db-password-9i"
WRONG_TOKEN = "cc-token-wrong-0j"
SECRETS = (CC_TOKEN, ONEC_PASSWORD, DB_PASSWORD, WRONG_TOKEN)
PERSONNEL = {"services": [{"id": "1", "name": "Support", "status": "ACTIVE", "serviceGroups": []}],
             "agents": [{"id": "1", "name": "John", "agentGroups": [{"groupId": "1"}]},
                        {"id": "2", "name": "Mary", "agentGroups": [{"groupId": "1"}]}]}
AGENTS = [{"AR_departments": [{"departmentId": "d1", "department": "Support", "parentDepartmentId": ""}],
           "AR_agents": [{"agentId": f"a{n}", "tabN": str(n)} for n in (1, 2, 3)]}]


class FakeSources(BaseHTTPRequestHandler):
    """/cc/* is the contact center (Bearer), /onec/hs/wfm/* is 1C (Basic); /echo-cc/* and /down-cc/* misbehave."""

    server: SourceServer

    def do_GET(self) -> None:  # noqa: N802 - the http.server hook's name
        self.server.calls[self.path] += 1
        today = dt.date.today().isoformat()
        authorization = self.headers.get("Authorization", "")
        basic = "Basic " + base64.b64encode(f"wfm:{ONEC_PASSWORD}".encode()).decode()
        if self.path == "/cc/personnel":
            good = authorization == f"Bearer {CC_TOKEN}"
            self._answer(*((200, PERSONNEL) if good else (401, {"message": "bad token"})))
        elif self.path == f"/onec/hs/wfm/agents/{today}/{today}":
            self._answer(*((200, AGENTS) if authorization == basic else (401, None)))
        elif self.path == "/echo-cc/personnel":   # a server that quotes the credentials it refused
            self._answer(400, {"message": f"malformed header {authorization!r}"})
        elif self.path == "/down-cc/personnel":
            self._answer(503, {"message": "nightly maintenance"})
        else:
            self._answer(404, None)

    def _answer(self, status: int, body: object) -> None:
        content = b"" if body is None else json.dumps(body).encode()
        self.send_response(status)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(content)))
        self.end_headers()
        self.wfile.write(content)

    def log_message(self, format: str, *args: object) -> None:  # noqa: A002 - the base class's name
        pass


class SourceServer(ThreadingHTTPServer):
    calls: Counter[str]


@pytest.fixture
def server() -> Iterator[SourceServer]:
    httpd = SourceServer(("127.0.0.1", 0), FakeSources)
    httpd.calls = Counter()
    thread = threading.Thread(target=httpd.serve_forever, kwargs={"poll_interval": 0.05}, daemon=True)
    thread.start()
    yield httpd
    httpd.shutdown()
    httpd.server_close()
    thread.join()


@pytest.fixture
def closed_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return probe.getsockname()[1]


def environment(server: SourceServer, tmp_path, **overrides: str) -> dict[str, str]:
    base = f"http://127.0.0.1:{server.server_port}"
    env = {"WFM_CC_URL": f"{base}/cc", "WFM_CC_TOKEN": CC_TOKEN, "WFM_ONEC_URL": f"{base}/onec/hs/wfm",
           "WFM_ONEC_USERNAME": "wfm", "WFM_ONEC_PASSWORD": ONEC_PASSWORD, "WFM_LAKE_PATH": str(tmp_path / "lake")}
    return {**env, **overrides}


def by_system(results: list[ReachResult]) -> dict[str, ReachResult]:
    return {result.system: result for result in results}


def run_cli(monkeypatch: pytest.MonkeyPatch, env: dict[str, str], *args: str):
    for name, value in env.items():
        monkeypatch.setenv(name, value)
    app = typer.Typer()
    app.command("check")(check_command)
    app.callback()(lambda: None)   # keeps "check" a subcommand, as it is in wfm/cli.py
    return CliRunner().invoke(app, ["check", *args])


def test_both_sources_answer_with_the_right_credentials(server: SourceServer, tmp_path) -> None:
    results = by_system(run_checks(load_settings(environment(server, tmp_path)), timeout=5))
    assert results["contact center"].status == "OK"
    assert results["contact center"].detail == "GET /personnel: 2 agents, 1 services"
    assert results["1C:ZUP"].status == "OK" and "3 employees, 1 departments" in results["1C:ZUP"].detail
    assert results["warehouse"].status == "SKIPPED"
    assert results["warehouse"].detail.startswith("embedded (started on demand)")
    assert results["lake"].status == "OK" and (tmp_path / "lake").is_dir()
    assert list((tmp_path / "lake").iterdir()) == []   # the probe file is gone
    assert all(result.latency_ms is not None for result in results.values() if result.status == "OK")


def test_cli_prints_a_table_and_exits_0_when_all_is_well(server: SourceServer, tmp_path,
                                                         monkeypatch: pytest.MonkeyPatch) -> None:
    outcome = run_cli(monkeypatch, environment(server, tmp_path))
    assert outcome.exit_code == 0, outcome.output
    assert outcome.output.count(" OK ") == 3 and "SKIPPED" in outcome.output
    assert f"http://127.0.0.1:{server.server_port}/onec/hs/wfm" in outcome.output
    assert not any(secret in outcome.output for secret in SECRETS)


def test_a_wrong_token_fails_on_one_line_naming_the_system(server: SourceServer, tmp_path,
                                                           monkeypatch: pytest.MonkeyPatch) -> None:
    outcome = run_cli(monkeypatch, environment(server, tmp_path, WFM_CC_TOKEN=WRONG_TOKEN))
    assert outcome.exit_code == 1
    [line] = [line for line in outcome.output.splitlines() if "authentication failed" in line]
    assert "contact center" in line and "FAILED" in line and "HTTP 401" in line
    assert server.calls["/cc/personnel"] == 1   # 401 is fatal: no retry
    assert not any(secret in outcome.output for secret in SECRETS)


def test_a_wrong_1c_password_fails(server: SourceServer, tmp_path) -> None:
    env = environment(server, tmp_path, WFM_ONEC_PASSWORD="onec-password-wrong")
    onec = by_system(run_checks(load_settings(env), timeout=5))["1C:ZUP"]
    assert (onec.status, onec.detail) == ("FAILED", "authentication failed (HTTP 401)")


def test_a_closed_port_fails_as_connection_refused(server: SourceServer, tmp_path, closed_port: int,
                                                   monkeypatch: pytest.MonkeyPatch) -> None:
    env = environment(server, tmp_path, WFM_CC_URL=f"http://127.0.0.1:{closed_port}/cc")
    outcome = run_cli(monkeypatch, env, "--timeout", "2")
    assert outcome.exit_code == 1
    [line] = [line for line in outcome.output.splitlines() if "FAILED" in line]
    assert "contact center" in line and "connection refused (gave up after 2 attempts)" in line


def test_a_source_down_for_maintenance_is_retried_once(server: SourceServer, tmp_path) -> None:
    env = environment(server, tmp_path, WFM_CC_URL=f"http://127.0.0.1:{server.server_port}/down-cc")
    cc = by_system(run_checks(load_settings(env), timeout=5))["contact center"]
    assert cc.status == "FAILED"
    assert cc.detail == "HTTP 503: nightly maintenance (gave up after 2 attempts)"
    assert server.calls["/down-cc/personnel"] == 2


def test_a_secret_quoted_by_the_server_is_masked(server: SourceServer, tmp_path) -> None:
    env = environment(server, tmp_path, WFM_CC_URL=f"http://127.0.0.1:{server.server_port}/echo-cc")
    cc = by_system(run_checks(load_settings(env), timeout=5))["contact center"]
    assert cc.status == "FAILED" and "Bearer ***" in cc.detail and CC_TOKEN not in cc.detail


def test_a_style_without_its_credentials_is_reported_as_misconfigured(server: SourceServer, tmp_path) -> None:
    env = environment(server, tmp_path, WFM_CC_AUTH="oauth2", WFM_CC_TOKEN="")
    cc = by_system(run_checks(load_settings(env), timeout=5))["contact center"]
    assert (cc.status, cc.detail) == ("FAILED", "misconfigured: auth oauth2 needs client_id, client_secret")


def test_unconfigured_sources_are_skipped_and_do_not_fail_the_command(monkeypatch: pytest.MonkeyPatch,
                                                                     tmp_path) -> None:
    outcome = run_cli(monkeypatch, {"WFM_LAKE_PATH": str(tmp_path / "lake")})
    assert outcome.exit_code == 0, outcome.output
    assert outcome.output.count("SKIPPED") == 3 and "not configured (set WFM_CC_URL" in outcome.output


def test_an_unreachable_database_fails_without_showing_its_password(closed_port: int, tmp_path,
                                                                    monkeypatch: pytest.MonkeyPatch) -> None:
    url = f"postgresql://wfm:{DB_PASSWORD}@127.0.0.1:{closed_port}/wfm?sslmode=disable"
    outcome = run_cli(monkeypatch, {"WFM_DATABASE_URL": url, "WFM_LAKE_PATH": str(tmp_path / "lake")})
    assert outcome.exit_code == 1
    [line] = [line for line in outcome.output.splitlines() if "FAILED" in line]
    assert "warehouse" in line and f"postgresql://127.0.0.1:{closed_port}/wfm" in line and "connection refused" in line
    assert DB_PASSWORD not in outcome.output and "wfm:" not in outcome.output


def test_a_lake_that_cannot_be_written_fails(tmp_path) -> None:
    (tmp_path / "file").write_text("not a directory")
    lake = by_system(run_checks(load_settings({"WFM_LAKE_PATH": str(tmp_path / "file" / "lake")})))["lake"]
    assert lake.status == "FAILED" and lake.detail.startswith("not writable:")


def test_an_invalid_setting_is_reported_without_its_value(monkeypatch: pytest.MonkeyPatch) -> None:
    outcome = run_cli(monkeypatch, {"WFM_CC_URL": f"https://wfm:{CC_TOKEN}@cc.test/api"})
    assert outcome.exit_code == 1 and "configuration error" in outcome.output
    assert CC_TOKEN not in outcome.output


@pytest.mark.parametrize("url, shown", [
    ("https://wfm:secret@cc.test:8443/api?token=secret", "https://cc.test:8443/api"),
    ("postgresql://wfm@db.test/wfm", "postgresql://db.test/wfm"),
    ("postgresql://wfm:secret@/wfm?host=/run/pg&password=secret", "postgresql:///wfm?host=%2Frun%2Fpg"),
    ("http://[::1]:8080/hs/wfm", "http://[::1]:8080/hs/wfm"),
    ("s3://wfm-lake/prod", "s3://wfm-lake/prod"),
    ("/srv/wfm/lake", "/srv/wfm/lake"),
])
def test_public_target_drops_credentials_and_query(url: str, shown: str) -> None:
    assert public_target(url) == shown


@pytest.mark.slow
def test_a_reachable_database_answers_select_1(database_url: str, tmp_path, monkeypatch: pytest.MonkeyPatch) -> None:
    outcome = run_cli(monkeypatch, {"WFM_DATABASE_URL": database_url, "WFM_LAKE_PATH": str(tmp_path / "lake")})
    assert outcome.exit_code == 0, outcome.output
    [line] = [line for line in outcome.output.splitlines() if "warehouse" in line]
    assert "OK" in line and "select 1 (PostgreSQL" in line


@pytest.mark.slow
def test_database_flag_checks_the_embedded_postgres(postgres_server: str, tmp_path,
                                                   monkeypatch: pytest.MonkeyPatch) -> None:
    # the session's server stands in for the embedded one, which engine.database starts once per process
    started: list[str] = []
    monkeypatch.setattr("engine.database.embedded_database_url", lambda: started.append("yes") or postgres_server)
    without_flag = by_system(run_checks(load_settings({})))["warehouse"]
    assert without_flag.status == "SKIPPED" and started == []
    with_flag = by_system(run_checks(load_settings({}), database=True))["warehouse"]
    assert (with_flag.status, with_flag.target, started) == ("OK", "embedded", ["yes"])
