"""Source protection: a bounded number of requests in flight to one source host, fleet-wide.

Every request-making window holds one slot of `source:<host>:<port>` while its request (retries
included) is under way, in two layers:

- the Prefect global concurrency limit of that name on the shared Prefect server, so parallel
  flow runs, the windows of a backfill on Dask and every worker host draw from one pool. It is
  created with `WFM_SOURCE_MAX_IN_FLIGHT` slots (default 4) the first time a host is seen; from
  then on the server's value rules: change it in the UI (Concurrency) or with
  `prefect global-concurrency-limit update source:HOST:PORT --limit N`.
- a semaphore of the same size in each process, taken first, so the threads of one process never
  queue at the server against each other (the server answers a full limit with "retry in about
  the average slot occupancy", which is slow for requests that last milliseconds).

The server layer is used inside flow and task runs when `PREFECT_API_URL` names a server that
other processes share. Without one, or when the API cannot hold the limit, the semaphore alone
protects the source, from this process only: a notebook, a connector benchmark, and an API that
`serves_this_process` — one this process started for itself (the CLI's local API of
`wfm/prefect_api.py`, the test harness). No other process takes slots there, and each slot's round
trips to its SQLite would cost a `wfm sync` with nothing new more than half its time.

`WFM_BREAKER_FAILURES=N` (default 3): requests in a row that may find a source unavailable before
a run stops asking it (`connectors/http.py:Breaker`; the rest of the run's windows are deferred).

`WFM_SOURCE_MAX_PER_MINUTE=N` adds a rate limit `source-rate:<host>:<port>`: slots decaying at N a
minute on the server (each window takes one before its request), or a sliding minute in-process.
"""

from __future__ import annotations

import logging
import os
import sys
import threading
import time
from collections import deque
from collections.abc import Iterator
from contextlib import ExitStack, contextmanager
from urllib.parse import urlsplit

from connectors.http import DEFAULT_FAILURES

__all__ = ["DEFAULT_IN_FLIGHT", "breaker_failures", "limit_name", "max_in_flight", "max_per_minute",
           "own_api", "serves_this_process", "source_slot"]

logger = logging.getLogger(__name__)
DEFAULT_IN_FLIGHT = 4
LEASE_SECONDS = 300          # renewed while held; frees the slot if a worker dies mid-request
MAX_WAIT_SECONDS = 3600      # a window waiting longer for a slot fails with a message saying why

_lock = threading.Lock()
_create_lock = threading.Lock()                     # guards _shared: one look-up at a time
_shared: dict[tuple[str, str], int | None] = {}     # (API URL, limit name) -> server slots, None: local
_semaphores: dict[str, threading.BoundedSemaphore] = {}
_rate_windows: dict[str, deque[float]] = {}
_own_apis: set[str] = set()                         # API URLs this process started for itself


def limit_name(url: str, prefix: str = "source") -> str:
    """`source:<host>:<port>` for a source base URL (credentials and path left out)."""
    parts = urlsplit(url)
    port = parts.port or {"https": 443, "http": 80}.get(parts.scheme, 0)
    return f"{prefix}:{parts.hostname or 'unknown'}:{port}"


def max_in_flight() -> int:
    """Slots a new source limit is created with (`WFM_SOURCE_MAX_IN_FLIGHT`, default 4)."""
    return _positive("WFM_SOURCE_MAX_IN_FLIGHT") or DEFAULT_IN_FLIGHT


def max_per_minute() -> int | None:
    """Requests a minute per source host (`WFM_SOURCE_MAX_PER_MINUTE`); None: no rate limit."""
    return _positive("WFM_SOURCE_MAX_PER_MINUTE")


def breaker_failures() -> int:
    """Unavailable requests in a row after which a run stops asking a source (`WFM_BREAKER_FAILURES`)."""
    return _positive("WFM_BREAKER_FAILURES") or DEFAULT_FAILURES


def _positive(variable: str) -> int | None:
    raw = os.environ.get(variable, "").strip()
    if not raw:
        return None
    if not raw.isdigit() or int(raw) < 1:
        raise ValueError(f"{variable} must be a positive integer, got {raw!r}")
    return int(raw)


@contextmanager
def source_slot(url: str) -> Iterator[None]:
    """Hold one in-flight slot of the source host at `url`, waiting while all are taken."""
    name = limit_name(url)
    per_minute = max_per_minute()
    if per_minute is not None:
        _take_rate_slot(limit_name(url, "source-rate"), per_minute)
    server_slots = _shared_limit(name, max_in_flight())
    with _semaphore(name, server_slots or max_in_flight()), ExitStack() as stack:
        if server_slots is not None:
            _enter_server_slot(stack, name)
        yield


def _enter_server_slot(stack: ExitStack, name: str) -> None:
    """Take a slot of the server's limit; while all are taken, retry when the server says to."""
    from prefect.concurrency.asyncio import AcquireConcurrencySlotTimeoutError, ConcurrencySlotAcquisitionError
    from prefect.concurrency.sync import concurrency

    try:
        stack.enter_context(concurrency(name, occupy=1, strict=True, timeout_seconds=MAX_WAIT_SECONDS,
                                        lease_duration=LEASE_SECONDS, raise_on_lease_renewal_failure=False))
    except AcquireConcurrencySlotTimeoutError:
        raise TimeoutError(f"no free slot of {name} within {MAX_WAIT_SECONDS} s: raise the limit or look "
                           "for slots held by crashed runs (Prefect UI, Concurrency)") from None
    except ConcurrencySlotAcquisitionError as exc:   # the limit was deleted, or the API went away
        logger.warning("source limit %s unavailable (%s); limiting in this process only", name, exc)
        _forget(name)


def _take_rate_slot(name: str, per_minute: int) -> None:
    if _shared_limit(name, per_minute, decay=per_minute / 60) is not None:
        from prefect.concurrency.asyncio import ConcurrencySlotAcquisitionError
        from prefect.concurrency.sync import rate_limit

        try:
            return rate_limit(name, occupy=1, strict=True)
        except ConcurrencySlotAcquisitionError:
            _forget(name)
    _local_rate(name, per_minute)


def _server_url() -> str | None:
    """The shared Prefect server of the current run, if there is one to keep a limit on."""
    from prefect.context import FlowRunContext, TaskRunContext
    from prefect.settings import PREFECT_API_URL

    if FlowRunContext.get() is None and TaskRunContext.get() is None:
        return None   # outside a run: no API client to reuse, and starting one costs seconds
    url = PREFECT_API_URL.value()
    return None if not url or serves_this_process(url) else url


def own_api(url: str) -> None:
    """Record that the Prefect API at `url` was started by this process for itself (`wfm/prefect_api.py`).

    Only this process is told: a child process (a flow run of `wfm serve`, a Dask worker) that
    reaches the same API keeps the server's limit."""
    _own_apis.add(url)


def serves_this_process(url: str) -> bool:
    """The API at `url` is one this process started for itself: no other process takes its slots,
    so the in-process semaphore is the whole limit. A shared server (`make server`) is not."""
    return url in _own_apis or _started_here(url)


def _started_here(url: str) -> bool:
    """The API is a server Prefect started in this process (ephemeral mode, the test harness); its
    SQLite answers concurrent slot writes with 503 and a client retry seconds later."""
    server = sys.modules.get("prefect.server.api.server")   # never imported by a plain client
    instances = getattr(getattr(server, "SubprocessASGIServer", None), "_instances", {})
    return any(instance.port is not None and instance.api_url == url for instance in instances.values())


def _shared_limit(name: str, slots: int, decay: float | None = None) -> int | None:
    """The server's slots of limit `name` (created with `slots` if missing); None: keep it local."""
    url = _server_url()
    if url is None:
        return None
    with _create_lock:
        if (url, name) not in _shared:
            _shared[(url, name)] = _read_or_create(name, slots, decay)
        return _shared[(url, name)]


def _read_or_create(name: str, slots: int, decay: float | None) -> int | None:
    from prefect.client.orchestration import get_client
    from prefect.client.schemas.actions import GlobalConcurrencyLimitCreate
    from prefect.exceptions import ObjectAlreadyExists, ObjectNotFound

    try:
        with get_client(sync_client=True) as client:
            try:
                return client.read_global_concurrency_limit_by_name(name).limit
            except ObjectNotFound:
                pass
            try:
                client.create_global_concurrency_limit(GlobalConcurrencyLimitCreate(
                    name=name, limit=slots, slot_decay_per_second=decay or 0.0))
                logger.info("created concurrency limit %s with %d slot(s)", name, slots)
                return slots
            except ObjectAlreadyExists:   # another run created it first
                return client.read_global_concurrency_limit_by_name(name).limit
    except Exception as exc:  # no usable API: protect the source from this process at least
        logger.warning("cannot keep concurrency limit %s on the Prefect API (%s); limiting in this "
                       "process only", name, type(exc).__name__)
        return None


def _forget(name: str) -> None:
    with _create_lock:
        for key in [k for k in _shared if k[1] == name]:
            _shared[key] = None


def _semaphore(name: str, slots: int) -> threading.BoundedSemaphore:
    with _lock:
        found = _semaphores.get(name)
        if found is None:
            found = _semaphores[name] = threading.BoundedSemaphore(slots)
        return found


def _local_rate(name: str, per_minute: int) -> None:
    """Wait until fewer than `per_minute` requests to this host started in the last minute."""
    while True:   # each pass either takes a place or sleeps until the oldest start leaves the minute
        with _lock:
            starts = _rate_windows.setdefault(name, deque())
            now = time.monotonic()
            while starts and now - starts[0] >= 60:
                starts.popleft()
            if len(starts) < per_minute:
                starts.append(now)
                return
            wait = 60 - (now - starts[0])
        time.sleep(wait)
