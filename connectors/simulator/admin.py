"""The simulator's admin API under `/_sim/`: never faulted nor authenticated, for tests and demos.

    GET  stats            fault counters, requests per path, in-flight high-water mark
    GET  requests         the recent request log (`?limit=N`)
    GET  roster           turnover truth: departed and hired agents, removed groups (with days)
    POST faults           {"spec": "503=0.1,..."}: replace the fault spec
    POST clock            {"now": iso | null}: fix the simulation clock, or follow real time
    POST restate          {"groupId", "startInterval"}: restate one interval
    POST reset-stats      forget counters and the request log
    POST revoke-tokens    invalidate every OAuth2 token issued so far
    POST breaks           {"kind", "days", "clear"}: switch a reconciliation-breaking defect
"""

from __future__ import annotations

import datetime as dt
from typing import TYPE_CHECKING, Any

import orjson

from .base import SimResponse
from .contact_center.queries import BadRequest

if TYPE_CHECKING:
    from .simulation import Simulation


def _clock(sim: "Simulation", payload: dict, query: dict) -> dict[str, Any]:
    now = payload.get("now")
    sim.clock.set(dt.datetime.fromisoformat(now) if now else None)
    return {"now": sim.clock().isoformat(), "fixed": bool(now)}


def _faults(sim: "Simulation", payload: dict, query: dict) -> dict[str, Any]:
    sim.faults.configure(str(payload.get("spec", "")))
    return {"spec": sim.faults.spec.text}


def _breaks(sim: "Simulation", payload: dict, query: dict) -> dict[str, Any]:
    sim.set_break(payload.get("kind"), payload.get("days"), clear=bool(payload.get("clear")))
    return {"breaks": sim.breaks.describe()}


def _reset(sim: "Simulation", payload: dict, query: dict) -> dict[str, Any]:
    sim.reset_stats()
    return {"reset": True}


ACTIONS = {
    ("GET", "stats"): lambda sim, payload, query: sim.stats(),
    ("GET", "requests"): lambda sim, payload, query: {"requests": sim.requests(int(query.get("limit", 1000)))},
    ("GET", "roster"): lambda sim, payload, query: sim.contact_center.roster(),
    ("POST", "faults"): _faults,
    ("POST", "clock"): _clock,
    ("POST", "restate"): lambda sim, payload, query: {"revision": sim.contact_center.restate(
        str(payload.get("groupId")), payload.get("startInterval"))},
    ("POST", "reset-stats"): _reset,
    ("POST", "revoke-tokens"): lambda sim, payload, query: {"revoked": sim.revoke_tokens()},
    ("POST", "breaks"): _breaks,
}


def admin_response(sim: "Simulation", method: str, action: str, query: dict[str, str], body: bytes) -> SimResponse:
    """Answer one admin request; bad input is a 400 with the contract's error shape."""
    handler = ACTIONS.get((method, action))
    if handler is None:
        return SimResponse.json(404, {"field": "path", "message": "Unknown admin endpoint", "description": action})
    try:
        payload = orjson.loads(body) if method == "POST" and body else {}
        return SimResponse.json(200, handler(sim, payload, query))
    except BadRequest as exc:
        return SimResponse.json(400, exc.body)
    except (ValueError, TypeError, AttributeError) as exc:
        return SimResponse.json(400, {"field": None, "message": str(exc), "description": "Bad admin request"})
