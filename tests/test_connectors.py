"""Connectors against the simulator over real loopback HTTP: every endpoint, every fault kind, auth."""

from __future__ import annotations

import dataclasses
import datetime as dt

import httpx
import pytest

from connectors import contact_center as cc
from connectors import onec, streams
from connectors.errors import AuthenticationFailed, SourceRejected, SourceUnavailable
from connectors.http import CallStats, RetryPolicy
from connectors.settings import SourceSettings
from connectors.simulator import AuthConfig, ServerConfig, start_simulator
from connectors.simulator.world import SimConfig

from .conftest import SIM_START, sim_clock

UTC = dt.timezone.utc
DAY1 = dt.datetime.combine(SIM_START + dt.timedelta(days=1), dt.time(), UTC)
FAST = RetryPolicy(attempts=4, initial_wait=0.01, max_wait=0.05, jitter=0.01, max_retry_after=1.5)


def cc_settings(sim, **kw) -> SourceSettings:
    return SourceSettings(cc.SYSTEM, sim.cc_url, retry=kw.pop("retry", FAST), timeout=kw.pop("timeout", 5.0), **kw)


def onec_settings(sim, password: str = "wfm", **kw) -> SourceSettings:
    return SourceSettings(onec.SYSTEM, sim.onec_url, "basic", username="wfm", password=password,
                          retry=kw.pop("retry", FAST), timeout=kw.pop("timeout", 5.0), **kw)


def fetch_day(client, stream, ids, day=DAY1):
    window = streams.windows(stream, day, day + dt.timedelta(days=1), ids)[0]
    return streams.fetch(client, stream, window)


@pytest.fixture
def cc_client(simulator):
    with cc_settings(simulator).client() as client:
        yield client


@pytest.fixture
def onec_client(simulator):
    with onec_settings(simulator).client() as client:
        yield client


def test_every_contact_center_endpoint_parses_without_rejects(cc_client):
    ids = cc.personnel_ids(cc_client)
    assert ids["agents"] and ids["groups"]
    for stream in cc.STREAMS:
        if stream.name == "online_agent_status":
            continue  # covered below at a clock instant when agents are logged in
        parsed = fetch_day(cc_client, stream, ids.get(stream.ids or "", []))
        assert parsed.rejects == [], stream.name
        assert parsed.table.num_rows > 0, stream.name
        assert parsed.table.schema == stream.schema, stream.name


def test_online_agent_status_matches_the_status_timeline(simulator, cc_client):
    ids = cc.personnel_ids(cc_client)
    statuses = fetch_day(cc_client, cc.AGENT_STATUS_INTERVALS, ids["agents"]).table.to_pylist()
    busy = next(s for s in statuses if s["ended_at"] - s["started_at"] > dt.timedelta(minutes=2))
    instant = busy["started_at"] + (busy["ended_at"] - busy["started_at"]) / 2
    simulator.set_clock(instant)
    online = streams.fetch(cc_client, cc.ONLINE_AGENT_STATUS, streams.Window(instant, instant)).table.to_pylist()
    mine = [o for o in online if o["agent_id"] == busy["agent_id"]]
    assert mine and mine[0]["state_code"] == busy["state_code"] and mine[0]["started_at"] == busy["started_at"]
    assert all(o["snapshot_at"] == instant for o in online)


def test_every_onec_endpoint_parses(onec_client):
    month = streams.Window(dt.datetime(2026, 11, 1, tzinfo=UTC), dt.datetime(2026, 12, 1, tzinfo=UTC))
    employees = streams.fetch(onec_client, onec.EMPLOYEES, month).table
    ids = tuple(employees.column("employee_id").to_pylist())
    norms = {e: [(w, d.isoformat())] for e, w, d in zip(ids, employees.column("norm_week").to_pylist(),
                                                        employees.column("norm_week_change_date").to_pylist())}
    for stream in onec.STREAMS:
        window = streams.Window(month.start, month.end, ids if stream.ids else (), {"norms": norms, "mode": "month"})
        parsed = streams.fetch(onec_client, stream, window)
        assert parsed.rejects == [] and parsed.table.num_rows > 0, stream.name
        assert parsed.table.schema == stream.schema, stream.name


def test_404_is_an_empty_result(cc_client):
    before = dt.datetime(2020, 1, 1, tzinfo=UTC)
    parsed = streams.fetch(cc_client, cc.AGENT_LOGINS, streams.Window(before, before + dt.timedelta(days=1), ("1000",)))
    assert parsed.table.num_rows == 0 and parsed.rejects == []


def test_a_status_crossing_a_window_edge_comes_back_from_both_windows(cc_client):
    ids = cc.personnel_ids(cc_client)["agents"]
    found = 0
    for offset in range(6):
        day = DAY1 - dt.timedelta(days=1) + dt.timedelta(days=offset)
        edge = day + dt.timedelta(days=1)
        first = fetch_day(cc_client, cc.AGENT_STATUS_INTERVALS, ids, day).table.to_pylist()
        second = fetch_day(cc_client, cc.AGENT_STATUS_INTERVALS, ids, edge).table.to_pylist()
        straddling = [s for s in first if s["started_at"] < edge < s["ended_at"]]
        assert all(s in second for s in straddling)
        found += len(straddling)
    assert found, "the simulator should produce statuses that cross midnight"


def test_bad_parameters_are_a_one_line_fatal_error_naming_the_endpoint(cc_client):
    too_many = tuple(str(i) for i in range(101))
    window = streams.Window(DAY1, DAY1 + dt.timedelta(days=1), too_many)
    unbounded = dataclasses.replace(cc.AGENT_LOGINS, max_ids=1000)   # a stream that forgot the limit
    with pytest.raises(SourceRejected) as caught:
        streams.fetch(cc_client, unbounded, window)
    message = str(caught.value)
    assert "GET /historic/agentLoginData" in message and "HTTP 400" in message and "\n" not in message
    assert caught.value.status == 400


def test_id_batches_keep_urls_short():
    ids = [f"agent-{i:05d}-{'x' * 20}" for i in range(500)]
    batches = list(streams.id_batches(ids))
    assert [i for b in batches for i in b] == ids
    assert all(len(b) <= 100 and len(",".join(b)) <= streams.MAX_ID_CHARS for b in batches)


def test_a_window_of_many_ids_is_fetched_in_requests_of_at_most_100(cc_client):
    ids = [str(i) for i in range(250)]
    window = streams.windows(cc.AGENT_LOGINS, DAY1, DAY1 + dt.timedelta(days=1), ids)[0]
    parts = streams.requests_of(cc.AGENT_LOGINS, window)
    assert [len(p.ids) for p in parts] == [100, 100, 50]
    assert [i for p in parts for i in p.ids] == sorted(ids)
    stats = CallStats()
    whole = streams.fetch(cc_client, cc.AGENT_LOGINS, window, stats)
    one_by_one = [streams.fetch(cc_client, cc.AGENT_LOGINS, p) for p in parts]
    assert stats.snapshot()["calls"] == 3
    assert whole.table.to_pylist() == [row for p in one_by_one for row in p.table.to_pylist()]
    assert len(whole.records) == len(whole.extra) == whole.table.num_rows


@pytest.mark.parametrize("kind", ["500", "502", "503", "504", "429", "timeout", "drop", "truncate"])
def test_each_fault_kind_is_survived_within_the_cap(simulator, kind):
    ids = cc.personnel_ids(cc_settings(simulator).client())["agents"]
    with cc_settings(simulator).client() as clean:
        expected = fetch_day(clean, cc.AGENT_CALLS, ids).table
    # every other request faults: the retry policy must absorb it
    simulator.set_faults(f"{kind}=0.5,retry_after=1,slow_seconds=2")
    with cc_settings(simulator, timeout=0.5, retry=RetryPolicy(attempts=10, initial_wait=0.01, max_wait=0.05,
                                                              jitter=0.01, max_retry_after=1.5)).client() as client:
        for _ in range(3):
            got = fetch_day(client, cc.AGENT_CALLS, ids).table
            assert got.equals(expected)
        assert client.stats.retries > 0
        if kind == "429":
            assert client.stats.throttled > 0
    assert sum(simulator.stats()["faults"].values()) > 0


@pytest.mark.parametrize("kind", ["503", "drop", "truncate", "timeout"])
def test_past_the_cap_a_one_line_error_names_endpoint_and_cause(simulator, kind):
    simulator.set_faults(f"{kind}=1.0,slow_seconds=2")
    with cc_settings(simulator, timeout=0.3, retry=RetryPolicy(attempts=3, initial_wait=0.01, max_wait=0.02,
                                                              jitter=0.0)).client() as client:
        with pytest.raises(SourceUnavailable) as caught:
            fetch_day(client, cc.AGENT_LOGINS, ["1000"])
    message = str(caught.value)
    assert "contact center GET /historic/agentLoginData" in message and "gave up after 3 attempts" in message
    assert "\n" not in message
    if kind == "503":
        assert "HTTP 503" in message


def test_retry_after_is_a_floor(simulator):
    simulator.set_faults("429=1.0,retry_after=1")
    policy = RetryPolicy(attempts=2, initial_wait=0.0, max_wait=0.01, jitter=0.0, max_retry_after=5)
    with cc_settings(simulator, retry=policy).client() as client:
        started = dt.datetime.now()
        with pytest.raises(SourceUnavailable, match="HTTP 429"):
            client.request_json("GET", "/personnel")
        assert (dt.datetime.now() - started).total_seconds() >= 0.9


def test_onec_500_is_retried_and_then_reported(simulator):
    simulator.set_faults("500=1.0")
    with onec_settings(simulator, retry=RetryPolicy(attempts=2, initial_wait=0.01, jitter=0.0)).client() as client:
        with pytest.raises(SourceUnavailable, match=r"1C:ZUP GET /agents .*HTTP 500"):
            streams.fetch(client, onec.DEPARTMENTS, streams.Window(DAY1, DAY1 + dt.timedelta(days=1)))


@pytest.mark.parametrize("variant", ["parent_department_underscore", "agent_id_caps", "numbers_as_strings",
                                     "decimal_comma"])
def test_onec_field_name_and_number_variants_parse_the_same(variant):
    month = streams.Window(dt.datetime(2026, 11, 1, tzinfo=UTC), dt.datetime(2026, 12, 1, tzinfo=UTC))
    tables = []
    for variants in (frozenset(), frozenset({variant})):
        config = ServerConfig(sim=SimConfig(seed=7, agents=12, start=SIM_START, days=7), onec_variants=variants)
        with start_simulator(config) as sim, onec_settings(sim).client() as client:
            sim.set_clock(sim_clock())
            tables.append({s.name: streams.fetch(client, s, month) for s in (onec.DEPARTMENTS, onec.EMPLOYEES,
                                                                              onec.VACATION_BALANCES)})
    for name, parsed in tables[1].items():
        assert parsed.rejects == [], name
        assert parsed.table.equals(tables[0][name].table), name


def test_wrong_basic_password_is_an_authentication_error(simulator):
    with onec_settings(simulator, password="wrong").client() as client:
        with pytest.raises(AuthenticationFailed, match="1C:ZUP .*authentication failed"):
            client.request_json("GET", "/agents/2026-11-01/2026-11-01")


@pytest.mark.parametrize("kind", ["bearer", "apikey", "basic"])
def test_static_auth_styles(kind):
    auth = AuthConfig(kind, username="u", password="p", token="t0k")
    config = ServerConfig(sim=SimConfig(seed=1, agents=4, start=SIM_START, days=2), cc_auth=auth)
    with start_simulator(config) as sim:
        good = cc_settings(sim, auth=kind, username="u", password="p", token="t0k")
        with good.client() as client:
            assert cc.personnel_ids(client)["agents"]
        bad = cc_settings(sim, auth=kind, username="u", password="x", token="nope")
        with bad.client() as client, pytest.raises(AuthenticationFailed, match="contact center"):
            cc.personnel_ids(client)


def test_oauth2_token_is_refreshed_on_expiry_and_once_on_401():
    auth = AuthConfig("oauth2", client_id="wfm", client_secret="s3cret", token_ttl=1.0)
    config = ServerConfig(sim=SimConfig(seed=1, agents=4, start=SIM_START, days=2), cc_auth=auth)
    with start_simulator(config) as sim:
        settings = cc_settings(sim, auth="oauth2", client_id="wfm", client_secret="s3cret",
                               token_url=sim.cc_url + "/oauth/token")
        with settings.client() as client:
            oauth = client._http.auth
            cc.personnel_ids(client)
            assert oauth.refreshes == 1
            import time

            time.sleep(1.1)                       # past the lifetime: refreshed before the call
            cc.personnel_ids(client)
            assert oauth.refreshes == 2
            sim.revoke_tokens()                   # a token we believe valid gets 401: refresh once, retry
            cc.personnel_ids(client)
            assert oauth.refreshes == 3
        wrong = cc_settings(sim, auth="oauth2", client_id="wfm", client_secret="nope",
                            token_url=sim.cc_url + "/oauth/token")
        with wrong.client() as client, pytest.raises(AuthenticationFailed, match="token endpoint refused"):
            cc.personnel_ids(client)


def test_2018_norm_hours_reference_table_through_connector_and_simulator(onec_client):
    cases = [("2018-01-01", "2018-12-31", 40, 1970), ("2018-01-01", "2018-12-31", 36, 1772.4),
             ("2018-01-01", "2018-12-31", 30, 1476), ("2018-04-01", "2018-12-31", 40, 1524),
             ("2018-04-01", "2018-12-31", 36, 1371.2), ("2018-06-29", "2018-12-31", 40, 1047),
             ("2018-06-29", "2018-12-31", 36, 942.2), ("2018-01-03", "2018-05-21", 40, 708),
             ("2018-01-03", "2018-05-21", 36, 636.8)]
    for first, last, week, expected in cases:
        body = {"startDate": first, "endDate": last, "calculationMode": "year",
                "AR_agents": [{"agentId": "not-an-employee", "AR_norms": [{"normWeek": week, "changeDate": first}]}]}
        rows = onec_client.request_json("POST", "/getNormHours", json=body)
        assert len(rows) == 1 and float(str(rows[0]["normHours"]).replace(",", ".")) == pytest.approx(expected), \
            (first, last, week)


def test_connector_parses_typed_values_and_keeps_rejects():
    from connectors.records import Field, flatten, to_arrow

    fields = (Field("agent_id", "agentId"), Field("started_at", "startDate", "timestamp"),
              Field("duration_ms", "duration", "int"))
    payload = [{"agentId": "1", "startDate": "2020-01-01T10:00:00+03:00", "duration": 5},
               {"agentId": "2", "startDate": "yesterday", "duration": 5},
               {"agentId": "3", "startDate": "2020-01-01T10:00:00Z", "duration": "12600000"},
               {"startDate": "2020-01-01T10:00:00Z", "duration": 1}]
    columns, records, rejects = flatten(payload, fields)
    parsed = to_arrow(columns, records, fields, rejects)
    assert parsed.table.column("agent_id").to_pylist() == ["1", "3"]
    assert parsed.table.column("started_at")[0].as_py() == dt.datetime(2020, 1, 1, 7, tzinfo=UTC)
    assert parsed.table.column("duration_ms").to_pylist() == [5, 12600000]
    reasons = sorted(r.reason for r in parsed.rejects)
    assert reasons[0].startswith("field agentId: required but missing")
    assert "field startDate" in reasons[1] and "'yesterday'" in reasons[1]


def test_a_nul_character_or_an_integer_past_int64_rejects_its_row_only():
    from connectors.records import Field, flatten, to_arrow

    fields = (Field("agent_id", "agentId"), Field("state_name", "stateName", required=False),
              Field("duration_ms", "duration", "int"))
    payload = [{"agentId": "1", "stateName": "ok", "duration": 2**62 + 1},
               {"agentId": "2", "stateName": "a\x00b", "duration": 1},
               {"agentId": "3", "stateName": "ok", "duration": 2**63}]
    columns, records, rejects = flatten(payload, fields)
    parsed = to_arrow(columns, records, fields, rejects)
    assert parsed.table.to_pylist() == [{"agent_id": "1", "state_name": "ok", "duration_ms": 2**62 + 1}]  # exact
    reasons = sorted(r.reason for r in parsed.rejects)
    assert "field duration: outside the 64-bit integer range" in reasons[0]
    assert "field stateName: a NUL character" in reasons[1]


def test_json_orjson_refuses_is_read_once_not_retried_and_bad_values_reject_their_rows():
    """An integer past 64 bits or a lone surrogate is valid JSON: one call, the record rejected."""
    from connectors.http import CallStats, SourceClient

    body = ('[{"agentId": "1", "logins": [{"loginDate": "2026-11-09T08:00:00Z", "logoutDate": "2026-11-09T09:00:00Z",'
            ' "duration": 3600000}, {"loginDate": "2026-11-09T10:00:00Z", "logoutDate": "2026-11-09T11:00:00Z",'
            ' "duration": 99999999999999999999999}]}, {"agentId": "\\ud800", "logins": [{"loginDate":'
            ' "2026-11-09T08:00:00Z", "logoutDate": "2026-11-09T09:00:00Z", "duration": 1}]}]').encode()
    transport = httpx.MockTransport(lambda request: httpx.Response(200, content=body))
    stats = CallStats()
    with SourceClient(cc.SYSTEM, "http://source.invalid/cc", transport=transport) as client:
        parsed = streams.fetch(client, cc.AGENT_LOGINS, streams.Window(DAY1, DAY1 + dt.timedelta(days=1), ("1",)),
                               stats)
    assert stats.snapshot()["calls"] == 1 and stats.snapshot()["retries"] == 0
    assert parsed.table.column("duration_ms").to_pylist() == [3600000]
    reasons = sorted(r.reason for r in parsed.rejects)
    assert len(reasons) == 2 and "lone surrogate" in reasons[0] and "outside the 64-bit integer range" in reasons[1]


def test_transport_level_errors_are_not_leaking_httpx_types(simulator):
    simulator.set_faults("drop=1.0")
    with cc_settings(simulator, retry=RetryPolicy(attempts=2, initial_wait=0.01, jitter=0.0)).client() as client:
        with pytest.raises(SourceUnavailable) as caught:
            client.request_json("GET", "/personnel")
    assert not isinstance(caught.value, httpx.HTTPError)
