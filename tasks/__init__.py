"""Prefect tasks: one small declaration per task over the engine function that does the work.

A task module names the unit Prefect schedules, retries and shows in the UI; the work itself is
plain Python in `engine/`, so it can be called, tested and benchmarked without Prefect.

    sync.py     sync-window, publish-lake           (engine/landing/window.py)
    online.py   online-snapshot                     (engine/landing/snapshots.py)
    bulk.py     import-chunk, validate-file, export-table (engine/bulk/)
    checks.py   reconcile, replay-quarantine        (engine/quality/)
    derived.py  build-agent-employee-map, build-deviations (engine/derived.py, engine/push/deviations.py)
    webhooks.py deliver-webhooks-after-run          (engine/push/webhook_outbox.py)
    maintenance.py compact-snapshots, prune         (engine/landing/snapshots.py, engine/retention.py)
"""
