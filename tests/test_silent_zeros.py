"""No silent zeros: a wrong base path fails loudly, and a stream that goes empty holds its watermark."""

from __future__ import annotations

import datetime as dt

import psycopg
import pytest
from rich.console import Console

from blocks import load_settings
from connectors.errors import SourceRejected
from engine.landing import ledger
from engine.push import webhooks
from flows.sync import SyncFailed, sync_stream
from wfm.check import run_checks
from wfm.commands import show_runs

from .test_webhooks import Receiver

pytestmark = pytest.mark.usefixtures("prefect_harness")
UTC = dt.timezone.utc


def watermark(database_url: str, stream: str) -> dt.datetime | None:
    with psycopg.connect(database_url) as conn:
        return ledger.watermark(conn, stream)


def test_a_wrong_base_path_fails_the_check_and_the_sync_and_keeps_the_watermark(live_env, database_url,
                                                                                  monkeypatch):
    sync_stream("agent_logins")
    before = watermark(database_url, "agent_logins")
    assert before is not None
    monkeypatch.setenv("WFM_CC_URL", live_env.url + "/api/v2")        # answers 404 to everything
    check = run_checks(load_settings(), timeout=2)[0]
    assert check.status == "FAILED" and "HTTP 404" in check.detail and "base URL" in check.detail
    for stream in ("agent_logins", "cc_agents"):
        with pytest.raises((SourceRejected, SyncFailed)) as failed:
            sync_stream(stream)
        message = str(failed.value)
        assert "\n" not in message and "GET /personnel" in message and "404" in message, message
    assert watermark(database_url, "agent_logins") == before
    with psycopg.connect(database_url) as conn:
        assert conn.execute("SELECT count(*) FROM wfm.cc_agents").fetchone()[0] == 0


def test_a_stream_that_goes_empty_is_an_anomaly_and_holds_the_watermark(live_env, database_url, monkeypatch):
    monkeypatch.setenv("WFM_ANOMALY_MIN_ROWS", "3")    # a small simulator: a dozen logins a day
    today = dt.datetime.now(UTC).date()
    sync_stream("agent_logins", today - dt.timedelta(days=3), today - dt.timedelta(days=1))   # its recent past
    held_at = dt.datetime.combine(today, dt.time(1), UTC)
    with psycopg.connect(database_url) as conn:   # as if an incremental run had landed up to 01:00 today
        conn.execute("UPDATE wfm_meta.watermarks SET value = %s WHERE stream = 'agent_logins'", (held_at,))
    receiver = Receiver()
    try:
        with psycopg.connect(database_url, autocommit=True) as conn:
            webhooks.add_subscriber(conn, receiver.url, ["sync.anomaly"], secret="whsec_test-secret")
        live_env.set_faults("empty=1,path=/historic/agentLoginData")   # the source stops serving it
        run = sync_stream("agent_logins")
        assert run["status"] == "completed" and run["windows_anomaly"] == 1
        assert watermark(database_url, "agent_logins") == held_at
        with psycopg.connect(database_url) as conn:
            kind, start = conn.execute("SELECT kind, window_start FROM wfm_meta.anomalies").fetchone()
        assert kind == "empty" and start == dt.datetime.combine(today - dt.timedelta(days=1), dt.time(), UTC)
        events = [e for e in receiver.events() if e["type"] == "sync.anomaly"]
        assert len(events) == 1 and events[0]["data"]["anomalies"][0]["kind"] == "empty"
    finally:
        receiver.close()
    console = Console(record=True, width=200)
    show_runs(console, 5, "agent_logins")
    assert "anomaly: agent_logins window" in console.export_text()

    live_env.set_faults("")                                         # the data is back
    again = sync_stream("agent_logins")
    assert again["windows_anomaly"] == 0 and watermark(database_url, "agent_logins") > held_at


def test_an_anomaly_is_recorded_for_its_connection(database_url):
    import uuid

    from connectors.streams import Window
    from engine import schema
    from engine.landing import anomaly

    start = dt.datetime(2026, 11, 10, tzinfo=UTC)
    window = Window(start, start + dt.timedelta(days=1))
    run_id = uuid.uuid4()
    with psycopg.connect(database_url, autocommit=True) as conn:
        schema.migrate(conn)
        anomaly.record(conn, run_id, "agent_logins", window, anomaly.Anomaly("empty", 0, 40.0, "m"), source="cc-north")
    assert [(a["stream"], a["source"], a["kind"]) for a in anomaly.of_run(database_url, run_id)] == [
        ("agent_logins", "cc-north", "empty")]
