"""Chaos, source faults: a backfill through a storm of HTTP faults equals a fault-free backfill."""

from __future__ import annotations

import pytest

from .chaos.source_faults import source_faults

pytestmark = pytest.mark.usefixtures("prefect_harness")


def test_a_backfill_through_a_fault_storm_equals_a_fault_free_one(postgres_server):
    outcome = source_faults(postgres_server, days=2,
                            streams=("service_group_intervals", "agent_status_intervals", "employees"))
    outcome.check()
    assert outcome.tried >= 8, outcome       # the storm was a storm
