"""Chaos, the status receiver: a signed burst with a PostgreSQL restart in the middle, every event once."""

from __future__ import annotations

import re

from .chaos.receiver_load import receiver_burst


def test_a_burst_through_a_database_restart_stores_every_event_once(postgres_server):
    outcome = receiver_burst(postgres_server, events=300, senders=4)
    outcome.check()
    spooled = int(re.search(r"(\d+) spooled", outcome.detail).group(1))
    assert outcome.tried == 300 and spooled > 0, outcome        # the restart came during the burst
