"""Landing: a window of a stream into PostgreSQL exactly once, then the Parquet lake from committed rows.

Personal columns are hashed or dropped on the way to the lake and the quarantine by
`engine/privacy/personal_data.py`.

    runs.py       the one run lifecycle: open, close (ledger roll-up + webhook events in one
                  transaction), closed `failed` when the body raises — syncs, snapshots, imports, replays
    window.py     the window: fetch → drift → content hash → gate → one landing transaction
    warehouse.py  the stream tables (DDL from the declaration) and the staged upsert
    ledger.py     wfm_meta: runs, windows, watermarks, quarantine, the lake's to-do list (the SQL)
    content.py    a window's content hash (an unchanged re-read is not landed again)
    drift.py      the schema-drift contract of a stream
    lake.py       the Parquet lake: partitions rebuilt atomically from committed rows (snapshots appended)
    limits.py     source protection: requests in flight per source host, fleet-wide
    roster.py     every agent and group a source has had: the ids of a history window
    anomaly.py    a history window far below its recent volume: landed, the watermark held
    snapshots.py  online snapshots of one connection through the same landing path and run lifecycle;
                  the compaction of their lake files (an ended hour into one file)
"""
