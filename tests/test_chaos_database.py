"""Chaos, database faults: PostgreSQL restarted and sessions terminated under a running sync."""

from __future__ import annotations

import pytest

from .chaos.database_faults import FAULTS, database_faults

pytestmark = pytest.mark.usefixtures("prefect_harness")


def test_a_restart_or_dropped_sessions_mid_run_end_in_an_exact_rerun(postgres_server):
    outcome = database_faults(postgres_server, trials=len(FAULTS))
    outcome.check()
    assert outcome.tried >= 1, outcome
