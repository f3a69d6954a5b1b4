"""The tasks of files: a chunk of an import, a dry validation, an export."""

from __future__ import annotations

from prefect import task
from prefect.cache_policies import NONE

from engine.bulk import export, files
from tasks.retries import transient_database_error

land_chunk = task(name="import-chunk", cache_policy=NONE,
                  task_run_name="{plan.stream.name} {window.ids[0]}", retries=2, retry_delay_seconds=[1, 5],
                  retry_condition_fn=transient_database_error)(files.land_chunk)
validate_file = task(name="validate-file", cache_policy=NONE)(files.validate_file)
export_table = task(name="export-table", cache_policy=NONE, task_run_name="export {spec.table}")(export.export_table)
