"""Volume anomalies: a history window that brings nothing, or far less than its recent past.

A 404 from the contact center is "no data", so a source that silently stops serving a stream
looks like a quiet day. Before a window of a stream with a cursor lands, the rows it brought are
compared with the median of the rows the nearest `HISTORY` windows of the same stream, id bucket
and length brought when they landed (within `RECENT` of it, its own earlier landing included). If
that median is at least `min_rows` and this window brought less than `ratio` of it, the window is
an anomaly: its rows land, but it is recorded as `anomaly`, not `landed` — the watermark stays at
its start, so the next run reads it again; no backfill skips it — with a row in
`wfm_meta.anomalies`; the run sends a `sync.anomaly` event and `wfm runs` shows it.

Thresholds: `WFM_ANOMALY_RATIO` (default 0.2) and `WFM_ANOMALY_MIN_ROWS` (default 20) for every
stream, `WFM_ANOMALY_<STREAM>=ratio[:min_rows]` for one (e.g. `0.5:100` for agent_calls);
a ratio of 0 switches the check off (for a stream whose days are legitimately empty).
"""

from __future__ import annotations

import datetime as dt
import os
import uuid
from collections.abc import Mapping
from dataclasses import dataclass

import psycopg

from connectors.streams import Window
from engine.landing.ledger import META, ids_hash

HISTORY = 7                       # windows the median is taken over
MIN_HISTORY = 3                   # fewer comparable windows than this: no judgement
RECENT = dt.timedelta(days=28)
DEFAULT_RATIO, DEFAULT_MIN_ROWS = 0.2, 20


@dataclass(frozen=True)
class Threshold:
    ratio: float = DEFAULT_RATIO
    min_rows: int = DEFAULT_MIN_ROWS


@dataclass(frozen=True)
class Anomaly:
    kind: str                     # "empty" | "low_volume"
    rows: int
    expected: float
    message: str


def threshold(stream: str, env: Mapping[str, str] | None = None) -> Threshold:
    """The stream's thresholds from the environment; a malformed value is a one-line error."""
    env = os.environ if env is None else env
    ratio = _number("WFM_ANOMALY_RATIO", env.get("WFM_ANOMALY_RATIO"), DEFAULT_RATIO)
    min_rows = _number("WFM_ANOMALY_MIN_ROWS", env.get("WFM_ANOMALY_MIN_ROWS"), DEFAULT_MIN_ROWS)
    variable = f"WFM_ANOMALY_{stream.upper()}"
    if raw := env.get(variable, "").strip():
        first, _, second = raw.partition(":")
        ratio = _number(variable, first, ratio)
        min_rows = _number(variable, second, min_rows) if second else min_rows
    if not 0 <= ratio <= 1:
        raise ValueError(f"{variable if raw else 'WFM_ANOMALY_RATIO'}: the ratio must be between 0 and 1, got {ratio}")
    return Threshold(ratio, int(min_rows))


def _number(variable: str, raw: str | None, default: float) -> float:
    if raw is None or not raw.strip():
        return default
    try:
        value = float(raw)
    except ValueError:
        raise ValueError(f"{variable}: {raw!r} is not a number") from None
    if value < 0:
        raise ValueError(f"{variable}: must not be negative, got {raw!r}")
    return value


def judge(conn: psycopg.Connection, stream: str, window: Window, rows: int,
          limits: Threshold | None = None, source: str = "default") -> Anomaly | None:
    """The anomaly this window's volume is, or None; call in the window's landing transaction.
    Judged against the recent past of the same connection (`source`) only."""
    limits = limits or threshold(stream)
    if limits.ratio == 0:
        return None
    found = conn.execute(
        f"""SELECT percentile_cont(0.5) WITHIN GROUP (ORDER BY n), count(*) FROM (
              SELECT max(rows_fetched) AS n FROM {META}.sync_windows
              WHERE stream = %(stream)s AND source = %(source)s AND status = 'landed' AND ids_hash = %(bucket)s
                AND window_end - window_start = %(length)s
                AND window_start BETWEEN %(start)s - %(recent)s AND %(start)s + %(recent)s
              GROUP BY window_start ORDER BY abs(extract(epoch FROM window_start - %(start)s)) LIMIT %(n)s) nearest""",
        {"stream": stream, "source": source, "bucket": ids_hash(window), "length": window.end - window.start,
         "start": window.start, "recent": RECENT, "n": HISTORY}).fetchone()
    expected, samples = found if found is not None else (None, 0)
    if samples < MIN_HISTORY or expected is None or expected < limits.min_rows or rows >= limits.ratio * expected:
        return None
    kind = "empty" if rows == 0 else "low_volume"
    what = "nothing" if rows == 0 else f"{rows} row(s)"
    message = (f"{stream} window {window.label}: {what}, against a median of {expected:g} in {samples} recent "
               f"window(s) of the same length (threshold {limits.ratio:g}); watermark held at {window.start:%Y-%m-%d %H:%M}")
    return Anomaly(kind, rows, float(expected), message)


def record(conn: psycopg.Connection, run_id: uuid.UUID, stream: str, window: Window, anomaly: Anomaly,
           source: str = "default") -> None:
    """Store the anomaly of a window of connection `source` (table `wfm_meta.anomalies`, created by
    `ledger.ensure_meta`); call in the window's landing transaction."""
    conn.execute(f"""INSERT INTO {META}.anomalies (run_id, stream, source, window_start, window_end, ids_hash, kind,
                     rows_fetched, expected, message) VALUES (%s, %s, %s, %s, %s, %s, %s, %s, %s, %s)""",
                 (run_id, stream, source, window.start, window.end, ids_hash(window), anomaly.kind, anomaly.rows,
                  anomaly.expected, anomaly.message))


def of_run(database_url: str, run_id: uuid.UUID) -> list[dict]:
    """The anomalies a run recorded, oldest window first (none if the table does not exist)."""
    with psycopg.connect(database_url, autocommit=True) as conn:
        if conn.execute(f"SELECT to_regclass('{META}.anomalies')").fetchone()[0] is None:
            return []
        cur = conn.execute(f"""SELECT stream, source, window_start, window_end, kind, rows_fetched, expected, message
                               FROM {META}.anomalies WHERE run_id = %s ORDER BY window_start""", (run_id,))
        names = [c.name for c in cur.description]
        return [dict(zip(names, row)) for row in cur.fetchall()]
