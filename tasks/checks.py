"""The tasks of checks after landing: reconciliation of what landed, replay of quarantined rows."""

from __future__ import annotations

from prefect import task
from prefect.cache_policies import NONE

from engine.quality import reconcile, replay

reconcile_landed = task(name="reconcile", cache_policy=NONE)(reconcile.reconcile_landed)
replay_quarantined = task(name="replay-quarantine", cache_policy=NONE,
                          task_run_name="replay {stream_name}")(replay.replay_stream)
