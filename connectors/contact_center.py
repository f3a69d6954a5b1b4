"""The contact-center platform: one declaration per endpoint of `source-api/contact-center.md`.

Selection rules the engine relies on (the contract's, not ours):
- agentStatusData and agentLoginData return a record whose start OR end is in the period, so
  adjacent windows both return a record crossing their edge; the natural key makes it one row;
- agentCallsData and serviceGroupData select by start; restated intervals come back changed;
- 404 means "no data" and is an empty result — but for /personnel, which always has an answer:
  there a 404 means the base URL does not point at the API, and fails the run.
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Callable
from typing import Any

import pyarrow as pa

from .http import Breaker, SourceClient
from .records import Field
from .streams import Request, Stream, Window, iso

SYSTEM = "contact center"
STEP_15_MIN = 900_000
DAY = dt.timedelta(days=1)


def historic(path: str, id_param: str, **extra: str) -> Callable[[Window], Request]:
    """GET with startDate/endDate and a comma-separated id list."""
    def build(window: Window) -> Request:
        params = {"startDate": iso(window.start), "endDate": iso(window.end), **extra}
        if window.ids:
            params[id_param] = ",".join(window.ids)
        return Request("GET", path, params)
    return build


def plain(path: str) -> Callable[[Window], Request]:
    return lambda window: Request("GET", path)


def snapshot_time(table: pa.Table, window: Window) -> pa.Table:
    """Online streams are keyed by the moment of the pull (the window's end)."""
    return table.append_column("snapshot_at", pa.array([window.end] * table.num_rows, pa.timestamp("us", tz="UTC")))


def _group_ids(agent: dict) -> list[str]:
    return [str(g["groupId"]) for g in agent.get("agentGroups") or []]


SNAPSHOT_AT = (pa.field("snapshot_at", pa.timestamp("us", tz="UTC")),)
# a status or call not tied to a group keeps "" in service_id/group_id: a key value, not NULL
NO_GROUP: dict[str, Any] = dict(required=False, default="")

CC_SERVICES = Stream(
    name="cc_services", system=SYSTEM, endpoint="GET /personnel", request=plain("/personnel"), always_answers=True,
    root=lambda p: p["services"], key=("service_id",), window=None,
    fields=(Field("service_id", "id"), Field("name", "name"), Field("status", "status")),
)

CC_GROUPS = Stream(
    name="cc_groups", system=SYSTEM, endpoint="GET /personnel", request=plain("/personnel"), always_answers=True,
    root=lambda p: p["services"], explode="serviceGroups", key=("service_id", "group_id"), window=None,
    fields=(Field("service_id", "id", parent=True), Field("group_id", "id"), Field("name", "name"),
            Field("status", "status"), Field("channel_type", "channelType", required=False)),
)

CC_AGENTS = Stream(
    name="cc_agents", system=SYSTEM, endpoint="GET /personnel", request=plain("/personnel"), always_answers=True,
    root=lambda p: p["agents"], key=("agent_id",), window=None,
    fields=(Field("agent_id", "id"), Field("name", "name"), Field("surname", "surname", required=False),
            Field("second_name", "secondName", required=False),
            Field("agent_number", "agentNumber", required=False),
            Field("login_sso", "loginSSO", required=False),
            Field("group_ids", _group_ids, "text_list", required=False)),
)

SERVICE_GROUP_INTERVALS = Stream(
    name="service_group_intervals", system=SYSTEM, endpoint="GET /historic/serviceGroupData",
    request=historic("/historic/serviceGroupData", "groupId", step=str(STEP_15_MIN)),
    ids="groups", explode="historicData", key=("service_id", "group_id", "interval_start"),
    partition="interval_start", cursor="interval_start", lookback=dt.timedelta(days=2),
    fields=(Field("service_id", "serviceId", parent=True), Field("group_id", "groupId", parent=True),
            Field("interval_start", "startInterval", "timestamp"),
            Field("interval_end", "endInterval", "timestamp"),
            Field("not_unique_received", "notUniqueReceived", "int"),
            Field("not_unique_treated", "notUniqueTreated", "int"),
            Field("not_unique_missed", "notUniqueMissed", "int"),
            Field("received_calls", "receivedCalls", "int"), Field("treated_calls", "treatedCalls", "int"),
            Field("miss_calls", "missCalls", "int"), Field("aht_ms", "aht", "int"),
            Field("post_processing_ms", "postProcessing", "int")),
)

AGENT_STATUS_INTERVALS = Stream(
    name="agent_status_intervals", system=SYSTEM, endpoint="GET /historic/agentStatusData",
    request=historic("/historic/agentStatusData", "agentId"), ids="agents", explode="states",
    key=("agent_id", "service_id", "group_id", "started_at", "state_code"),
    partition="started_at", cursor="started_at", lookback=dt.timedelta(hours=12),
    fields=(Field("agent_id", "agentId", parent=True),
            Field("service_id", "serviceId", parent=True, **NO_GROUP),
            Field("group_id", "groupId", parent=True, **NO_GROUP),
            Field("started_at", "startDate", "timestamp"), Field("ended_at", "endDate", "timestamp"),
            Field("state_code", "stateCode"), Field("state_name", "stateName", required=False)),
)

AGENT_LOGINS = Stream(
    name="agent_logins", system=SYSTEM, endpoint="GET /historic/agentLoginData",
    request=historic("/historic/agentLoginData", "agentId"), ids="agents", explode="logins",
    key=("agent_id", "login_at"), partition="login_at", cursor="login_at", lookback=dt.timedelta(hours=24),
    fields=(Field("agent_id", "agentId", parent=True), Field("login_at", "loginDate", "timestamp"),
            Field("logout_at", "logoutDate", "timestamp"), Field("duration_ms", "duration", "int")),
)

AGENT_CALLS = Stream(
    name="agent_calls", system=SYSTEM, endpoint="GET /historic/agentCallsData",
    request=historic("/historic/agentCallsData", "agentId"), ids="agents", explode="agentCalls",
    key=("agent_id", "service_id", "group_id", "started_at", "ended_at"),
    partition="started_at", cursor="started_at", lookback=dt.timedelta(hours=12),
    fields=(Field("agent_id", "agentId", parent=True),
            Field("service_id", "serviceId", parent=True, **NO_GROUP),
            Field("group_id", "groupId", parent=True, **NO_GROUP),
            Field("started_at", "startCall", "timestamp"), Field("ended_at", "endCall", "timestamp"),
            Field("duration_ms", "duration", "int")),
)

AGENT_CHAT_WORK_TIME = Stream(
    name="agent_chat_work_time", system=SYSTEM, endpoint="GET /historic/agentChatsWorkTime",
    request=historic("/historic/agentChatsWorkTime", "agentId"), ids="agents",
    key=("agent_id", "work_date"), partition="work_date", cursor="work_date", lookback=dt.timedelta(days=1),
    fields=(Field("agent_id", "agentId"), Field("work_date", "workDate", "date"),
            Field("work_time_ms", "workTime", "int")),
)

ONLINE_AGENT_STATUS = Stream(
    name="online_agent_status", system=SYSTEM, endpoint="GET /online/agentStatus",
    request=plain("/online/agentStatus"), window=None, key=("snapshot_at", "agent_id"),
    partition="snapshot_at", extra=SNAPSHOT_AT, derive=snapshot_time,
    fields=(Field("agent_id", "agentId"), Field("state_code", "stateCode"),
            Field("state_name", "stateName", required=False),
            Field("started_at", "startDate", "timestamp", required=False)),
)

ONLINE_GROUP_LOAD = Stream(
    name="online_group_load", system=SYSTEM, endpoint="GET /online/groupsOnlineLoad",
    request=lambda w: Request("GET", "/online/groupsOnlineLoad", {"groupId": ",".join(w.ids)} if w.ids else None),
    ids="groups", window=None, key=("snapshot_at", "service_id", "group_id"),
    partition="snapshot_at", extra=SNAPSHOT_AT, derive=snapshot_time,
    fields=(Field("service_id", "serviceId"), Field("group_id", "groupId"),
            Field("call_number", "callNumber", "int"), Field("operator_number", "operatorNumber", "int"),
            *(Field(col, src, kind, required=False) for col, src, kind in (
                ("call_received", "callReceived", "int"), ("aht_ms", "aht", "int"), ("acd", "acd", "float"),
                ("awt_ms", "awt", "int"), ("call_answered", "callAnswered", "int"),
                ("call_answered_tst", "callAnsweredTst", "int"), ("call_processing", "callProcessing", "int")))),
)

STREAMS: tuple[Stream, ...] = (
    CC_SERVICES, CC_GROUPS, CC_AGENTS, SERVICE_GROUP_INTERVALS, AGENT_STATUS_INTERVALS, AGENT_LOGINS,
    AGENT_CALLS, AGENT_CHAT_WORK_TIME, ONLINE_AGENT_STATUS, ONLINE_GROUP_LOAD,
)


def personnel_ids(client: SourceClient, breaker: Breaker | None = None) -> dict[str, list[str]]:
    """Agent and group ids from /personnel: what the historic requests are cut by."""
    payload = client.request_json("GET", "/personnel", label="GET /personnel", not_found_is_empty=False,
                                  breaker=breaker) or {}
    agents = sorted({str(a["id"]) for a in payload.get("agents") or [] if isinstance(a, dict) and a.get("id")})
    groups = sorted({str(g["id"]) for s in payload.get("services") or [] if isinstance(s, dict)
                     for g in s.get("serviceGroups") or [] if isinstance(g, dict) and g.get("id")})
    return {"agents": agents, "groups": groups}
