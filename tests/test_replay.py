"""The quarantine lifecycle: rows held by a too-strict rule land once the rule is fixed, exactly once;
concurrent replays never land a row twice; discarded rows stay on record and never land."""

from __future__ import annotations

import datetime as dt
import uuid
from concurrent.futures import ThreadPoolExecutor

import psycopg
import pyarrow.parquet as pq
import pytest
from typer.testing import CliRunner

from connectors import contact_center as cc
from connectors import streams
from connectors.records import Reject
from engine.landing import ledger, warehouse
from engine.landing.window import client_for
from engine.quality.replay import replay_stream
from engine.quality.suites import SUITES, suite, within
from engine.settings import resolve_settings
from flows.sync import sync_stream
from wfm.cli import app

from .conftest import SIM_START

FIRST, LAST = SIM_START, SIM_START + dt.timedelta(days=1)
STREAM = "agent_chat_work_time"
TOO_STRICT = suite(cc.AGENT_CHAT_WORK_TIME, within("work_time_ms", 0, 3_600_000))   # at most an hour of chats


def run(*args: str) -> tuple[int, str]:
    result = CliRunner().invoke(app, list(args), env={"COLUMNS": "200"})
    return result.exit_code, result.output


def count(database_url: str, query: str, *params) -> list[tuple]:
    with psycopg.connect(database_url) as conn:
        return conn.execute(query, params).fetchall()


@pytest.mark.usefixtures("prefect_harness")
def test_rows_held_by_a_too_strict_rule_land_after_the_fix_exactly_once(wfm_env, database_url, tmp_path,
                                                                         monkeypatch):
    honest = SUITES[STREAM]
    monkeypatch.setitem(SUITES, STREAM, TOO_STRICT)
    first = sync_stream(STREAM, FIRST, LAST, threshold=1.0)
    held = first["rows_quarantined"]
    assert held > 0 and first["status"] == "completed"
    monkeypatch.setitem(SUITES, STREAM, honest)                 # the threshold is fixed

    code, output = run("quarantine", "replay", "--stream", STREAM)
    assert code == 0, output
    assert f"{STREAM}: {held} of {held} held record(s) replayed ({held} new rows, 0 changed), 0 still held" in output
    [(total,)] = count(database_url, f"SELECT count(*) FROM wfm.{STREAM}")
    assert total == first["rows_inserted"] + held
    [(replay_run, inserted)] = count(database_url, "SELECT run_id, rows_inserted FROM wfm_meta.sync_runs "
                                                   "WHERE mode = 'replay'")
    assert inserted == held
    assert count(database_url, "SELECT status, count(*), min(resolved_by::text) FROM wfm_meta.quarantine "
                               "GROUP BY 1") == [("replayed", held, str(replay_run))]
    assert pq.read_table(tmp_path / "lake" / STREAM).num_rows == total

    code, output = run("quarantine", "replay", "--stream", STREAM)     # again: nothing is held any more
    assert code == 0 and "nothing held to replay" in output
    assert count(database_url, f"SELECT count(*) FROM wfm.{STREAM}") == [(total,)]
    assert count(database_url, "SELECT count(*) FROM wfm_meta.sync_runs WHERE mode = 'replay'") == [(1,)]


def quarantine_honest_rows(database_url: str) -> list[dict]:
    """Put one day of honest records in quarantine, as a too-strict rule would have; returns them."""
    client = client_for(resolve_settings().source(cc.SYSTEM))
    start = dt.datetime.combine(FIRST, dt.time(), dt.timezone.utc)
    window = streams.Window(start, start + dt.timedelta(days=1), tuple(cc.personnel_ids(client)["agents"]))
    records = streams.fetch(client, cc.AGENT_CHAT_WORK_TIME, window).records
    with psycopg.connect(database_url) as conn:
        ledger.ensure_meta(conn)
        warehouse.ensure_table(conn, cc.AGENT_CHAT_WORK_TIME)
        with conn.transaction():
            ledger.quarantine(conn, STREAM, uuid.uuid4(), window, [Reject("too strict", None, r) for r in records])
    return records


def test_concurrent_replays_land_each_row_once(wfm_env, database_url):
    records = quarantine_honest_rows(database_url)
    with ThreadPoolExecutor(2) as pool:
        reports = list(pool.map(lambda _: replay_stream(database_url, STREAM), range(2)))
    assert sorted(r.replayed for r in reports) == [0, len(records)]
    assert count(database_url, f"SELECT count(*) FROM wfm.{STREAM}") == [(len(records),)]
    assert count(database_url, "SELECT count(*) FROM wfm_meta.sync_runs WHERE mode = 'replay'") == [(1,)]


@pytest.mark.usefixtures("prefect_harness")
def test_discarded_rows_keep_their_reason_and_never_land(wfm_env, database_url):
    records = quarantine_honest_rows(database_url)
    [(first_id,)] = count(database_url, "SELECT min(id) FROM wfm_meta.quarantine")
    code, output = run("quarantine", "discard", "--reason", "vendor test data")
    assert code == 1 and "name the rows to discard" in output          # no rows named: nothing discarded
    code, output = run("quarantine", "discard", "--id", str(first_id), "--reason", "vendor test data")
    assert code == 0 and "1 row(s) discarded" in output
    code, output = run("quarantine", "show", str(first_id))
    assert code == 0 and "discarded" in output and "vendor test data" in output and '"agentId"' in output
    code, output = run("quarantine", "list", "--status", "discarded")
    assert code == 0 and STREAM in output and "held per stream: agent_chat_work_time" in output
    code, output = run("quarantine")                                  # no subcommand: the held rows
    assert code == 0 and "quarantine (held rows)" in output
    code, output = run("quarantine", "replay")
    assert code == 0 and f"{len(records) - 1} of {len(records) - 1} held record(s) replayed" in output
    assert count(database_url, f"SELECT count(*) FROM wfm.{STREAM}") == [(len(records) - 1,)]
    assert count(database_url, "SELECT status FROM wfm_meta.quarantine WHERE id = %s", first_id) == [("discarded",)]
