"""The floor: what plain code does with the same agent-status pages, stage by stage.

    extract  httpx + orjson, 4 requests in flight (like the flow's task runner), rows as tuples;
    load     `COPY` (psycopg `write_row`) into a temporary staging table, then one
             `INSERT ... ON CONFLICT DO NOTHING` into a table identical to wfm's (same columns,
             types and primary key, built from `engine.landing.warehouse.columns`);
    lake     typed Arrow columns and one `pyarrow.dataset.write_dataset`, partitioned by the UTC
             date of `started_at`, with big row groups.

Sequential, so its time is the sum of the stages; the max of the stages is what a perfectly
overlapped pipeline could reach. `pages` is shared with the dlt contender (bench/dlt_bench.py).
"""

from __future__ import annotations

import os
import uuid
from collections import deque
from collections.abc import Callable, Iterator
from concurrent.futures import ThreadPoolExecutor

import common
import httpx
import orjson
import psycopg
import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.dataset as ds
from psycopg import sql

from connectors import contact_center as cc
from connectors import streams
from engine.landing.warehouse import columns

STREAM = cc.AGENT_STATUS_INTERVALS
SCHEMA = "floor"
DATA_COLUMNS = ("agent_id", "service_id", "group_id", "started_at", "ended_at", "state_code", "state_name")
ROW_GROUP = 128 * 1024   # rows per Parquet row group; write_dataset's default gives ~1k-row groups here


def pages(cc_url: str, windows: list[streams.Window], decode: Callable[[list], object],
          in_flight: int = 4) -> Iterator[object]:
    """`decode(records)` of every window's answer, in window order, at most 2×`in_flight` ahead."""
    limits = httpx.Limits(max_connections=in_flight, max_keepalive_connections=in_flight)
    with httpx.Client(base_url=cc_url, limits=limits, timeout=60) as http, \
            ThreadPoolExecutor(max_workers=in_flight) as pool:
        def get(window: streams.Window):
            req = STREAM.request(window)
            response = http.get(req.path, params=req.params)
            if response.status_code == 404:   # the contract: no data for these agents and days
                return decode([])
            response.raise_for_status()
            return decode(orjson.loads(response.content))

        ahead: deque = deque()
        for window in windows:
            ahead.append(pool.submit(get, window))
            if len(ahead) >= 2 * in_flight:
                yield ahead.popleft().result()
        while ahead:
            yield ahead.popleft().result()


def as_tuples(records: list) -> list[tuple]:
    """One tuple per state, in DATA_COLUMNS order; timestamps stay ISO strings."""
    return [(e["agentId"], e.get("serviceId") or "", e.get("groupId") or "", s["startDate"], s["endDate"],
             s["stateCode"], s.get("stateName")) for e in records for s in e["states"]]


def ddl() -> sql.Composed:
    """wfm's table for the stream (data columns, `_extra`, lineage, primary key) in schema `floor`."""
    cols = [sql.SQL("{} {}{}").format(sql.Identifier(name), sql.SQL(kind),
                                      sql.SQL(" NOT NULL") if name in STREAM.key else sql.SQL(""))
            for name, kind in columns(STREAM)]
    cols += [sql.SQL("_run_id uuid NOT NULL DEFAULT {}").format(sql.Literal(str(uuid.uuid4()))),
             sql.SQL("_extracted_at timestamptz NOT NULL DEFAULT now()")]
    return sql.SQL("CREATE SCHEMA IF NOT EXISTS {s}; CREATE TABLE IF NOT EXISTS {s}.{t} ({c}, PRIMARY KEY ({k}))").format(
        s=sql.Identifier(SCHEMA), t=sql.Identifier(STREAM.name), c=sql.SQL(", ").join(cols),
        k=sql.SQL(", ").join(map(sql.Identifier, STREAM.key)))


def extract(cc_url: str, windows: list[streams.Window]) -> list[tuple]:
    return [row for rows in pages(cc_url, windows, as_tuples) for row in rows]


def load(database_url: str, rows: list[tuple]) -> int:
    """COPY into a staging table, then one INSERT ... ON CONFLICT DO NOTHING; rows inserted."""
    table = sql.Identifier(SCHEMA, STREAM.name)
    names = sql.SQL(", ").join(map(sql.Identifier, DATA_COLUMNS))
    with psycopg.connect(database_url) as conn, conn.transaction():
        conn.execute(ddl())
        conn.execute(sql.SQL("CREATE TEMP TABLE stage ON COMMIT DROP AS SELECT {} FROM {} WITH NO DATA").format(
            names, table))
        with conn.cursor() as cur, cur.copy(sql.SQL("COPY stage ({}) FROM STDIN").format(names)) as copy:
            for row in rows:
                copy.write_row(row)
        return conn.execute(sql.SQL("INSERT INTO {} ({}) SELECT {} FROM stage ON CONFLICT DO NOTHING").format(
            table, names, names)).rowcount


def lake(path: str, rows: list[tuple]) -> None:
    """Typed Arrow columns, one Parquet dataset partitioned by the UTC date of started_at."""
    cols = list(zip(*rows)) if rows else [[] for _ in DATA_COLUMNS]
    arrays = [pa.array(col, pa.string()) for col in cols]
    for i in (3, 4):
        arrays[i] = arrays[i].cast(pa.timestamp("us", tz="UTC"))
    table = pa.Table.from_arrays(arrays, names=list(DATA_COLUMNS))
    date = pc.cast(pc.cast(table["started_at"], pa.timestamp("us")), pa.date32())
    ds.write_dataset(table.append_column("date", date), os.path.join(path, SCHEMA, STREAM.name), format="parquet",
                     partitioning=["date"], partitioning_flavor="hive", existing_data_behavior="delete_matching",
                     min_rows_per_group=ROW_GROUP, max_rows_per_group=ROW_GROUP)


def run(cc_url: str, database_url: str, lake_path: str, windows: list[streams.Window], fresh: bool) -> dict:
    """One floor pass: stage seconds, their sum and max, rows fetched and inserted."""
    if fresh:   # not timed: a first pass starts from an empty table and lake
        with psycopg.connect(database_url, autocommit=True) as conn:
            conn.execute(sql.SQL("DROP SCHEMA IF EXISTS {} CASCADE").format(sql.Identifier(SCHEMA)))
    t_extract, rows = common.timed(extract, cc_url, windows)
    t_load, inserted = common.timed(load, database_url, rows)
    t_lake, _ = common.timed(lake, lake_path, rows)
    stages = {"extract": t_extract, "load": t_load, "lake": t_lake}
    return {**stages, "seconds": sum(stages.values()), "max": max(stages.values()),
            "rows": len(rows), "inserted": inserted}


def first_and_rerun(cc_url: str, database_url: str, lake_path: str, windows: list[streams.Window]) -> dict:
    """The child-process body: a first pass on an empty table, then the same again (all conflicts)."""
    first = run(cc_url, database_url, lake_path, windows, fresh=True)
    first["rss"] = common.peak_rss_mib()
    rerun = run(cc_url, database_url, lake_path, windows, fresh=False)
    rerun["rss"] = common.peak_rss_mib()
    return {"first": first, "rerun": rerun}

