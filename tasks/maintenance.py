"""The tasks that keep the warehouse and lake in shape: compaction of online snapshots, retention."""

from __future__ import annotations

from prefect import task
from prefect.cache_policies import NONE

from engine import retention
from engine.landing import snapshots

compact_snapshots = task(name="compact-snapshots", cache_policy=NONE,
                         task_run_name="compact {stream.name}")(snapshots.compact)
prune_tables = task(name="prune", cache_policy=NONE)(retention.prune)
