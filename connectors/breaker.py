"""When not to ask a source at all: a circuit breaker per source, and maintenance windows.

The retry policy (`connectors/http.py`) bounds one request. Around it, across the requests of
one run, a `Breaker` counts requests that gave up as unavailable (their retries spent): after
`failures` of them in a row it opens, and from then on every attempt — a new request, or the
next retry of one already in flight — raises `SourceDeferred` at once, without a request. A
hung source then costs one retry budget per run, not one per window; the windows not asked are
recorded as `deferred` and the next run takes them up. A request that succeeds resets the count.

A `Maintenance` schedule (`WFM_ONEC_MAINTENANCE="01:00-04:30 Europe/Moscow"`, several windows
comma-separated, a window may cross midnight; `WFM_CC_MAINTENANCE` likewise) defers every
attempt that falls inside it, for syncs and pushes alike: 1C's nightly routines are expected,
not failures.

Per-source state is keyed by `SourceSettings.key` (the base URL, until connections have names).
"""

from __future__ import annotations

import datetime as dt
import re
import threading
from dataclasses import dataclass
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

from .errors import SourceDeferred

__all__ = ["Breaker", "Maintenance", "breaker_for", "forget_breakers", "DEFAULT_FAILURES"]

DEFAULT_FAILURES = 3
_WINDOW = re.compile(r"^(\d{1,2}):(\d{2})\s*-\s*(\d{1,2}):(\d{2})(?:\s+(\S+))?$")


@dataclass(frozen=True)
class Maintenance:
    """Daily windows, in local time of a zone, in which a source is not asked."""

    windows: tuple[tuple[dt.time, dt.time, str], ...] = ()

    @classmethod
    def parse(cls, text: str, variable: str = "maintenance") -> "Maintenance":
        """`HH:MM-HH:MM [Zone]`, comma-separated; a bad item is a one-line ValueError naming it."""
        windows = []
        for item in (part.strip() for part in (text or "").split(",")):
            if not item:
                continue
            found = _WINDOW.match(item)
            if not found:
                raise ValueError(f"{variable}: {item!r} is not HH:MM-HH:MM [time zone]")
            h1, m1, h2, m2, zone = found.groups()
            try:
                start, end = dt.time(int(h1), int(m1)), dt.time(int(h2), int(m2))
                ZoneInfo(zone or "UTC")
            except ValueError:
                raise ValueError(f"{variable}: {item!r} has an impossible time") from None
            except ZoneInfoNotFoundError:
                raise ValueError(f"{variable}: {item!r}: unknown time zone {zone!r}") from None
            windows.append((start, end, zone or "UTC"))
        return cls(tuple(windows))

    def active(self, now: dt.datetime | None = None) -> str | None:
        """The window `now` falls in, as written (`01:00-04:30 Europe/Moscow`), or None."""
        now = now or dt.datetime.now(dt.timezone.utc)
        for start, end, zone in self.windows:
            local = now.astimezone(ZoneInfo(zone)).time()
            inside = start <= local < end if start <= end else (local >= start or local < end)
            if inside:
                return f"{start:%H:%M}-{end:%H:%M} {zone}"
        return None

    def __bool__(self) -> bool:
        return bool(self.windows)


class Breaker:
    """Consecutive unavailable requests to one source within one run; open after `failures`."""

    def __init__(self, source: str, failures: int = DEFAULT_FAILURES):
        self.source = source
        self.failures = max(1, failures)
        self._lock = threading.Lock()
        self._in_a_row = 0
        self._open = False

    @property
    def is_open(self) -> bool:
        return self._open

    def check(self, system: str, endpoint: str) -> None:
        """Raise `SourceDeferred` instead of letting an attempt go out while open."""
        if self._open:
            raise SourceDeferred(system, endpoint, f"not asked: {self.failures} request(s) in a row found the source "
                                                   "unavailable (circuit open); deferred to the next run")

    def unavailable(self) -> None:
        with self._lock:
            self._in_a_row += 1
            self._open = self._open or self._in_a_row >= self.failures

    def answered(self) -> None:
        with self._lock:
            self._in_a_row = 0


_breakers: dict[tuple[str, str], Breaker] = {}
_registry_lock = threading.Lock()


def breaker_for(run: str, source: str, failures: int = DEFAULT_FAILURES) -> Breaker:
    """The breaker of `source` in run `run` (one per process: window tasks of a run share it)."""
    with _registry_lock:
        found = _breakers.get((run, source))
        if found is None:
            found = _breakers[(run, source)] = Breaker(source, failures)
        return found


def forget_breakers(run: str) -> None:
    """Drop a finished run's breakers."""
    with _registry_lock:
        for key in [k for k in _breakers if k[0] == run]:
            del _breakers[key]
