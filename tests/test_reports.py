"""Reports: pass rates per stream and rule from the ledger, `wfm quality`, the dashboard, the Data Docs."""

from __future__ import annotations

import datetime as dt
import uuid

import psycopg
from typer.testing import CliRunner

from engine.quality.reconcile import reconcile
from engine.quality.reports import pass_rates
from wfm.cli import app

from .conftest import SIM_START
from .landing import land

FIRST, LAST = SIM_START, SIM_START + dt.timedelta(days=1)
SINCE = dt.datetime(2026, 1, 1, tzinfo=dt.timezone.utc)


def test_pass_rates_the_quality_command_the_dashboard_and_the_data_docs(wfm_env, database_url, tmp_path):
    logins = land("agent_logins", FIRST, LAST)
    wfm_env.set_faults("corrupt=0.05")                    # some calls are quarantined
    wfm_env.set_break("calls_outside_logins", [LAST])     # and one day of calls fails reconciliation
    calls = land("agent_calls", FIRST, LAST, threshold=1.0)
    docs = tmp_path / "data" / "docs"
    reconcile(database_url, str(tmp_path / "lake"), docs, uuid.uuid4(), {"agent_logins": logins, "agent_calls": calls})

    with psycopg.connect(database_url) as conn:
        rates = {(r.stream, r.rule): r for r in pass_rates(conn, SINCE)}
        fetched, quarantined = conn.execute("""SELECT sum(rows_fetched), sum(rows_quarantined)
                                               FROM wfm_meta.sync_windows WHERE stream = 'agent_calls'""").fetchone()
    assert (rates["agent_calls", "window gate"].checked, rates["agent_calls", "window gate"].passed) == (2, 2)
    rows = rates["agent_calls", "rows"]
    assert (rows.checked, rows.checked - rows.passed) == (fetched, quarantined) and 0 < rows.rate < 1
    row_rules = {rule for stream, rule in rates if stream == "agent_calls"} - {"window gate", "rows",
                                                                               "calls_within_logins"}
    assert row_rules and all(rule.startswith(("parse ", "Expect")) for rule in row_rules)
    calls = rates["agent_calls", "calls_within_logins"]
    assert (calls.unit, calls.checked, calls.passed, calls.rate) == ("partitions", 2, 1, 0.5)

    result = CliRunner().invoke(app, ["quality", "--since", "2026-01-01"], env={"COLUMNS": "200"})
    assert result.exit_code == 0, result.output
    assert "calls_within_logins" in result.output and "50.0%" in result.output and "window gate" in result.output
    assert "partitions held back: 1" in result.output and str(docs / "quality.html") in result.output.replace("\n", "")
    page = (docs / "quality.html").read_text()
    assert page.count("<svg") == 2 and "<polyline" in page and "agent_logins" in page
    assert f"date={LAST}" in page and "calls_within_logins" in page and "href='index.html'" in page
    validation_pages = [p.read_text() for p in (docs / "validations").rglob("*agent_calls.html")]
    assert (docs / "index.html").exists() and validation_pages
    assert any("every contact an agent handled lies inside one of the agent" in p for p in validation_pages)
