"""The `corrupt` fault: damaged records inside otherwise healthy contact-center answers.

Each nested record (a status, a login, a call, an interval) is damaged with the configured
probability in one of the ways real feeds break: end before start, a negative duration, a
missing required field, an unparseable date, a wrong type, a null key, a broken invariant.
Damage is drawn from a seeded generator, so a run is repeatable.
"""

from __future__ import annotations

import random
from typing import Any

import orjson

NESTED = ("states", "logins", "agentCalls", "historicData")
DAMAGE = ("end_before_start", "negative_duration", "missing_field", "bad_date", "wrong_type", "null_key",
          "broken_invariant")


def corrupt_body(body: bytes, rate: float, rng: random.Random) -> tuple[bytes, int]:
    """The body with a share of its records damaged, and how many were damaged."""
    try:
        payload = orjson.loads(body)
    except orjson.JSONDecodeError:
        return body, 0
    if not isinstance(payload, list):
        return body, 0
    damaged = 0
    for item in payload:
        if not isinstance(item, dict):
            continue
        records = next((item[k] for k in NESTED if isinstance(item.get(k), list)), [item])
        for record in records:
            if isinstance(record, dict) and rng.random() < rate:
                _damage(record, rng.choice(DAMAGE))
                damaged += 1
    return orjson.dumps(payload), damaged


def _damage(record: dict[str, Any], how: str) -> None:
    starts = [k for k in ("startDate", "loginDate", "startCall", "startInterval") if k in record]
    ends = [k for k in ("endDate", "logoutDate", "endCall", "endInterval") if k in record]
    if how == "end_before_start" and starts and ends:
        record[starts[0]], record[ends[0]] = record[ends[0]], record[starts[0]]
        if starts[0] == ends[0]:
            return
    elif how == "negative_duration":
        for key in ("duration", "workTime", "aht", "notUniqueMissed"):
            if key in record:
                record[key] = -abs(int(record[key]) or 1000)
                return
        record["duration"] = -1000
    elif how == "missing_field" and starts:
        del record[starts[0]]
    elif how == "bad_date" and starts:
        record[starts[0]] = "2020-13-45T25:61:00Z"
    elif how == "wrong_type":
        for key in ("duration", "workTime", "notUniqueReceived"):
            if key in record:
                record[key] = "many"
                return
        record[starts[0] if starts else "stateCode"] = {"nested": ["junk"]}
    elif how == "null_key":
        record["agentId" if "agentId" in record else (starts[0] if starts else "stateCode")] = None
    elif how == "broken_invariant" and "notUniqueReceived" in record:
        record["notUniqueReceived"] = int(record["notUniqueReceived"]) + 7
    elif ends:
        record[ends[0]] = "not a date"
