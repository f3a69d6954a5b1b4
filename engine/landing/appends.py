"""Compaction of the snapshot streams' lake: an hour's snapshot files become one `hour-HH.parquet`.

A snapshot stream writes one file per snapshot (`engine/landing/lake.py`), which keeps a
snapshot's cost flat through the day but leaves 1,440 small files a day per table. Once an hour
has ended, its snapshot files (and the hour file of an earlier compaction, if a late snapshot
joined the hour since) are read back, sorted by the key and written as `hour-HH.parquet`
(temporary file, rename); then the merged snapshot files are deleted. The rows are the files'
own, never re-read from PostgreSQL, so a snapshot whose file is not written yet cannot turn up
twice. Between the rename and the deletions (milliseconds on a local disk) a reader listing the
directory can see that hour twice: compaction runs at :05 past the hour (`compact-online`), not
while anybody is asked to read the last hour.
"""

from __future__ import annotations

import datetime as dt
import uuid

import pyarrow as pa
import pyarrow.fs as pafs
import pyarrow.parquet as pq

from connectors.streams import Stream
from engine.landing import lake

UTC = dt.timezone.utc


def _hour_of(name: str) -> str | None:
    """`HH` of `snapshot-YYYYMMDDTHHMMSSZ.parquet`."""
    if not (name.startswith(lake.SNAPSHOT_PREFIX) and name.endswith(".parquet")):
        return None
    stamp = name[len(lake.SNAPSHOT_PREFIX):-len(".parquet")]
    return stamp[9:11] if len(stamp) == 16 and stamp[8] == "T" else None


def _merge(fs: pafs.FileSystem, paths: list[str], stream: Stream) -> pa.Table:
    schema = lake.lake_schema(stream)
    tables = []
    for path in paths:
        with fs.open_input_file(path) as handle:
            tables.append(pq.read_table(handle).cast(schema))
    return pa.concat_tables(tables).sort_by([(k, "ascending") for k in stream.key])


def compact(lake_path: str, stream: Stream, until: dt.datetime) -> dict[str, int]:
    """Compact every hour of `stream` that ended by `until`; returns files merged and hours written."""
    if not lake.appends(stream):
        return {"files": 0, "hours": 0}
    fs, root = lake.filesystem(lake_path)
    base = f"{root.rstrip('/')}/{stream.name}"
    if fs.get_file_info(base).type == pafs.FileType.NotFound:
        return {"files": 0, "hours": 0}
    merged = hours = 0
    levels = [i for i in fs.get_file_info(pafs.FileSelector(base)) if i.type == pafs.FileType.Directory]
    owners = [i.path for i in levels if i.base_name.startswith(("source=", "site="))]
    days = [i for i in levels if i.base_name.startswith("date=")] + [   # under each owner's level
        i for owner in owners for i in fs.get_file_info(pafs.FileSelector(owner))
        if i.type == pafs.FileType.Directory and i.base_name.startswith("date=")]
    for day in sorted(days, key=lambda i: i.path):
        date = dt.date.fromisoformat(day.base_name[len("date="):])
        by_hour: dict[str, list[str]] = {}
        for path in lake.data_files(fs, day.path):
            hour = _hour_of(path.rsplit("/", 1)[-1])
            if hour is not None:
                by_hour.setdefault(hour, []).append(path)
        for hour, snapshots in sorted(by_hour.items()):
            if dt.datetime.combine(date, dt.time(int(hour)), UTC) + dt.timedelta(hours=1) > until:
                continue                                   # the hour is not over: more snapshots come
            target = f"{day.path}/{lake.HOUR_PREFIX}{hour}.parquet"
            earlier = [target] if fs.get_file_info(target).type == pafs.FileType.File else []
            table = _merge(fs, earlier + snapshots, stream)
            temporary = f"{day.path}/.{lake.HOUR_PREFIX}{hour}.parquet.{uuid.uuid4().hex}.tmp"
            with fs.open_output_stream(temporary) as out:
                pq.write_table(table, out, row_group_size=lake.ROW_GROUP, compression="zstd")
            fs.move(temporary, target)
            for path in snapshots:
                fs.delete_file(path)
            merged += len(snapshots)
            hours += 1
    return {"files": merged, "hours": hours}
