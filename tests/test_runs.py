"""The one run lifecycle (`engine/landing/runs.py`): a run closes with its webhook events in one
transaction, a body that raises closes it `failed`, and every kind of run — an import too — is
told to subscribers and gets its artifact (`flows/runs.py`)."""

from __future__ import annotations

import datetime as dt

import orjson
import psycopg
import pytest

from engine.landing import ledger, runs
from engine.push import webhooks

from .landing import latest_artifact
from .test_bulk_import import MAPPING, ROWS, plan_file
from .test_webhooks import Receiver

UTC = dt.timezone.utc
NOW = dt.datetime(2026, 11, 10, 12, tzinfo=UTC)


def events(database_url: str) -> list[dict]:
    with psycopg.connect(database_url) as conn:
        return [body if isinstance(body, dict) else orjson.loads(body) for (body,) in conn.execute(
            "SELECT body FROM wfm_meta.webhook_events ORDER BY created_at, event_type")]


@pytest.fixture
def subscribed(database_url):
    receiver = Receiver()
    with psycopg.connect(database_url, autocommit=True) as conn:
        ledger.ensure_meta(conn)
        webhooks.add_subscriber(conn, receiver.url, ["sync.completed", "sync.failed"], receiver.secret)
    yield receiver
    receiver.close()


def open_one(database_url: str, stream: str = "agent_calls", source: str = "cc-north") -> runs.Run:
    with psycopg.connect(database_url, autocommit=True) as conn:
        return runs.open_run(conn, database_url, stream, "backfill", NOW, NOW, (), NOW, source=source)


def status_of(database_url: str, run: runs.Run) -> tuple:
    with psycopg.connect(database_url) as conn:
        return conn.execute("SELECT status, error, finished_at IS NOT NULL FROM wfm_meta.sync_runs WHERE run_id = %s",
                            (run.run_id,)).fetchone()


def test_a_body_that_raises_closes_its_run_failed_with_the_first_line_and_tells_subscribers(database_url,
                                                                                            subscribed):
    run = open_one(database_url)
    assert status_of(database_url, run)[1:] == (None, False)                   # open: not finished
    with pytest.raises(RuntimeError, match="source fell over"):
        with run:
            raise RuntimeError("source fell over\nTraceback lines nobody should store")
    assert status_of(database_url, run) == ("failed", "source fell over", True)
    told = events(database_url)
    assert [(e["type"], e["data"]["run_id"], e["data"]["error"]) for e in told] == \
        [("sync.failed", str(run.run_id), "source fell over")]


def test_a_closed_run_keeps_its_status_when_something_after_the_close_raises(database_url, subscribed):
    run = open_one(database_url)
    with pytest.raises(OSError):
        with run:
            row = run.close("completed")
            raise OSError("the lake's disk is full")
    assert row["status"] == "completed" and status_of(database_url, run) == ("completed", None, True)
    assert [e["type"] for e in events(database_url)] == ["sync.completed"]


def test_the_webhook_event_commits_with_the_close_or_not_at_all(database_url, subscribed):
    run = open_one(database_url)
    with psycopg.connect(database_url) as conn:
        with pytest.raises(ZeroDivisionError):
            with conn.transaction():
                run.close("completed", conn=conn)
                raise ZeroDivisionError       # the closing transaction rolls back: neither row nor event
    assert status_of(database_url, run)[2] is False and events(database_url) == []


@pytest.mark.usefixtures("prefect_harness")
def test_an_import_is_told_to_subscribers_and_gets_its_artifact(database_url, subscribed, tmp_path, monkeypatch):
    from flows.bulk import bulk_import

    monkeypatch.setenv("WFM_DATABASE_URL", database_url)
    monkeypatch.setenv("WFM_LAKE_PATH", str(tmp_path / "lake"))
    run = bulk_import(plan_file(tmp_path, ROWS[:3]), "planned_shifts", MAPPING)
    assert run["status"] == "completed" and run["windows_planned"] == 1
    told = [e for e in events(database_url) if e["data"]["run_id"] == str(run["run_id"])]
    assert [(e["type"], e["data"]["mode"], e["data"]["rows_inserted"]) for e in told] == \
        [("sync.completed", "import", 2)]
    assert [r["valid"] for r in subscribed.requests] == [True]                      # delivered after the run
    note = latest_artifact("import-planned-shifts-default")
    assert "### Import into `planned_shifts` from `default`" in note and "| windows_planned | 1 |" in note
    assert "#### The file" in note and "plan.csv" in note
