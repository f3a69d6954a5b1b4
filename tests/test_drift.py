"""Schema drift: a new field is recorded and kept in `_extra`; a renamed or retyped field holds its
window, names the field, and fails that stream only; a mapping fix and a replay land the rows."""

from __future__ import annotations

import dataclasses

import psycopg
import pyarrow.parquet as pq
import pytest

from connectors import contact_center as cc
from connectors.records import Field, flatten, to_arrow
from engine import catalog
from engine.landing import drift, warehouse
from flows.replay import replay_quarantine
from flows.sync import SyncFailed, sync

from .conftest import SIM_START
from .landing import latest_artifact

LOGIN_FIELDS = (Field("agent_id", "agentId", parent=True), Field("login_at", "loginDate", "timestamp"),
                Field("duration_ms", "duration", "int"))


def parse(payload, fields=LOGIN_FIELDS, explode="logins"):
    columns, records, rejects = flatten(payload, fields, explode=explode)
    return to_arrow(columns, records, fields, rejects)


def login(**changes):
    return {"loginDate": "2026-11-09T08:00:00Z", "duration": 1000, **changes}


def test_undeclared_keys_are_kept_per_row_and_annotations_and_callable_sources_are_not():
    parsed = parse([{"agentId": "1", "team": "A", "logins": [login(source="SSO"), login(_row=7), login(duration="x")]}])
    assert parsed.extra == [{"source": "SSO", "team": "A"}, {"team": "A"}]   # the bad row's extra left with it
    assert parsed.rejects[0].extra == {"team": "A"}
    agents = parse([{"id": "1", "name": "Ann", "agentGroups": [{"groupId": "1"}]}], cc.CC_AGENTS.fields, None)
    assert agents.extra == [None]                 # agentGroups is read by a callable source


def test_a_rename_is_a_missing_field_plus_a_new_one_and_partial_damage_is_not_drift():
    renamed = drift.inspect(cc.AGENT_LOGINS, parse([{"agentId": "1", "logins": [
        {"logonDate": "2026-11-09T08:00:00Z", "duration": 1}] * 3}]))
    assert [(c.field, c.kind) for c in renamed.changes] == [("loginDate", "missing"), ("logonDate", "new")]
    assert renamed.message == ("schema drift: required field loginDate is missing from every record; "
                               "new field logonDate")
    retyped = drift.inspect(cc.AGENT_LOGINS, parse([{"agentId": "1", "logins": [login(duration={"ms": 1})] * 2}]))
    assert [(c.field, c.kind) for c in retyped.breaking] == [("duration", "type_changed")]
    partial = drift.inspect(cc.AGENT_LOGINS, parse([{"agentId": "1", "logins": [login(), {"duration": 1}]}]))
    assert partial.changes == ()


def test_an_older_table_gets_the_extra_column(database_url):
    with psycopg.connect(database_url, autocommit=True) as conn:
        conn.execute("CREATE SCHEMA wfm; CREATE TABLE wfm.agent_logins (agent_id text, login_at timestamptz, "
                     "logout_at timestamptz, duration_ms bigint, _run_id uuid, _extracted_at timestamptz, "
                     "PRIMARY KEY (agent_id, login_at))")
        warehouse.ensure_table(conn, cc.AGENT_LOGINS)
        assert conn.execute("""SELECT data_type FROM information_schema.columns WHERE table_name = 'agent_logins'
                               AND column_name = '_extra'""").fetchone() == ("jsonb",)


@pytest.mark.usefixtures("prefect_harness")
def test_a_drifted_source_is_reported_keeps_the_new_field_and_holds_the_renamed_one(
        wfm_env, database_url, tmp_path, monkeypatch):
    wfm_env.set_break("schema_drift")   # logins gain loginSource; calls rename endCall to callEnd, gain callId
    with pytest.raises(SyncFailed) as failed:
        sync(["agent_logins", "agent_calls"], SIM_START, SIM_START)
    message = str(failed.value)
    assert "agent_calls" in message and "required field endCall is missing from every record" in message
    assert "agent_logins" not in message
    with psycopg.connect(database_url) as conn:
        drifted = set(conn.execute("SELECT stream, field, kind FROM wfm_meta.schema_drift").fetchall())
        extras = conn.execute("SELECT DISTINCT _extra FROM wfm.agent_logins").fetchall()
        calls = conn.execute("SELECT count(*) FROM wfm.agent_calls").fetchone()[0]
        held = conn.execute("""SELECT count(*), min(reason) FROM wfm_meta.quarantine
                               WHERE stream = 'agent_calls' AND status = 'held'""").fetchone()
        windows = conn.execute("""SELECT DISTINCT status FROM wfm_meta.sync_windows
                                  WHERE stream = 'agent_calls'""").fetchall()
    assert drifted == {("agent_logins", "loginSource", "new"), ("agent_calls", "endCall", "missing"),
                       ("agent_calls", "callEnd", "new"), ("agent_calls", "callId", "new")}
    assert extras == [({"loginSource": "SSO"},)]
    lake = pq.read_table(tmp_path / "lake" / "agent_logins").column("_extra").to_pylist()
    assert set(lake) == {'{"loginSource": "SSO"}'}
    assert calls == 0 and windows == [("held",)] and held[0] > 0
    assert held[1].startswith("schema drift: required field endCall is missing")
    note = latest_artifact("drift-agent-calls")
    assert "| endCall | missing | this run |" in note and "| callId | new | this run |" in note

    # the mapping learns the new spelling; the held rows replay and land
    fields = tuple(Field("ended_at", ("endCall", "callEnd"), "timestamp") if f.column == "ended_at" else f
                   for f in cc.AGENT_CALLS.fields)
    fixed = dataclasses.replace(cc.AGENT_CALLS, fields=fields)
    monkeypatch.setitem(catalog.STREAMS, "agent_calls", fixed)
    monkeypatch.setitem(catalog.IMPORTABLE, "agent_calls", fixed)
    [summary] = replay_quarantine(stream="agent_calls")
    assert summary["replayed"] == held[0] and summary["still_held"] == 0
    with psycopg.connect(database_url) as conn:
        landed, with_id = conn.execute("SELECT count(*), count(_extra -> 'callId') FROM wfm.agent_calls").fetchone()
    assert landed == with_id > 0
    assert {p.parent.name for p in (tmp_path / "lake" / "agent_calls").glob("source=default/*/part-0.parquet")} >= {
        f"date={SIM_START}"}
