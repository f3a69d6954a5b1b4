"""The tasks of a sync: one window fetched, checked and landed; the lake published from committed rows."""

from __future__ import annotations

from prefect import task
from prefect.cache_policies import NONE

from engine.landing import window
from tasks.retries import transient_database_error

sync_window = task(name="sync-window", cache_policy=NONE,
                   task_run_name="{plan.stream.name} {window.label}", retries=2, retry_delay_seconds=[1, 5],
                   retry_condition_fn=transient_database_error)(window.sync_window)
publish_lake = task(name="publish-lake", cache_policy=NONE, retries=2, retry_delay_seconds=[1, 5],
                    retry_condition_fn=transient_database_error)(window.publish_lake)
