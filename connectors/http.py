"""The one HTTP client both connectors share, with the one retry policy.

Responses are classified once, in `_classify`:
- retriable: 408, 429, 5xx, transport errors and timeouts, a body that is not valid JSON
  (a truncated answer); backoff is exponential with jitter, `Retry-After` is a floor, and the
  number of attempts is capped;
- empty: 404 when the source uses it for "no data" (the contact center does), except on an
  endpoint that always has an answer (`/personnel`): there a 404 means "this is not the API"
  (a wrong base URL), and fails;
- fatal: 401/403 (`AuthenticationFailed`) and any other 4xx (`SourceRejected`, with the
  server's own message); with `RetryPolicy.repeat_is_final` (1C), a 500 whose message is the same
  on two attempts in a row, and does not read as transient (a lock, a session, a timeout): a
  fault in the source's code that a third attempt would only repeat.

Around this one retry loop, not as a second one, a run's `Breaker` per source: after `failures`
requests in a row gave up as unavailable (their retries spent) it opens, and from then on every
attempt — a new request, or the next retry of one in flight — raises `SourceDeferred` at once,
without a request. A hung source then costs one retry budget per run, not one per window; the
windows not asked are `deferred` and the next run takes them up; a request answered resets the
count. Before every attempt the client also asks its maintenance schedule
(`connectors.settings.Maintenance`): inside a window nothing is sent. A breaker is keyed by
`SourceSettings.key` (the base URL).
"""

from __future__ import annotations

import email.utils
import json
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

import httpx
import orjson
from tenacity import RetryCallState, Retrying, retry_if_exception_type, stop_after_attempt, stop_after_delay
from tenacity.wait import wait_exponential_jitter

from .errors import AuthenticationFailed, RetriableError, SourceDeferred, SourceRejected, SourceUnavailable


@dataclass(frozen=True)
class RetryPolicy:
    """How long to keep trying one request before giving up."""

    attempts: int = 6                # total attempts, the first included
    initial_wait: float = 0.5        # seconds before the first retry
    max_wait: float = 30.0           # cap of one backoff step
    jitter: float = 0.5              # up to this many seconds added at random
    max_elapsed: float = 300.0       # never spend longer than this on one request
    max_retry_after: float = 120.0   # a Retry-After above this is treated as this
    repeat_is_final: bool = False    # a 500 with the same message twice in a row is not retried (1C)


DEFAULT_FAILURES = 3          # unavailable requests in a row before a run's breaker opens
TRANSIENT_WORDS = ("блокиров", "lock", "сеанс", "session", "тайм", "timeout", "time out", "соединен",
                   "connection", "занят", "busy", "перегруз", "overload")


@dataclass
class CallStats:
    """Counters for the run ledger; shared by the threads of one client."""

    calls: int = 0
    retries: int = 0
    throttled: int = 0
    _lock: threading.Lock = field(default_factory=threading.Lock, repr=False)

    def add(self, *, calls: int = 0, retries: int = 0, throttled: int = 0) -> None:
        with self._lock:
            self.calls += calls
            self.retries += retries
            self.throttled += throttled

    def snapshot(self) -> dict[str, int]:
        with self._lock:
            return {"calls": self.calls, "retries": self.retries, "throttled": self.throttled}


class Breaker:
    """Consecutive unavailable requests to one source within one run; open after `failures`.
    A layer around the retry policy: the client asks it before each attempt and tells it the
    outcome of each request."""

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


class SourceClient:
    """JSON over HTTP to one source system, with auth, timeouts and bounded retries."""

    def __init__(self, system: str, base_url: str, *, auth: httpx.Auth | None = None,
                 timeout: float = 30.0, retry: RetryPolicy | None = None,
                 not_found_is_empty: bool = False, max_connections: int = 8,
                 transport: httpx.BaseTransport | None = None,
                 maintenance: Callable[[], str | None] | None = None):
        self.system = system
        self.retry = retry or RetryPolicy()
        self._maintenance = maintenance     # the maintenance window now in force, or None
        self.not_found_is_empty = not_found_is_empty
        self.stats = CallStats()
        self._http = httpx.Client(
            base_url=base_url.rstrip("/"), auth=auth, timeout=timeout, transport=transport,
            limits=httpx.Limits(max_connections=max_connections, max_keepalive_connections=max_connections),
            headers={"Accept": "application/json", "User-Agent": "wfm-pipelines"},
        )

    @property
    def base_url(self) -> str:
        return str(self._http.base_url)

    def close(self) -> None:
        self._http.close()

    def __enter__(self) -> "SourceClient":
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def request_json(self, method: str, path: str, *, params: dict[str, str] | None = None,
                     json: Any = None, label: str | None = None, retry: bool | RetryPolicy = True,
                     stats: CallStats | None = None, not_found_is_empty: bool | None = None,
                     breaker: Breaker | None = None, content: bytes | None = None,
                     headers: Callable[[], dict[str, str]] | None = None, decode: bool = True) -> Any:
        """The decoded JSON body, or None for a 404 that means "no data".

        `not_found_is_empty=False` for an endpoint that always answers: its 404 is an error that
        says the base URL is probably wrong (None: the client's default for the source).
        `breaker`: the run's circuit breaker for this source; `SourceDeferred` when it is open.
        `retry=False` makes exactly one attempt: for a call that is not idempotent (1C's
        sendFactWorkTime creates a document per call), the caller resolves a lost answer itself;
        a `RetryPolicy` replaces the client's own for this request.
        `stats`, if given, counts this request's calls and retries as well (per-window figures).
        `content` is a raw body sent as it is, with `headers()` computed afresh for every attempt
        (a signature over a timestamp); `decode=False` accepts any 2xx body unread and returns its status.
        """
        counters = [self.stats] if stats is None else [self.stats, stats]

        def count(**values: int) -> None:
            for counter in counters:
                counter.add(**values)

        endpoint = label or f"{method} {path}"
        last: list[RetriableError] = []
        empty_404 = self.not_found_is_empty if not_found_is_empty is None else not_found_is_empty

        policy = retry if isinstance(retry, RetryPolicy) else self.retry if retry else RetryPolicy(attempts=1)

        def attempt() -> Any:
            self._may_ask(endpoint, breaker)
            count(calls=1)
            body = content if content is not None else (orjson.dumps(json) if json is not None else None)
            sent = {"Content-Type": "application/json"} if body is not None else {}
            try:
                response = self._http.request(method, path, params=params, content=body,
                                              headers={**sent, **(headers() if headers else {})} or None)
            except httpx.TransportError as exc:
                raise RetriableError(_transport_detail(exc)) from None
            if not decode and 200 <= response.status_code < 300:
                return response.status_code
            try:
                return self._classify(response, endpoint, empty_404)
            except RetriableError as exc:
                if policy.repeat_is_final and _deterministic(exc, last):
                    raise SourceRejected(self.system, endpoint, exc.status or 500, exc.detail.partition(": ")[2]
                                         + " (the same error twice in a row: not retried)") from None
                raise

        def before_sleep(state: RetryCallState) -> None:
            error = state.outcome.exception() if state.outcome else None
            if isinstance(error, RetriableError):
                last[:] = [error]
                count(retries=1, throttled=int(error.status == 429))

        retrying = Retrying(
            stop=stop_after_attempt(policy.attempts) | stop_after_delay(policy.max_elapsed),
            wait=_wait_with_retry_after(policy),
            retry=retry_if_exception_type(RetriableError),
            before_sleep=before_sleep, reraise=True,
        )
        try:
            answer = retrying(attempt)
        except RetriableError as exc:
            attempts = retrying.statistics.get("attempt_number", policy.attempts)
            if exc.status == 429:
                count(throttled=1)
            if breaker is not None:
                breaker.unavailable()
            raise SourceUnavailable(self.system, endpoint, exc.detail, attempts) from None
        except AuthenticationFailed as exc:
            raise AuthenticationFailed(self.system, endpoint, exc.detail) from None
        if breaker is not None:
            breaker.answered()
        return answer

    def in_maintenance(self) -> str | None:
        """The source's maintenance window now in force (`01:00-04:30 Europe/Moscow`), or None."""
        return self._maintenance() if self._maintenance is not None else None

    def _may_ask(self, endpoint: str, breaker: Breaker | None) -> None:
        """Raise `SourceDeferred` when the source is in maintenance or the run's breaker is open."""
        window = self.in_maintenance()
        if window is not None:
            raise SourceDeferred(self.system, endpoint, f"not asked: in the maintenance window {window}")
        if breaker is not None:
            breaker.check(self.system, endpoint)

    def _classify(self, response: httpx.Response, endpoint: str, empty_404: bool) -> Any:
        status = response.status_code
        if 200 <= status < 300:
            try:
                return orjson.loads(response.content) if response.content.strip() else None
            except orjson.JSONDecodeError:
                return _stdlib_json(response.content, status)
        if status == 404 and empty_404:
            return None
        if status == 404:
            message = _server_message(response).lstrip(": ") or "Not Found"
            raise SourceRejected(self.system, endpoint, 404,
                                 f"{message} (this endpoint always answers: is the base URL right?)")
        if status in (401, 403):
            raise AuthenticationFailed(self.system, endpoint, f"authentication failed (HTTP {status})")
        if status in (408, 429) or status >= 500:
            raise RetriableError(f"HTTP {status}{_server_message(response)}", status=status,
                                 retry_after=_retry_after(response))
        raise SourceRejected(self.system, endpoint, status, _server_message(response).lstrip(": ") or "no message")


def _deterministic(error: RetriableError, previous: list[RetriableError]) -> bool:
    """A 500 whose message (not the bare status) equals the previous attempt's, and does not read
    as a transient condition (a lock, a session, a timeout, a busy server)."""
    if error.status != 500 or not previous or previous[0].detail != error.detail:
        return False
    message = error.detail.partition(": ")[2].lower()
    return bool(message) and not any(word in message for word in TRANSIENT_WORDS)


def _stdlib_json(body: bytes, status: int) -> Any:
    """What orjson refuses but is JSON all the same (an integer past 64 bits, NaN, a lone
    surrogate) is read by the standard library, for the parser to reject per value; a body
    neither reads was cut short or damaged on the way, and is worth another attempt."""
    try:
        return json.loads(body)
    except ValueError:
        raise RetriableError(f"HTTP {status} with a truncated or invalid JSON body", status=status) from None


def _wait_with_retry_after(policy: RetryPolicy):
    backoff = wait_exponential_jitter(initial=policy.initial_wait, max=policy.max_wait, jitter=policy.jitter)

    def wait(state: RetryCallState) -> float:
        error = state.outcome.exception() if state.outcome else None
        floor = getattr(error, "retry_after", None) or 0.0
        return max(backoff(state), min(floor, policy.max_retry_after))

    return wait


def _retry_after(response: httpx.Response) -> float | None:
    """Seconds to wait from a Retry-After header, in either of its two forms."""
    value = response.headers.get("Retry-After")
    if not value:
        return None
    value = value.strip()
    if value.isdigit():
        return float(value)
    try:
        when = email.utils.parsedate_to_datetime(value)
    except (TypeError, ValueError):
        return None
    return max(0.0, when.timestamp() - time.time())


def _server_message(response: httpx.Response) -> str:
    """`: message` from the contract's error body {field, message, description}, or the text."""
    text = response.text.strip()
    if not text:
        return f" {response.reason_phrase}".rstrip()
    try:
        body = orjson.loads(text)
    except orjson.JSONDecodeError:
        return ": " + " ".join(text.split())[:200]
    if isinstance(body, dict):
        parts = [str(body[k]) for k in ("field", "message", "description") if body.get(k)]
        if parts:
            return ": " + " — ".join(parts)[:300]
    return ": " + " ".join(text.split())[:200]


def _transport_detail(exc: httpx.TransportError) -> str:
    if isinstance(exc, httpx.TimeoutException):
        return f"timed out ({type(exc).__name__})"
    if isinstance(exc, httpx.RemoteProtocolError):
        return "connection dropped or body truncated"
    return f"transport error ({type(exc).__name__})"
