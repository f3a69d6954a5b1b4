"""A stream is one small declaration; fetching, chunking and parsing live here once.

    AGENT_LOGINS = Stream(
        name="agent_logins", system=CC, request=cc_historic("/historic/agentLoginData", "agentId"),
        fields=(...), key=("agent_id", "login_at"), partition="login_at", cursor="login_at",
        ids="agents", explode="logins")

`windows()` cuts a period into windows (a day by default) and the id list into buckets by a
stable hash of each id (`id_buckets`), so a window's identity — its span and bucket — does not
move when the roster changes: a new hire joins one bucket, a departure leaves one, and a resumed
backfill finds every other window as it was. `fetch()` makes a window's requests — each for at most
`max_ids` ids, keeping the URL short — and parses them into one batch; `fetch_all()` runs many
windows with a bounded number in flight and yields results in window order, so memory is
bounded by the number in flight, not by the range. A window is the unit that is validated,
landed and recorded in the ledger: a day of 1,000 agents is one batch of ~40k rows, so the
fixed costs of a batch (a quality run, a transaction) are paid 10× less often than per request.
"""

from __future__ import annotations

import dataclasses
import datetime as dt
import hashlib
from collections.abc import Callable, Iterable, Iterator, Sequence
from concurrent.futures import Future, ThreadPoolExecutor
from dataclasses import dataclass, field
from typing import Any

import pyarrow as pa

from .errors import InvalidPayload
from .http import Breaker, CallStats, SourceClient
from .records import Field, Parsed, flatten, items_of, to_arrow
from .timing import stage

UTC = dt.timezone.utc
MAX_IDS = 100                # the contract's practical limit of ids per request
MAX_ID_CHARS = 1500          # keeps the query string well under common 2 KiB URL limits
BUCKET_IDS = 750             # expected ids of a bucket: most stay under ~10 requests of 100 ids


@dataclass(frozen=True)
class Window:
    """One batch of work: a period and the ids asked for in it (in one or more requests)."""

    start: dt.datetime
    end: dt.datetime
    ids: tuple[str, ...] = ()
    context: dict[str, Any] = field(default_factory=dict, compare=False, hash=False)
    bucket: str = ""                 # which id bucket (`id_buckets`): with the span, the window's identity

    @property
    def label(self) -> str:
        span = f"{self.start:%Y-%m-%dT%H:%M}..{self.end:%Y-%m-%dT%H:%M}"
        return f"{span} ({len(self.ids)} ids)" if self.ids else span


@dataclass(frozen=True)
class Request:
    method: str
    path: str
    params: dict[str, str] | None = None
    json: Any = None


@dataclass(frozen=True)
class Stream:
    """Everything the engine needs to know about one source stream."""

    name: str                                   # also the table name in schema `wfm`
    system: str                                 # its source system (connectors/config/systems.py)
    endpoint: str                               # for messages: "GET /historic/agentStatusData"
    request: Callable[[Window], Request]
    fields: tuple[Field, ...]
    key: tuple[str, ...]                        # natural key: upserts and deduplication
    partition: str | None = None                # column whose UTC date names the lake partition
    cursor: str | None = None                   # column the watermark follows; None = snapshot
    ids: str | None = None                      # which id list the requests are cut by
    window: dt.timedelta | str | None = dt.timedelta(days=1)   # or "month"; None = one request
    lookback: dt.timedelta = dt.timedelta(0)    # re-read this much before the watermark
    root: Callable[[Any], Any] | None = None    # where the records sit in the payload
    explode: str | None = None                  # nested list that holds one row per element
    extra: tuple[pa.Field, ...] = ()            # columns `derive` adds
    derive: Callable[[pa.Table, Window], pa.Table] | None = None
    max_ids: int = MAX_IDS
    always_answers: bool = False                # a 404 here means a wrong base URL, never "no data"

    @property
    def schema(self) -> pa.Schema:
        return pa.schema([pa.field(f.column, f.arrow_type) for f in self.fields] + list(self.extra))

    @property
    def incremental(self) -> bool:
        return self.cursor is not None


def requests_of(stream: Stream, window: Window) -> list[Window]:
    """The window as the requests that fetch it: the same period, at most `max_ids` ids each."""
    if not window.ids:
        return [window]
    return [dataclasses.replace(window, ids=batch) for batch in id_batches(window.ids, stream.max_ids)]


def fetch(client: SourceClient, stream: Stream, window: Window, stats: CallStats | None = None,
          breaker: Breaker | None = None) -> Parsed:
    """A window's requests, one after another, parsed together into one batch of typed rows and rejects;
    `breaker`: the run's circuit breaker of the source (`connectors/http.py:Breaker`)."""
    items: list[Any] = []
    for part in requests_of(stream, window):
        req = stream.request(part)
        where = f"{stream.endpoint} [{part.label}]"
        with stage("fetch"):
            payload = client.request_json(req.method, req.path, params=req.params, json=req.json, label=where,
                                          stats=stats, not_found_is_empty=False if stream.always_answers else None,
                                          breaker=breaker)
        try:
            items += items_of(payload, stream.root)
        except (ValueError, TypeError, KeyError, IndexError) as exc:
            raise InvalidPayload(client.system, where, str(exc)) from None
    with stage("parse into Arrow"):
        try:
            columns, records, rejects = flatten(items, stream.fields, explode=stream.explode)
        except (ValueError, TypeError, KeyError, IndexError) as exc:
            raise InvalidPayload(client.system, f"{stream.endpoint} [{window.label}]", str(exc)) from None
        parsed = to_arrow(columns, records, stream.fields, rejects)
        if stream.derive is not None:
            parsed.table = stream.derive(parsed.table, window)
    return parsed


def fetch_all(client: SourceClient, stream: Stream, windows: Iterable[Window],
              max_in_flight: int = 4) -> Iterator[tuple[Window, Parsed]]:
    """Results in window order, at most `max_in_flight` requests outstanding."""
    pending: list[tuple[Window, Future[Parsed]]] = []
    with ThreadPoolExecutor(max_workers=max(1, max_in_flight), thread_name_prefix=stream.name) as pool:
        try:
            for window in windows:
                pending.append((window, pool.submit(fetch, client, stream, window)))
                if len(pending) >= max_in_flight:
                    done_window, future = pending.pop(0)
                    yield done_window, future.result()
            for done_window, future in pending:
                yield done_window, future.result()
        finally:
            for _, future in pending:
                future.cancel()


def day_spans(start: dt.datetime, end: dt.datetime, step: dt.timedelta = dt.timedelta(days=1)
              ) -> Iterator[tuple[dt.datetime, dt.datetime]]:
    """[start, end) cut at multiples of `step` from UTC midnight; the last span may be short."""
    if start.tzinfo is None or end.tzinfo is None:
        raise ValueError("window bounds must be timezone-aware")
    cursor = start.astimezone(UTC)
    end = end.astimezone(UTC)
    midnight = cursor.replace(hour=0, minute=0, second=0, microsecond=0)
    boundary = midnight + step * ((cursor - midnight) // step + 1)
    while cursor < end:
        upper = min(boundary, end)
        yield cursor, upper
        cursor, boundary = upper, boundary + step


def month_spans(start: dt.datetime, end: dt.datetime) -> Iterator[tuple[dt.datetime, dt.datetime]]:
    """[start, end) cut at the first of each month (UTC)."""
    cursor = start.astimezone(UTC)
    end = end.astimezone(UTC)
    while cursor < end:
        first = cursor.replace(day=1, hour=0, minute=0, second=0, microsecond=0)
        boundary = (first + dt.timedelta(days=32)).replace(day=1)
        upper = min(boundary, end)
        yield cursor, upper
        cursor = upper


def id_batches(ids: Sequence[str], max_ids: int = MAX_IDS, max_chars: int = MAX_ID_CHARS) -> Iterator[tuple[str, ...]]:
    """Consecutive batches of at most `max_ids` ids whose comma-joined length stays under `max_chars`."""
    batch: list[str] = []
    length = 0
    for ident in ids:
        cost = len(ident) + 1
        if batch and (len(batch) >= max_ids or length + cost > max_chars):
            yield tuple(batch)
            batch, length = [], 0
        batch.append(ident)
        length += cost
    if batch:
        yield tuple(batch)


def bucket_count(roster_size: int, size: int = BUCKET_IDS) -> int:
    """The smallest power of two that keeps a roster's expected bucket at `size` ids or fewer."""
    count = 1
    while roster_size > count * size:
        count *= 2
    return count


def id_buckets(ids: Sequence[str], count: int | None = None) -> list[tuple[str, tuple[str, ...]]]:
    """(bucket key, sorted ids) of the non-empty buckets of an id list.

    An id's bucket is a stable hash of the id alone modulo `count` (by default `bucket_count` of
    the list); the key names both ("4.1": bucket 1 of 4). Adding or removing an id changes its own
    bucket's content only, never another bucket's key, until the count changes (the roster
    doubled or halved: then each bucket splits in two, or two merge).
    """
    unique = sorted(set(ids))
    count = count or bucket_count(len(unique))
    buckets: list[list[str]] = [[] for _ in range(count)]
    for ident in unique:
        digest = hashlib.blake2b(ident.encode(), digest_size=8).digest()
        buckets[int.from_bytes(digest, "big") % count].append(ident)
    return [(f"{count}.{n}", tuple(bucket)) for n, bucket in enumerate(buckets) if bucket]


def windows(stream: Stream, start: dt.datetime, end: dt.datetime, ids: Sequence[str] = (),
            buckets: int | None = None) -> list[Window]:
    """The request windows of a stream for a period: spans × id buckets (ids sorted, unique);
    `buckets`: how many (by default `bucket_count` of the ids)."""
    if stream.window == "month":
        spans = list(month_spans(start, end))
    elif isinstance(stream.window, dt.timedelta):
        spans = list(day_spans(start, end, stream.window))
    else:
        spans = [(start, end)]
    if stream.ids is None:
        return [Window(s, e) for s, e in spans]
    cut = id_buckets(ids, buckets)
    return [Window(s, e, batch, bucket=key) for s, e in spans for key, batch in cut]


def iso(moment: dt.datetime) -> str:
    """UTC ISO-8601 with a Z, the form the contract's examples use."""
    return moment.astimezone(UTC).isoformat().replace("+00:00", "Z")
