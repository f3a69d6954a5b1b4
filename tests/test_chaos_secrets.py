"""Chaos, secrets: with distinctive secrets configured, none shows up anywhere, and no SNILS in the
clear in the lake or in wfm_meta."""

from __future__ import annotations

import pytest

from .chaos.secret_leaks import secret_leaks

pytestmark = pytest.mark.usefixtures("prefect_harness")


def test_no_secret_reaches_logs_artifacts_tables_files_or_messages(postgres_server):
    outcome = secret_leaks(postgres_server)
    outcome.check()
    assert outcome.tried == 8 and "characters scanned" in outcome.detail
    assert int(outcome.detail.split(" and ")[1].split()[0]) > 0      # the SNILS searched for: some were served
