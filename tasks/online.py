"""The task of an online snapshot: one online endpoint of one contact center pulled and landed."""

from __future__ import annotations

from prefect import task
from prefect.cache_policies import NONE

from engine.landing import snapshots

land_snapshot = task(name="online-snapshot", cache_policy=NONE,
                     task_run_name="{stream_name} {connection}")(snapshots.land_snapshot)
