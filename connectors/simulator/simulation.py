"""The state behind the simulator's server: its systems, clock, faults, auth, counters and log.

One `Simulation` per server (`server.py` serves it over HTTP, `admin.py` changes it under
`/_sim/`); it knows nothing of sockets, so the HTTP side and the admin API both lean on it and
it on neither.
"""

from __future__ import annotations

import logging
import threading
from collections import Counter, deque
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from typing import Any

import orjson

from .auth import AuthConfig, Authenticator
from .base import SimulatedSystem, SimulationClock
from .breaks import Breaks
from .contact_center import ContactCenterSystem
from .faults import FaultInjector
from .world import SimConfig, World

__all__ = ["LOG_LENGTH", "ServerConfig", "Simulation"]

log = logging.getLogger(__name__)
LOG_LENGTH = 1000
SECRET_PARAMETERS = {"access_token", "client_secret", "password", "token", "api_key", "apikey"}


@dataclass
class ServerConfig:
    """Everything one simulator process serves: the world, faults, and each system's auth."""

    sim: SimConfig = field(default_factory=SimConfig)
    host: str = "127.0.0.1"
    port: int = 0                                   # 0: any free port
    faults: str = ""                                # see connectors.simulator.faults
    fault_seed: int = 0
    cc_auth: AuthConfig = field(default_factory=AuthConfig)
    onec_auth: AuthConfig = field(default_factory=lambda: AuthConfig("basic", username="wfm", password="wfm"))
    onec_variants: frozenset[str] = frozenset()
    cc_variants: frozenset[str] = frozenset()       # e.g. {"single_name"}


class Simulation:
    """The state behind the server: systems, clock, faults, auth, counters and request log."""

    def __init__(self, config: ServerConfig):
        self.config = config
        self.world = World(config.sim)
        self.clock = SimulationClock()
        self.breaks = Breaks()
        self.contact_center = ContactCenterSystem(self.world, self.clock, variants=config.cc_variants,
                                                  breaks=self.breaks)
        self.onec = _load_onec(self.world, self.clock, config.onec_variants)
        self.faults = FaultInjector(config.faults, config.fault_seed)
        self.auth = {"cc": Authenticator(config.cc_auth, "cc"),
                     "onec": Authenticator(config.onec_auth, "onec")}
        self.stopping = threading.Event()
        self._lock = threading.Lock()
        self._paths: Counter[str] = Counter()
        self._statuses: Counter[str] = Counter()
        self._log: deque[dict[str, Any]] = deque(maxlen=LOG_LENGTH)
        self._in_flight = 0
        self._max_in_flight = 0                  # high-water mark of concurrent source requests

    def record(self, method: str, path: str, query: dict[str, str], status: int | None,
               fault: str | None) -> None:
        entry = {"method": method, "path": path, "status": status, "fault": fault,
                 "query": {k: ("***" if k.lower() in SECRET_PARAMETERS else v) for k, v in query.items()}}
        with self._lock:
            self._paths[path] += 1
            self._statuses[str(status) if status is not None else "none"] += 1
            self._log.append(entry)

    def stats(self) -> dict[str, Any]:
        with self._lock:
            return {"requests": dict(self._paths), "statuses": dict(self._statuses),
                    "faults": self.faults.fault_counts(), "faultPlaces": self.faults.fault_places(),
                    "faultSpec": self.faults.spec.text,
                    "clock": self.clock().isoformat(), "inFlight": self._in_flight,
                    "maxInFlight": self._max_in_flight}

    @contextmanager
    def in_flight(self) -> Iterator[None]:
        """Count a source request as in flight until its answer is written."""
        with self._lock:
            self._in_flight += 1
            self._max_in_flight = max(self._max_in_flight, self._in_flight)
        try:
            yield
        finally:
            with self._lock:
                self._in_flight -= 1

    def requests(self, limit: int = LOG_LENGTH) -> list[dict[str, Any]]:
        with self._lock:
            return list(self._log)[-limit:] if limit > 0 else []

    def reset_stats(self) -> None:
        with self._lock:
            self._paths.clear()
            self._statuses.clear()
            self._log.clear()
            self._max_in_flight = self._in_flight
        self.faults.reset_counts()

    def revoke_tokens(self) -> int:
        return sum(a.revoke_tokens() for a in self.auth.values())

    def set_break(self, kind: str | None, days: list | None = None, clear: bool = False) -> None:
        """Switch a break on (for `days`, or every day), or `clear` them all; see `breaks.py`."""
        if clear:
            self.breaks.clear()
        if kind:
            self.breaks.set(kind, days)
        self.contact_center.timeline.forget()

    def restate_answer(self, body: bytes) -> None:
        """The `restate` fault: restate every interval of a serviceGroupData answer."""
        for group in orjson.loads(body):
            for interval in group["historicData"]:
                self.contact_center.restate(group["groupId"], interval["startInterval"])


def _load_onec(world: World, clock: SimulationClock, variants: frozenset[str]) -> SimulatedSystem | None:
    """The 1C simulator if its module is importable; without it 1C paths answer 503."""
    try:
        from .onec import OneCSystem
    except ImportError as exc:
        log.warning("1C simulator unavailable, 1C paths answer 503: %s", exc)
        return None
    return OneCSystem(world, clock, variants)
