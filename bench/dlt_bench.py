"""dlt on the same agent-status pages: a `@dlt.resource` merging on the natural key.

Two configurations, each to the postgres destination and to the filesystem destination as
Parquet, each run twice (an empty destination, then all conflicts):

    default  the resource yields dicts; dlt's defaults (postgres: `insert_values` files and the
             `delete-insert` merge; filesystem: Parquet, whose "merge" appends);
    fastest  the resource yields typed Arrow tables built by hand; postgres loads uncompressed
             Parquet through ADBC (`loader_file_format="parquet"`, adbc-driver-postgresql) and
             merges with the `upsert` strategy (`skip_unchanged_rows`) on a unique index over
             the key, created after the first load (timed with it: dlt has no composite unique hint).

Pages come from `floor.pages` (httpx + orjson, 4 in flight), so extraction costs dlt what it costs
the floor. dlt is a benchmark-only dependency: `pip install -e ".[bench]"`.
"""

from __future__ import annotations

import os

import common
import floor

KEY = floor.STREAM.key
TABLE = floor.STREAM.name
STRATEGY = {"default": None, "fastest": os.environ.get("BENCH_DLT_STRATEGY", "delete-insert")}


def installed() -> str | None:
    """dlt's version, or None when the bench extra is not installed."""
    try:
        from importlib.metadata import version

        import dlt  # noqa: F401
        return version("dlt")
    except ImportError:
        return None


def as_dicts(records: list) -> list[dict]:
    return [dict(zip(floor.DATA_COLUMNS, row)) for row in floor.as_tuples(records)]


def as_arrow(records: list):
    import pyarrow as pa

    rows = floor.as_tuples(records)
    cols = list(zip(*rows)) if rows else [[] for _ in floor.DATA_COLUMNS]
    arrays = [pa.array(col, pa.string()) for col in cols]
    for i in (3, 4):
        arrays[i] = arrays[i].cast(pa.timestamp("us", tz="UTC"))
    return pa.Table.from_arrays(arrays, names=list(floor.DATA_COLUMNS))


def _resource(cc_url: str, windows: list, config: str):
    import dlt

    columns = {name: {"data_type": "timestamp", "timezone": True} for name in ("started_at", "ended_at")}
    disposition = {"disposition": "merge", "strategy": STRATEGY[config]} if STRATEGY[config] else "merge"
    decode = as_dicts if config == "default" else as_arrow

    @dlt.resource(name=TABLE, primary_key=KEY, write_disposition=disposition, columns=columns)
    def agent_status_intervals():
        for page in floor.pages(cc_url, windows, decode):
            if len(page):
                yield page

    return agent_status_intervals


def _destination(target: str, database_url: str, workdir: str):
    import dlt

    if target == "postgres":
        return dlt.destinations.postgres(credentials=_with_password(database_url))
    return dlt.destinations.filesystem(bucket_url=os.path.join(workdir, "dlt-lake"))


def _with_password(url: str) -> str:
    """dlt insists on a password; a trust-auth server (the system PostgreSQL here) never asks for it."""
    from urllib.parse import urlsplit, urlunsplit

    parts = urlsplit(url)
    if parts.password is not None or not parts.username:
        return url
    return urlunsplit(parts._replace(netloc=parts.netloc.replace(f"{parts.username}@", f"{parts.username}:unused@", 1)))


def _rows(target: str, pipeline, database_url: str, workdir: str) -> int:
    """Rows in the destination table after a run (not timed)."""
    if target == "postgres":
        import psycopg

        with psycopg.connect(database_url) as conn:
            return conn.execute(f'SELECT count(*) FROM "{pipeline.dataset_name}"."{TABLE}"').fetchone()[0]
    import pyarrow.dataset as ds

    return ds.dataset(os.path.join(workdir, "dlt-lake", pipeline.dataset_name, TABLE), format="parquet").count_rows()


def _unique_index(database_url: str, dataset: str) -> None:
    import psycopg

    key = ", ".join(f'"{k}"' for k in KEY)
    with psycopg.connect(database_url, autocommit=True) as conn:
        conn.execute(f'CREATE UNIQUE INDEX IF NOT EXISTS {TABLE}_key ON "{dataset}"."{TABLE}" ({key})')


def runs(config: str, target: str, cc_url: str, windows: list, database_url: str, workdir: str) -> dict:
    """The child-process body: dlt's first run and rerun of one configuration to one destination."""
    os.environ.update(RUNTIME__DLTHUB_TELEMETRY="false", RUNTIME__LOG_LEVEL="ERROR")
    if config == "fastest":
        os.environ["NORMALIZE__DATA_WRITER__DISABLE_COMPRESSION"] = "true"
    import dlt

    pipeline = dlt.pipeline(pipeline_name=f"bench_{config}_{target}", pipelines_dir=os.path.join(workdir, "dlt"),
                            destination=_destination(target, database_url, workdir),
                            dataset_name=f"dlt_{config}_{target}")
    file_format = "parquet" if target == "filesystem" or config == "fastest" else None
    out = {}
    for name in ("first", "rerun"):
        resource = _resource(cc_url, windows, config)
        seconds, _ = common.timed(pipeline.run, resource, loader_file_format=file_format)
        if config == "fastest" and target == "postgres" and name == "first":
            seconds += common.timed(_unique_index, database_url, pipeline.dataset_name)[0]
        out[name] = {"seconds": seconds, "rss": common.peak_rss_mib(),
                     "rows_after": _rows(target, pipeline, database_url, workdir)}
    return out
