"""Chaos, injection: table, filter and stream names cannot run SQL or escape the export root."""

from __future__ import annotations

import pytest

from .chaos.injection import AS_DATA, REFUSED, _attempts

pytestmark = pytest.mark.usefixtures("prefect_harness")


def test_no_name_or_value_runs_sql_or_escapes_the_root(postgres_server):
    outcome = _attempts(postgres_server)
    outcome.check()
    assert outcome.tried == len(REFUSED) + len(AS_DATA)
