"""Chaos, a hanging source: the breaker ends disturbed runs in bounded time; the rerun is exact."""

from __future__ import annotations

import pytest

from .chaos.hanging import hanging_source

pytestmark = pytest.mark.usefixtures("prefect_harness")


def test_hung_requests_and_deterministic_errors_end_in_bounded_time_and_an_exact_rerun(postgres_server):
    outcome = hanging_source(postgres_server, days=2)
    outcome.check()
    assert outcome.tried >= 2 and "hang" in outcome.detail, outcome
