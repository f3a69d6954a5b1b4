"""Retention: every ledger, audit and online table keeps its rows for a configurable time; `wfm prune`."""

from __future__ import annotations

import datetime as dt
import os
import uuid

import psycopg
import pytest
from typer.testing import CliRunner

from connectors import contact_center as cc
from engine import retention
from engine.landing import ledger, warehouse
from engine.push import webhooks
from wfm.cli import app

UTC = dt.timezone.utc
NOW = dt.datetime(2026, 12, 2, 12, tzinfo=UTC)
OLD, RECENT = NOW - dt.timedelta(days=800), NOW - dt.timedelta(days=1)


def seed(conn: psycopg.Connection) -> None:
    """Two of everything: one far older than any default retention, one from yesterday."""
    ledger.ensure_meta(conn)
    webhooks.ensure_tables(conn)
    for stream in (cc.ONLINE_AGENT_STATUS, cc.ONLINE_GROUP_LOAD):
        warehouse.ensure_table(conn, stream)
    conn.execute("""INSERT INTO wfm_meta.webhook_subscribers (id, url, events, secret_ciphertext)
                    VALUES (1, 'http://127.0.0.1:9/', '{sync.failed}', 'x')""")
    for at in (OLD, RECENT):
        conn.execute("""INSERT INTO wfm.online_agent_status (source, snapshot_at, agent_id, state_code, _run_id,
                        _extracted_at) VALUES ('default', %s, '1', 'Work', gen_random_uuid(), %s)""", (at, at))
        for status in ("completed", "running"):
            run = uuid.uuid4()
            conn.execute("""INSERT INTO wfm_meta.sync_runs (run_id, stream, source, mode, started_at, status)
                            VALUES (%s, 'agent_logins', 'default', 'incremental', %s, %s)""", (run, at, status))
            conn.execute("""INSERT INTO wfm_meta.sync_windows (run_id, stream, source, window_start, window_end,
                            ids_hash, id_count) VALUES (%s, 'agent_logins', 'default', %s, %s, '-', 0)""", (run, at, at))
        for status in ("held", "replayed"):
            conn.execute("""INSERT INTO wfm_meta.quarantine (stream, source, run_id, reason, record, record_hash,
                            quarantined_at, status)
                            VALUES ('agent_logins', 'default', gen_random_uuid(), 'bad', '{}', %s, %s, %s)
                         """, (f"{at}{status}", at, status))
        conn.execute("""INSERT INTO wfm_meta.check_results (run_id, check_name, severity, table_name, partition,
                        success, checked_at) VALUES (gen_random_uuid(), 'rule', 'error', 't', 'p', true, %s)""", (at,))
        for state in ("delivered", "pending"):
            event = uuid.uuid4()
            conn.execute("""INSERT INTO wfm_meta.webhook_events (event_id, event_type, body, created_at)
                            VALUES (%s, 'sync.failed', '{}', %s)""", (event, at))
            conn.execute("""INSERT INTO wfm_meta.webhook_outbox (event_id, subscriber_id, state, created_at)
                            VALUES (%s, 1, %s, %s)""", (event, state, at))
            conn.execute("""INSERT INTO wfm_meta.webhook_deliveries (event_id, subscriber_id, attempt, outcome,
                            attempted_at) VALUES (%s, 1, 1, 'retrying', %s)""", (event, at))


def count(conn: psycopg.Connection, table: str, where: str = "true") -> int:
    return conn.execute(f"SELECT count(*) FROM {table} WHERE {where}").fetchone()[0]


def test_prune_removes_only_what_is_past_its_retention(database_url, tmp_path):
    lake_path = tmp_path / "lake"
    for day in (OLD.date(), RECENT.date()):
        (lake_path / "online_agent_status" / f"date={day}").mkdir(parents=True)
        (lake_path / "online_agent_status" / f"date={day}" / "part-0.parquet").write_bytes(b"")
    validations = tmp_path / "data" / "gx" / "validations" / "reconcile"
    validations.mkdir(parents=True)
    for name, at in (("old.json", OLD), ("new.json", RECENT)):
        (validations / name).write_text("{}")
        os.utime(validations / name, (at.timestamp(), at.timestamp()))
    with psycopg.connect(database_url, autocommit=True) as conn:
        seed(conn)
        dry = {p.policy: p.rows for p in retention.prune(database_url, tmp_path / "data", str(lake_path),
                                                        dry_run=True, now=NOW)}
        assert count(conn, "wfm.online_agent_status") == 2                      # a dry run deletes nothing
        done = {p.policy: p.rows for p in retention.prune(database_url, tmp_path / "data", str(lake_path), now=NOW)}
        assert done == dry
        assert done["online_agent_status"] == 1 and done["sync_runs"] == 1 and done["gx_validations"] == 1
        assert count(conn, "wfm.online_agent_status", "snapshot_at = %s" % f"'{OLD.isoformat()}'") == 0
        assert count(conn, "wfm.online_agent_status") == 1
        assert count(conn, "wfm_meta.sync_runs") == 3                           # a running run is never pruned
        assert count(conn, "wfm_meta.sync_windows") == 3                        # windows go with their run
        assert done["quarantine"] == 1 and done["quarantine_held"] == 1         # held rows: 730 days, then go
        assert count(conn, "wfm_meta.quarantine", "status = 'held'") == 1 and count(conn, "wfm_meta.quarantine") == 2
        assert count(conn, "wfm_meta.check_results") == 1
        assert count(conn, "wfm_meta.webhook_events") == 3                      # an undelivered event stays
        assert count(conn, "wfm_meta.webhook_outbox", "state = 'pending'") == 2
        two_days_before = (NOW - dt.timedelta(days=2)).isoformat()              # the test's clock, not the wall's
        assert count(conn, "wfm_meta.webhook_deliveries", f"attempted_at > '{two_days_before}'") == 2
    assert sorted(p.name for p in (lake_path / "online_agent_status").iterdir()) == [f"date={RECENT.date()}"]
    assert [p.name for p in validations.iterdir()] == ["new.json"]


def test_retention_is_configurable_and_zero_keeps_forever(database_url, tmp_path, monkeypatch):
    monkeypatch.setenv("WFM_RETENTION", "online_agent_status=0, sync_runs=2000d")
    with psycopg.connect(database_url, autocommit=True) as conn:
        seed(conn)
        done = {p.policy: p for p in retention.prune(database_url, tmp_path, str(tmp_path / "lake"), now=NOW)}
        assert done["online_agent_status"].note == "kept forever" and count(conn, "wfm.online_agent_status") == 2
        assert done["sync_runs"].rows == 0 and count(conn, "wfm_meta.sync_runs") == 4
        assert done["check_results"].rows == 1
    monkeypatch.setenv("WFM_RETENTION", "online_agent_statuz=3")
    with pytest.raises(ValueError, match="unknown table 'online_agent_statuz'"):
        retention.days_of()
    monkeypatch.setenv("WFM_RETENTION", "sync_runs=a week")
    with pytest.raises(ValueError, match="is not name=days"):
        retention.days_of()


def test_wfm_prune_prints_what_went_and_refuses_an_unknown_table(database_url, monkeypatch):
    monkeypatch.setenv("WFM_DATABASE_URL", database_url)
    with psycopg.connect(database_url, autocommit=True) as conn:
        seed(conn)
    runner = CliRunner()
    shown = runner.invoke(app, ["prune", "--dry-run", "--table", "check_results"], env={"COLUMNS": "200"})
    assert shown.exit_code == 0, shown.output
    assert "would prune" in shown.output and "check_results" in shown.output and "sync_runs" not in shown.output
    pruned = runner.invoke(app, ["prune"], env={"COLUMNS": "200"})
    assert pruned.exit_code == 0 and "online_group_load" in pruned.output
    with psycopg.connect(database_url) as conn:
        assert count(conn, "wfm_meta.check_results") == 1
    bad = runner.invoke(app, ["prune", "--table", "nope"])
    assert bad.exit_code == 1 and "unknown retention table(s) nope" in bad.output and "Traceback" not in bad.output


@pytest.mark.usefixtures("prefect_harness")
def test_the_prune_flow_runs_every_policy(database_url, monkeypatch, tmp_path):
    from flows.maintenance import prune

    monkeypatch.setenv("WFM_DATABASE_URL", database_url)
    monkeypatch.setenv("WFM_LAKE_PATH", str(tmp_path / "lake"))
    with psycopg.connect(database_url, autocommit=True) as conn:
        seed(conn)
    result = {r["policy"]: r["rows"] for r in prune()}
    assert set(result) == {p.name for p in retention.POLICIES} and result["check_results"] == 1
