"""The contact-center simulator over real HTTP: data rules, selection rules, faults and auth."""

from __future__ import annotations

import base64
import datetime as dt
import email.utils
import socket
import time
from collections import defaultdict

import httpx
import orjson
import pytest

from connectors.simulator import AuthConfig, ServerConfig, start_simulator
from connectors.simulator.cc_data import chat_work_time
from connectors.simulator.faults import FaultInjector, FaultSpec
from connectors.simulator.world import SimConfig

UTC = dt.timezone.utc
WORLD = SimConfig(seed=11, agents=12, start=dt.date(2024, 1, 1), days=2, login_only_share=0.3)
AFTER = dt.datetime(2024, 1, 10, tzinfo=UTC)          # everything has happened
ALL_TIME = {"startDate": "2023-12-31T00:00:00Z", "endDate": "2024-01-04T00:00:00Z"}


def start(sim: SimConfig = WORLD, **overrides):
    simulator = start_simulator(ServerConfig(sim=sim, **overrides))
    simulator.set_clock(AFTER)
    return simulator


@pytest.fixture(scope="module")
def sim():
    with start() as simulator:
        yield simulator


@pytest.fixture
def cc(sim):
    with httpx.Client(base_url=sim.cc_url, timeout=10) as client:
        yield client


@pytest.fixture(scope="module")
def roster(sim):
    with httpx.Client(base_url=sim.cc_url) as client:
        return client.get("/personnel").json()


def ids(roster, kind="agents"):
    if kind == "agents":
        return ",".join(a["id"] for a in roster["agents"])
    return ",".join(g["id"] for s in roster["services"] for g in s["serviceGroups"])


def iso(moment: dt.datetime) -> str:
    return moment.astimezone(UTC).strftime("%Y-%m-%dT%H:%M:%SZ")


def when(text: str) -> dt.datetime:
    return dt.datetime.fromisoformat(text)


def statuses(payload) -> dict[str, list[tuple[str, str, str, str | None]]]:
    """Per agent: unique (start, end, code, groupId) sorted; repeated ungrouped statuses count once."""
    out: dict[str, dict] = defaultdict(dict)
    for entry in payload:
        for s in entry["states"]:
            key = (s["startDate"], s["endDate"], s["stateCode"])
            group = entry.get("groupId") if s["stateCode"] in ("Work", "Ready") else None
            out[entry["agentId"]][key] = key + (group,)
    return {agent: sorted(rows.values()) for agent, rows in out.items()}


def history(cc, roster, endpoint, **params):
    response = cc.get(f"/historic/{endpoint}", params={**ALL_TIME, "agentId": ids(roster), **params})
    assert response.status_code == 200, response.text
    return response.json()


# --- determinism -------------------------------------------------------------------------

def fetch_all(simulator, order):
    days = [("2024-01-01T00:00:00Z", "2024-01-02T00:00:00Z"), ("2024-01-02T00:00:00Z", "2024-01-03T00:00:00Z")]
    with httpx.Client(base_url=simulator.cc_url) as client:
        roster = client.get("/personnel").json()
        bodies = {"personnel": client.get("/personnel").content}
        for n in order:
            lo, hi = days[n]
            for endpoint in ("agentStatusData", "agentLoginData", "agentCallsData", "agentChatsWorkTime"):
                params = {"startDate": lo, "endDate": hi, "agentId": ids(roster)}
                bodies[endpoint, n] = client.get(f"/historic/{endpoint}", params=params).content
            params = {"startDate": lo, "endDate": hi, "groupId": ids(roster, "groups"), "step": "900000"}
            bodies["serviceGroupData", n] = client.get("/historic/serviceGroupData", params=params).content
    return bodies


def test_same_seed_gives_identical_bytes_in_any_request_order():
    with start() as one, start() as two, start(sim=SimConfig(**{**WORLD.__dict__, "seed": 12})) as other:
        first, second, third = fetch_all(one, [0, 1]), fetch_all(two, [1, 0]), fetch_all(other, [0, 1])
    assert first == second
    assert first["agentStatusData", 0] != third["agentStatusData", 0]


# --- data rules --------------------------------------------------------------------------

def test_statuses_never_overlap_and_lie_inside_login_sessions(cc, roster):
    timeline = statuses(history(cc, roster, "agentStatusData"))
    logins = {e["agentId"]: e["logins"] for e in history(cc, roster, "agentLoginData")}
    assert len(timeline) >= 8
    for agent, rows in timeline.items():
        for (_, end, *_), (next_start, *_) in zip(rows, rows[1:]):
            assert end <= next_start, f"overlap for agent {agent}"
        sessions = [(when(s["loginDate"]), when(s["logoutDate"])) for s in logins[agent]]
        for start_text, end_text, *_ in rows:
            assert any(lo <= when(start_text) < when(end_text) <= hi for lo, hi in sessions)
    for sessions in logins.values():
        for s in sessions:
            assert s["duration"] == (when(s["logoutDate"]) - when(s["loginDate"])) / dt.timedelta(milliseconds=1)


def test_statuses_without_a_group_come_alone_or_repeated_per_group(cc, roster):
    payload = history(cc, roster, "agentStatusData")
    codes = {s["stateCode"] for e in payload for s in e["states"]}
    assert {"Work", "Ready", "Lunch"} <= codes and codes & {"Break12", "Break13"}
    assert any("groupId" not in e and "serviceId" not in e for e in payload)
    repeated = [e for e in payload if "groupId" in e and any(s["stateCode"] == "Lunch" for s in e["states"])]
    assert repeated, "some agent repeats its ungrouped statuses in each group"
    names = {s["stateCode"]: s["stateName"] for e in payload for s in e["states"]}
    assert names.get("Break12", "Break Technical") == "Break Technical"


def test_calls_lie_inside_work_statuses_of_their_group_and_chats_overlap(cc, roster):
    timeline = statuses(history(cc, roster, "agentStatusData"))
    overlapping_chats = 0
    for entry in history(cc, roster, "agentCallsData"):
        work = [(when(s), when(e)) for s, e, code, group in timeline[entry["agentId"]]
                if code == "Work" and group == entry["groupId"]]
        calls = sorted((when(c["startCall"]), when(c["endCall"])) for c in entry["agentCalls"])
        for start_call, end_call in calls:
            assert any(lo <= start_call < end_call <= hi for lo, hi in work)
        overlapping_chats += sum(1 for a, b in zip(calls, calls[1:]) if b[0] < a[1])
    assert overlapping_chats > 0


def check_interval(row, step_ms):
    assert row["notUniqueReceived"] == row["notUniqueTreated"] + row["notUniqueMissed"]
    assert row["receivedCalls"] == row["treatedCalls"] + row["missCalls"]
    assert row["treatedCalls"] <= row["notUniqueTreated"] and row["missCalls"] <= row["notUniqueMissed"]
    assert row["aht"] >= 0 and row["postProcessing"] >= 0 and row["notUniqueReceived"] > 0
    assert (when(row["endInterval"]) - when(row["startInterval"])) / dt.timedelta(milliseconds=1) == step_ms


def group_data(client, roster, step, **params):
    params = {**ALL_TIME, "groupId": ids(roster, "groups"), "step": str(step), **params}
    response = client.get("/historic/serviceGroupData", params=params)
    assert response.status_code == 200, response.text
    return response.json()


def test_intervals_keep_invariants_and_agree_with_agent_calls(cc, roster):
    calls = defaultdict(list)
    for entry in history(cc, roster, "agentCallsData"):
        for c in entry["agentCalls"]:
            calls[entry["groupId"]].append((when(c["startCall"]), c["duration"]))
    totals = {}
    for step in (300_000, 900_000):
        for group in group_data(cc, roster, step):
            for row in group["historicData"]:
                check_interval(row, step)
                lo, hi = when(row["startInterval"]), when(row["endInterval"])
                inside = [d for start, d in calls[group["groupId"]] if lo <= start < hi]
                assert row["notUniqueTreated"] == len(inside)
                assert row["aht"] == (sum(inside) // len(inside) if inside else 0)
            totals[step, group["groupId"]] = sum(r["notUniqueReceived"] for r in group["historicData"])
    assert {k[1]: v for k, v in totals.items() if k[0] == 300_000} == \
           {k[1]: v for k, v in totals.items() if k[0] == 900_000}


def test_chat_work_time_worked_example_of_the_contract():
    chats = [(dt.datetime(2020, 1, 1, 22, 45, tzinfo=UTC), dt.datetime(2020, 1, 1, 23, 2, tzinfo=UTC)),
             (dt.datetime(2020, 1, 1, 22, 58, tzinfo=UTC), dt.datetime(2020, 1, 2, 0, 12, tzinfo=UTC))]
    period = (dt.datetime(2020, 1, 1, tzinfo=UTC), dt.datetime(2020, 1, 2, tzinfo=UTC))
    assert chat_work_time(chats, *period) == {dt.date(2020, 1, 1): 4_500_000}
    longer = (period[0], dt.datetime(2020, 1, 3, tzinfo=UTC))
    assert chat_work_time(chats, *longer) == {dt.date(2020, 1, 1): 4_500_000, dt.date(2020, 1, 2): 720_000}


def test_chats_work_time_is_the_union_of_chat_calls(cc, roster):
    chat_groups = {g["id"] for s in roster["services"] for g in s["serviceGroups"] if g.get("channelType") == "CHATS"}
    chats = defaultdict(list)
    for entry in history(cc, roster, "agentCallsData"):
        if entry["groupId"] in chat_groups:
            chats[entry["agentId"]] += [(when(c["startCall"]), when(c["endCall"])) for c in entry["agentCalls"]]
    period = (when(ALL_TIME["startDate"]), when(ALL_TIME["endDate"]))
    expected = [{"agentId": agent, "workDate": day.isoformat(), "workTime": ms}
                for agent in sorted(chats) for day, ms in sorted(chat_work_time(chats[agent], *period).items())]
    got = history(cc, roster, "agentChatsWorkTime")
    assert sorted(got, key=lambda r: (r["agentId"], r["workDate"])) == expected


# --- selection rules and errors ----------------------------------------------------------

def test_a_status_crossing_a_window_edge_comes_back_from_both_windows(cc, roster):
    timeline = statuses(history(cc, roster, "agentStatusData"))
    agent, (start, end, code, _) = next((a, row) for a, rows in timeline.items() for row in rows
                                        if when(row[0]).hour != when(row[1]).hour and when(row[1]).minute > 0)
    edge = when(end).replace(minute=0, second=0)
    hour = dt.timedelta(hours=1)

    def window(lo, hi):
        params = {"startDate": iso(lo), "endDate": iso(hi), "agentId": agent}
        return statuses(cc.get("/historic/agentStatusData", params=params).json())[agent]

    assert any(r[:2] == (start, end) for r in window(edge - hour, edge))
    assert any(r[:2] == (start, end) for r in window(edge, edge + hour))
    # a status that ends exactly at the window start is in that window too
    assert any(r[:2] == (start, end) for r in window(when(end), when(end) + hour))


def test_no_data_is_404_with_an_error_body(cc, roster):
    response = cc.get("/historic/agentStatusData", params={
        "startDate": "2023-06-01T00:00:00+03:00", "endDate": "2023-06-02T00:00:00+03:00", "agentId": ids(roster)})
    assert response.status_code == 404 and set(response.json()) == {"field", "message", "description"}
    assert cc.get("/historic/agentCallsData", params={**ALL_TIME, "agentId": "nobody"}).status_code == 404
    assert cc.get("/no/such/endpoint").status_code == 404


@pytest.mark.parametrize("params, field", [
    ({"startDate": "yesterday", "endDate": "2024-01-02T00:00:00Z"}, "startDate"),
    ({"startDate": "2024-01-01T00:00:00", "endDate": "2024-01-02T00:00:00Z"}, "startDate"),
    ({"endDate": "2024-01-02T00:00:00Z"}, "startDate"),
    ({"startDate": "2024-01-02T00:00:00Z", "endDate": "2024-01-01T00:00:00Z"}, "endDate"),
    ({**ALL_TIME, "agentId": ",".join(str(1000 + n) for n in range(101))}, "agentId"),
    ({**ALL_TIME, "agentId": "x" * 2100}, "agentId"),
])
def test_bad_parameters_are_400_with_field_message_description(cc, params, field):
    response = cc.get("/historic/agentStatusData", params={"agentId": "1000", **params})
    assert response.status_code == 400
    body = response.json()
    assert set(body) == {"field", "message", "description"} and body["field"] == field
    if field == "agentId":
        assert "too many ids" in body["message"].lower()


# --- faults ------------------------------------------------------------------------------

def test_fault_spec_errors_name_the_bad_item():
    for spec, bad in (("500=2", "500=2"), ("teapot=0.1", "teapot"), ("503", "503"),
                      ("retry_after_form=soon", "soon"), ("500=0.6,503=0.6", "> 1")):
        with pytest.raises(ValueError, match=bad):
            FaultSpec.parse(spec)


def test_fault_sequence_is_deterministic_for_a_seed():
    def draws(seed):
        injector = FaultInjector("500=0.2,503=0.2,drop=0.1", seed)
        return [injector.decide("cc", "/personnel").kind for _ in range(50)]
    assert draws(3) == draws(3) != draws(4)


def test_status_faults_are_answered_as_configured():
    with start(faults="503=1.0") as simulator, httpx.Client(base_url=simulator.url) as client:
        assert {client.get("/cc/personnel").status_code for _ in range(5)} == {503}
        assert client.get("/zup/hs/wfm/agents/2024-01-01/2024-01-31", auth=("wfm", "wfm")).status_code == 503
        simulator.set_faults("429=1.0,retry_after=3")
        response = client.get("/cc/personnel")
        assert response.status_code == 429 and response.headers["Retry-After"] == "3"
        assert client.get("/zup/hs/wfm/agents/2024-01-01/2024-01-31", auth=("wfm", "wfm")).status_code == 500
        simulator.set_faults("429=1.0,retry_after=3,retry_after_form=http-date")
        retry_at = email.utils.parsedate_to_datetime(client.get("/cc/personnel").headers["Retry-After"])
        assert 0 < (retry_at - dt.datetime.now(UTC)).total_seconds() <= 4
        assert simulator.stats()["faults"] == {"503": 6, "429": 2, "500": 1}   # 1C knows no 429


def test_drop_closes_the_connection_without_an_answer():
    with start(faults="drop=1.0") as simulator, httpx.Client(base_url=simulator.cc_url) as client:
        with pytest.raises(httpx.TransportError):
            client.get("/personnel")


def test_truncate_sends_less_body_than_content_length():
    with start(faults="truncate=1.0") as simulator:
        with socket.create_connection(("127.0.0.1", simulator.port), timeout=5) as conn:
            conn.sendall(b"GET /cc/personnel HTTP/1.1\r\nHost: sim\r\n\r\n")
            raw = b""
            for _ in range(1000):
                chunk = conn.recv(65536)
                if not chunk:
                    break
                raw += chunk
        head, _, body = raw.partition(b"\r\n\r\n")
        length = int(next(line.split(b":")[1] for line in head.split(b"\r\n") if line.lower().startswith(b"content-length")))
        assert 0 < len(body) < length
        with pytest.raises(orjson.JSONDecodeError):
            orjson.loads(body)
        with httpx.Client(base_url=simulator.cc_url) as client, pytest.raises(httpx.RemoteProtocolError):
            client.get("/personnel")


def test_timeout_fault_answers_after_slow_seconds():
    with start(faults="timeout=1.0,slow_seconds=1") as simulator:
        with httpx.Client(base_url=simulator.cc_url, timeout=0.3) as client, pytest.raises(httpx.ReadTimeout):
            client.get("/personnel")


def test_restate_fault_corrects_the_numbers_for_the_next_request(roster):
    with start(faults="restate=1.0") as simulator, httpx.Client(base_url=simulator.cc_url) as client:
        first = group_data(client, roster, 900_000)
        second = group_data(client, roster, 900_000)
        assert simulator.stats()["faults"]["restate"] == 2
    assert first != second
    for before, after in zip(first, second):
        for old, new in zip(before["historicData"], after["historicData"]):
            check_interval(new, 900_000)
            assert new["notUniqueTreated"] == old["notUniqueTreated"]
            assert new["notUniqueMissed"] > old["notUniqueMissed"]


def test_restatement_changes_numbers_and_keeps_invariants(cc, sim, roster):
    group = group_data(cc, roster, 900_000)[0]
    row = group["historicData"][0]
    assert sim.contact_center.revision(group["groupId"], row["startInterval"]) == 0
    answer = cc.post(sim.url + "/_sim/restate", json={"groupId": group["groupId"], "startInterval": row["startInterval"]})
    assert answer.json() == {"revision": 1}
    corrected = {}
    for step in (900_000, 300_000):     # every step covering the restated instant sees the correction
        rows = next(g for g in group_data(cc, roster, step) if g["groupId"] == group["groupId"])["historicData"]
        corrected[step] = next(r for r in rows if r["startInterval"] == row["startInterval"])
        check_interval(corrected[step], step)
        assert corrected[step]["missCalls"] > 0
    assert corrected[900_000]["notUniqueMissed"] > row["notUniqueMissed"]
    assert corrected[900_000]["notUniqueTreated"] == row["notUniqueTreated"]


# --- authentication ----------------------------------------------------------------------

@pytest.mark.parametrize("auth, good, bad", [
    (AuthConfig("basic", username="u", password="p"), {"auth": ("u", "p")}, {"auth": ("u", "wrong")}),
    (AuthConfig("bearer", token="t0k"), {"headers": {"Authorization": "Bearer t0k"}},
     {"headers": {"Authorization": "Bearer nope"}}),
    (AuthConfig("apikey", header="X-Key", token="k3y"), {"headers": {"X-Key": "k3y"}}, {"headers": {"X-API-Key": "k3y"}}),
    (AuthConfig("none"), {}, None),
])
def test_static_auth_kinds(auth, good, bad):
    with start(cc_auth=auth) as simulator, httpx.Client(base_url=simulator.cc_url) as client:
        assert client.get("/personnel", **good).status_code == 200
        if bad is not None:
            denied = client.get("/personnel", **bad)
            assert denied.status_code == 401 and "message" in denied.json()
            assert client.get("/personnel").status_code == 401


def test_onec_answers_401_from_its_web_server_on_wrong_credentials():
    with start() as simulator, httpx.Client(base_url=simulator.onec_url) as client:
        assert client.get("/agents/2024-01-01/2024-01-31", auth=("wfm", "bad")).status_code == 401


def test_oauth2_tokens_are_issued_expire_and_can_be_revoked():
    auth = AuthConfig("oauth2", client_id="wfm", client_secret="s3cret", token_ttl=1)
    with start(cc_auth=auth) as simulator, httpx.Client(base_url=simulator.cc_url) as client:
        form = {"grant_type": "client_credentials", "client_id": "wfm", "client_secret": "s3cret"}
        issued = client.post("/oauth/token", data=form).json()
        assert issued["token_type"] == "Bearer" and issued["expires_in"] == 1
        bearer = {"Authorization": f"Bearer {issued['access_token']}"}
        assert client.get("/personnel", headers=bearer).status_code == 200
        assert client.post("/oauth/token", data={**form, "client_secret": "x"}).status_code == 401
        basic = base64.b64encode(b"wfm:s3cret").decode()
        again = client.post("/oauth/token", data={"grant_type": "client_credentials"},
                            headers={"Authorization": f"Basic {basic}"}).json()
        assert client.get("/personnel").status_code == 401
        time.sleep(1.1)
        expired = client.get("/personnel", headers=bearer)
        assert expired.status_code == 401 and 'error="invalid_token"' in expired.headers["WWW-Authenticate"]
        fresh = {"Authorization": f"Bearer {client.post('/oauth/token', data=form).json()['access_token']}"}
        assert client.get("/personnel", headers=fresh).status_code == 200
        assert client.post(simulator.url + "/_sim/revoke-tokens").json()["revoked"] >= 1
        assert client.get("/personnel", headers=fresh).status_code == 401
        assert again["access_token"] not in str(simulator.requests()) and "s3cret" not in str(simulator.stats())


# --- online endpoints and personnel ------------------------------------------------------

def test_online_endpoints_agree_with_the_historic_timeline(roster):
    instant = dt.datetime(2024, 1, 1, 12, 0, 7, tzinfo=UTC)
    with start() as simulator, httpx.Client(base_url=simulator.cc_url) as client:
        timeline = statuses(history(client, roster, "agentStatusData"))
        simulator.set_clock(instant)
        online = {s["agentId"]: s for s in client.get("/online/agentStatus").json()}
        load = client.get("/online/groupsOnlineLoad").json()
        today = group_data(client, roster, 900_000, startDate="2024-01-01T00:00:00Z", endDate=iso(instant))
        so_far = history(client, roster, "agentStatusData")
        simulator.set_clock(dt.datetime(2030, 1, 1, tzinfo=UTC))
        assert client.get("/online/agentStatus").json() == []
    current = {a: r for a, rows in timeline.items() for r in rows if when(r[0]) <= instant < when(r[1])}
    assert current and set(online) == set(current)
    for agent, (start_text, _, code, _) in current.items():
        assert (online[agent]["stateCode"], online[agent]["startDate"]) == (code, start_text)
    assert all(when(s["endDate"]) <= instant for e in so_far for s in e["states"])
    members = {a["id"]: {g["groupId"] for g in a["agentGroups"]} for a in roster["agents"]}
    received = {g["groupId"]: sum(r["notUniqueReceived"] for r in g["historicData"]) for g in today}
    answered = {g["groupId"]: sum(r["notUniqueTreated"] for r in g["historicData"]) for g in today}
    for group in load:
        on_duty = [a for a, s in online.items() if s["stateCode"] in ("Work", "Ready") and group["groupId"] in members[a]]
        assert group["operatorNumber"] == len(on_duty)
        assert group["callReceived"] == received.get(group["groupId"], 0)
        assert group["callAnswered"] == answered.get(group["groupId"], 0)
    assert sum(g["callReceived"] for g in load) > 0


def test_personnel_shape_and_single_name_variant(roster):
    agents = roster["agents"]
    assert all(a["agentGroups"] and a["loginSSO"] for a in agents)
    assert any("agentNumber" not in a for a in agents) and any("agentNumber" in a for a in agents)
    assert {g["status"] for s in roster["services"] for g in s["serviceGroups"]} == {"ACTIVE", "INACTIVE"}
    with start(cc_variants=frozenset({"single_name"})) as simulator, httpx.Client(base_url=simulator.cc_url) as client:
        single = client.get("/personnel").json()["agents"]
    assert all(a["surname"] == " " and a["secondName"] == " " and a["name"].count(" ") == 2 for a in single)
