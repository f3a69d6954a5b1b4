"""Chaos, crashes: SIGKILL at every named point and at random moments, then an exact rerun."""

from __future__ import annotations

import pytest

from .chaos.crashes import POINTS, crashes

pytestmark = pytest.mark.usefixtures("prefect_harness")


def test_every_kill_point_is_survived_exactly(postgres_server):
    outcome = crashes(postgres_server, kills=len(POINTS))
    outcome.check()
    assert outcome.tried >= len(POINTS) - 1, outcome     # only the random moment may come too late
