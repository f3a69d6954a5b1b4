"""Chaos, migrations: `wfm migrate` of the pre-connections warehouse and lake SIGKILLed inside a
migration's transaction, between the database and the lake, in the middle of the lake's relayout
and at a random moment; the rerun equals an uninterrupted migration, and a second one changes nothing."""

from __future__ import annotations

import pytest

from .chaos.migration_kills import POINTS, migration_kills

pytestmark = pytest.mark.usefixtures("prefect_harness")


def test_every_migration_kill_point_is_survived_exactly(postgres_server):
    from engine import schema

    outcome = migration_kills(postgres_server, kills=len(POINTS))
    outcome.check()
    assert outcome.tried >= len(POINTS) - 1, outcome     # only the random moment may come too late
    assert outcome.detail.startswith(f"{len(schema.MIGRATIONS)} migration(s), ") and "lake file(s) moved" in outcome.detail
