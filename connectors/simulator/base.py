"""What a simulated system returns to the HTTP server, and the clock both systems share."""

from __future__ import annotations

import datetime as dt
from dataclasses import dataclass, field
from typing import Callable, Protocol

import orjson

Clock = Callable[[], dt.datetime]   # returns an aware UTC datetime: "now" inside the simulation


def utc_now() -> dt.datetime:
    return dt.datetime.now(dt.timezone.utc)


@dataclass
class SimResponse:
    """One HTTP answer: status, encoded body, extra headers."""

    status: int
    body: bytes = b""
    headers: dict[str, str] = field(default_factory=dict)
    content_type: str = "application/json; charset=utf-8"

    @classmethod
    def json(cls, status: int, payload: object, **headers: str) -> "SimResponse":
        return cls(status, orjson.dumps(payload), dict(headers))

    @classmethod
    def text(cls, status: int, text: str) -> "SimResponse":
        return cls(status, text.encode(), content_type="text/plain; charset=utf-8")


class SimulatedSystem(Protocol):
    """A source system behind the simulator's HTTP server. `path` is relative to its base URL."""

    def handle(self, method: str, path: str, query: dict[str, str], body: bytes) -> SimResponse: ...


class SimulationClock:
    """"Now" inside the simulation: real UTC time until set."""

    def __init__(self) -> None:
        self._now: dt.datetime | None = None

    def __call__(self) -> dt.datetime:
        return self._now or utc_now()

    def set(self, moment: dt.datetime | None) -> None:
        if moment is not None and moment.tzinfo is None:
            raise ValueError("the simulation clock needs an aware datetime")
        self._now = moment.astimezone(dt.timezone.utc) if moment else None
