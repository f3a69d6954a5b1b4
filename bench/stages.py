"""Wall time per pipeline stage of a sync run, summed over the task runner's threads.

`instrument()` wraps the functions `engine.landing.window` calls (fetch, validate, deduplicate, upsert,
the landing transaction, lake publication) and GX's lock, in this process only; nothing on
disk changes. Sums are thread-seconds: with 4 workers they can add up to 4× the wall time.
"""

from __future__ import annotations

import threading
import time
from collections import defaultdict
from contextlib import contextmanager
from functools import wraps

_totals: dict[str, float] = defaultdict(float)
_calls: dict[str, int] = defaultdict(int)
_lock = threading.Lock()


def _add(name: str, seconds: float) -> None:
    with _lock:
        _totals[name] += seconds
        _calls[name] += 1


def _timed(name: str, fn):
    @wraps(fn)
    def wrapper(*args, **kwargs):
        started = time.perf_counter()
        try:
            return fn(*args, **kwargs)
        finally:
            _add(name, time.perf_counter() - started)
    return wrapper


def _timed_entry(name: str, factory):
    """A context manager factory whose entry (e.g. waiting for a slot) is timed."""
    @contextmanager
    def wrapper(*args, **kwargs):
        started = time.perf_counter()
        with factory(*args, **kwargs):
            _add(name, time.perf_counter() - started)
            yield
    return wrapper


class _TimedLock:
    """Stands in for quality._GX_LOCK: times the wait for it and the time it is held."""

    def __init__(self, lock) -> None:
        self._lock = lock
        self._local = threading.local()

    def __enter__(self):
        started = time.perf_counter()
        self._lock.acquire()
        self._local.acquired = time.perf_counter()
        _add("GX lock: waiting", self._local.acquired - started)
        return self

    def __exit__(self, *exc) -> None:
        _add("GX lock: held (GX itself)", time.perf_counter() - self._local.acquired)
        self._lock.release()


def instrument() -> None:
    from engine.landing import lake, warehouse
    from engine.landing import window as sync
    from engine.quality import gate as quality

    sync.fetch = _timed("fetch + parse (connector)", sync.fetch)
    quality.validate = _timed("validate (incl. lock wait, pandas)", quality.validate)
    quality._GX_LOCK = _TimedLock(quality._GX_LOCK)
    warehouse.deduplicate = _timed("deduplicate", warehouse.deduplicate)
    warehouse.upsert = _timed("upsert (COPY + INSERT)", warehouse.upsert)
    warehouse._copy = _timed("  of which COPY", warehouse._copy)
    sync._land = _timed("landing transaction (upsert + ledger + commit)", sync._land)
    lake.publish = _timed("lake publication", lake.publish)
    if hasattr(sync, "source_slot"):   # the per-source concurrency limit, where present
        sync.source_slot = _timed_entry("waiting for a source slot", sync.source_slot)


def reset() -> None:
    with _lock:
        _totals.clear()
        _calls.clear()


def report(title: str) -> str:
    with _lock:
        lines = [f"{title}", f"  {'stage':48} {'thread-s':>9} {'calls':>6}"]
        lines += [f"  {name:48} {seconds:9.1f} {_calls[name]:6d}" for name, seconds in _totals.items()]
    return "\n".join(lines)
