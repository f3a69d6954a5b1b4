"""The engine: everything between a parsed answer and a published Parquet file, in plain Python.

Prefect's tasks (`tasks/`) and flows (`flows/`) call into it; it calls the connectors. It defines
no Prefect task or flow (it uses Prefect's runtime services only where a run needs them: the
fleet-wide concurrency limits, artifacts, a Secret block).

    landing/   a window into PostgreSQL exactly once, and the lake after it
    quality/   the checks: GX suites and the row gate before landing, reconciliation after it,
               the quarantine's replay, reports and Data Docs
    push/      what goes back out: the outbox, sendSchedule payloads, deviations, webhooks
    bulk/      files in (import, validate) and out (export)
    repair/    the operator's hand: watermarks set by hand, the lake rebuilt and verified
    privacy/   personal data: keep | hash | drop per column, and the analysts' read-only role
    catalog.py     the stream registry: every stream once, with its family, suite and id source
    settings.py    the settings of one run (sources, warehouse, lake)
    paths.py       where things live on disk (data dir, lake)
    database.py    the warehouse's PostgreSQL: URL, embedded server, scratch databases
    derived.py     datasets derived from landed tables (agent ↔ employee map)
    progress.py    process-local progress hooks for the CLI's bars
    zones.py       time zones: an employee's area, the site's working day (`local_date`)
    retention.py   how long each ledger, audit and online table keeps its rows; prune
    project_file.py  wfm.toml, the declarative configuration: one table per concern
"""
