"""Chaos, connections: two sites' four connections with colliding ids, each down in turn (refused or
500s past the retry cap) while the others land; the warehouse is the union of single-site landings."""

from __future__ import annotations

import pytest

from .chaos.connections import MODES, SYSTEMS, connections_down

pytestmark = pytest.mark.usefixtures("prefect_harness")


def test_one_connection_down_at_a_time_fails_alone_and_catches_up(postgres_server):
    outcome = connections_down(postgres_server, passes=2, sites=2)
    outcome.check()
    assert outcome.tried == 2 == len(MODES) and outcome.scenario == f"connections ({2 * len(SYSTEMS)}, one down)"
    assert "= the union of 2 single-site landings" in outcome.detail and int(outcome.detail.split("; ")[1].split()[0]
                                                                              .replace(",", "")) > 500
