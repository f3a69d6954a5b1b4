"""The contact-center simulator over real HTTP: data rules, selection rules, restatements, online."""

from __future__ import annotations

import datetime as dt
from collections import defaultdict

import httpx
import pytest

from connectors.simulator import ServerConfig, start_simulator
from connectors.simulator.contact_center.data import chat_work_time
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


def test_intervals_align_to_the_requested_day_in_its_offset(cc, roster):
    local = {"startDate": "2024-01-01T10:10:00+05:30", "endDate": "2024-01-02T10:10:00+05:30"}
    rows = [r for g in group_data(cc, roster, 3_600_000, **local) for r in g["historicData"]]
    starts = sorted(when(r["startInterval"]) for r in rows)
    assert starts[0] >= when(local["startDate"]) and {s.minute for s in starts} == {30}
    response = cc.get("/historic/serviceGroupData", params={**local, "groupId": "1-1", "step": "7000"})
    assert response.status_code == 400 and response.json()["field"] == "step"


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


# --- restatements --------------------------------------------------------------------------

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
