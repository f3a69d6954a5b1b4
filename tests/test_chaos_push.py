"""Chaos, push-back: confirmed deviations reach 1C once through lost answers (kills: test_chaos_crashes)."""

from __future__ import annotations

import pytest

from .chaos.facts import lost_answers

pytestmark = pytest.mark.usefixtures("prefect_harness")


def test_a_fact_push_through_lost_answers_makes_each_document_once(postgres_server):
    outcome = lost_answers(postgres_server, rounds=1)
    outcome.check()
    assert outcome.tried >= 5 and "lost after 1C stored them" in outcome.detail, outcome
