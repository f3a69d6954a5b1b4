"""Stage timing: where a run's seconds go, measured by the code itself and free when nobody asks.

    with timing.stage("fetch"):
        ...

Off by default: `stage()` then returns one shared no-op context manager (a global read and a
call, nothing recorded). `enable()` turns it on in this process (the benchmark, bench/stages.py);
`WFM_STAGE_TIMES=<file>` turns it on at import and writes `snapshot()` to <file> as JSON when
the process exits, which is how the benchmark reads a `wfm sync` run in a process of its own.

Stages nest: a stage's seconds are its own, without the stages inside it, so the totals add up.
They are thread-seconds (four windows in flight can add up to four times the wall time). The
snapshot also says when the first stage began and the last one ended (epoch seconds) and how
much of that time no thread was in any stage ("idle": orchestration and waiting).

It lives in connectors/, the bottom layer, because the connectors' fetch and parse are timed too
and nothing here may import upward; it imports nothing of the project.
"""

from __future__ import annotations

import atexit
import contextlib
import json
import os
import threading
import time
from collections import defaultdict
from typing import Any

__all__ = ["stage", "enable", "disable", "enabled", "reset", "snapshot"]

ENV = "WFM_STAGE_TIMES"
_NOOP = contextlib.nullcontext()
_EPOCH = time.time() - time.perf_counter()   # perf_counter -> epoch seconds

_enabled = False
_lock = threading.Lock()
_local = threading.local()
_totals: dict[str, float] = defaultdict(float)
_calls: dict[str, int] = defaultdict(int)
_spans: list[tuple[float, float]] = []       # (start, end) of every outermost stage, for idle


class _Stage:
    __slots__ = ("name", "started", "inner")

    def __init__(self, name: str) -> None:
        self.name = name
        self.inner = 0.0

    def __enter__(self) -> None:
        stack = _local.__dict__.setdefault("stack", [])
        stack.append(self)
        self.started = time.perf_counter()

    def __exit__(self, *exc: object) -> None:
        ended = time.perf_counter()
        stack = _local.stack
        stack.pop()
        elapsed = ended - self.started
        if stack:
            stack[-1].inner += elapsed
        with _lock:
            _totals[self.name] += elapsed - self.inner
            _calls[self.name] += 1
            if not stack:
                _spans.append((self.started, ended))


def stage(name: str) -> contextlib.AbstractContextManager[None]:
    """Time the block under `name` when timing is on; a shared no-op otherwise."""
    return _Stage(name) if _enabled else _NOOP


def enable() -> None:
    global _enabled
    _enabled = True


def disable() -> None:
    global _enabled
    _enabled = False


def enabled() -> bool:
    return _enabled


def reset() -> None:
    with _lock:
        _totals.clear()
        _calls.clear()
        _spans.clear()


def snapshot() -> dict[str, Any]:
    """{"stages": {name: seconds}, "calls": {name: n}, "first"/"last": epoch seconds or None, "idle": seconds}."""
    with _lock:
        spans = sorted(_spans)
        out: dict[str, Any] = {"stages": dict(_totals), "calls": dict(_calls)}
    busy, reach = 0.0, None
    for start, end in spans:   # the union of the outermost stages over all threads
        if reach is None or start > reach:
            busy += end - start
            reach = end
        elif end > reach:
            busy += end - reach
            reach = end
    first = spans[0][0] if spans else None
    last = max((end for _, end in spans), default=None)
    out["first"] = None if first is None else _EPOCH + first
    out["last"] = None if last is None else _EPOCH + last
    out["idle"] = 0.0 if first is None or last is None else (last - first) - busy
    return out


def _write_at_exit(path: str) -> None:
    with contextlib.suppress(OSError):
        with open(path, "w") as f:
            json.dump(snapshot(), f)


if os.environ.get(ENV):
    enable()
    atexit.register(_write_at_exit, os.environ[ENV])
