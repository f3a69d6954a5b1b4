"""A corpus of malformed source records, and landing each through the real path.

Every item damages one record of a real answer of the simulator in one way — wrong types, a null
key, a huge string, control characters, end before start, an impossible date, an unknown enum
value, deeply nested junk, a record that is not an object. The answer is parsed by the stream's
own parser (`connectors.streams.fetch`) and landed by `engine.landing.window.land_batch` in PostgreSQL.
Handled means: the damaged record is quarantined with a reason, or lands exactly as sent (text
is data, however odd), and every other record of the answer lands.
"""

from __future__ import annotations

import copy
import datetime as dt
import json
from collections.abc import Callable
from typing import Any

import httpx

from connectors import contact_center as cc
from connectors.http import SourceClient
from connectors.streams import Stream, Window, fetch

UTC = dt.timezone.utc
Damage = Callable[[dict[str, Any]], Any]


def _set(key: str, value: Any) -> Damage:
    def damage(record: dict[str, Any]) -> dict[str, Any]:
        record[key] = value
        return record
    return damage


def _swap(a: str, b: str) -> Damage:
    def damage(record: dict[str, Any]) -> dict[str, Any]:
        record[a], record[b] = record[b], record[a]
        return record
    return damage


def _nested(depth: int) -> Any:
    junk: Any = "junk"
    for _ in range(depth):
        junk = {"a": [junk, None, 1.5]}
    return junk


STATUS_DAMAGE: dict[str, Damage] = {
    "start is a number": _set("startDate", 12345),
    "start is a list": _set("startDate", ["2026-11-09T10:00:00Z"]),
    "start is null": _set("startDate", None),
    "start missing": lambda r: {k: v for k, v in r.items() if k != "startDate"},
    "invalid date": _set("startDate", "2026-02-30T10:00:00Z"),
    "date out of range": _set("startDate", "99999-01-01T00:00:00Z"),
    "end before start": _swap("startDate", "endDate"),
    "end is text": _set("endDate", "many"),
    "end is negative": _set("endDate", -5),
    "end is huge": _set("endDate", 10**30),
    "end is NaN text": _set("endDate", "NaN"),
    "end is a bool": _set("endDate", True),
    "unknown status code": _set("stateCode", "Teleporting"),
    "status code is an object": _set("stateCode", {"nested": ["junk"]}),
    "huge status name": _set("stateName", "Ж" * 200_000),
    "control characters": _set("stateName", "a\x00b\x07c\x1b[31m\r\n\u2028d"),
    "deeply nested junk": _set("reason", _nested(200)),
    "record is a string": lambda r: "not a record",
    "record is null": lambda r: None,
}
AGENT_DAMAGE: dict[str, Damage] = {
    "agent id is null": _set("agentId", None),
    "agent id is an object": _set("agentId", {"id": 1}),
    "states is not a list": _set("states", "none"),
}


def corpus() -> list[tuple[str, str, Damage]]:
    """(name, where, damage): `where` is "status" (one nested record) or "agent" (its parent)."""
    return [(n, "status", d) for n, d in STATUS_DAMAGE.items()] + [(n, "agent", d) for n, d in AGENT_DAMAGE.items()]


def real_answer(sim, stream: Stream, window: Window) -> Any:
    """The simulator's raw answer to the stream's request for one window."""
    req = stream.request(window)
    with SourceClient(cc.SYSTEM, sim.cc_url) as client:
        return client.request_json(req.method, req.path, params=req.params)


def damaged(answer: list[dict], where: str, damage: Damage) -> tuple[list, str | None]:
    """A copy of the answer with one record damaged, and the damaged agent's id."""
    answer = copy.deepcopy(answer)
    index = next(i for i, a in enumerate(answer) if len(a.get("states") or []) > 1)
    agent = answer[index]
    agent_id = agent.get("agentId")
    if where == "agent":
        answer[index] = damage(agent)
    else:
        agent["states"][1] = damage(agent["states"][1])
    return answer, agent_id


def parse(stream: Stream, window: Window, answer: Any):
    """The stream's own parser over an answer served on a transport of its own."""
    body = json.dumps(answer).encode()      # stdlib: JSON text may hold integers orjson cannot
    transport = httpx.MockTransport(lambda request: httpx.Response(200, content=body))
    with SourceClient(cc.SYSTEM, "http://corpus.invalid/cc", transport=transport) as client:
        return fetch(client, stream, window)


