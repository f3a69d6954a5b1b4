"""Chaos, bad input: the malformed-input corpus, and property-based records for the parsers."""

from __future__ import annotations

import datetime as dt

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from connectors import contact_center as cc
from connectors.errors import SourceError
from connectors.streams import Window

from .chaos.bad_files import CASES as FILE_CASES
from .chaos.bad_input import CLI_CASES, bad_input
from .chaos.flow_parameters import CASES
from .chaos.payloads import corpus, parse
from .chaos.receiver_load import _body_corpus

UTC = dt.timezone.utc
WINDOW = Window(dt.datetime(2026, 11, 9, tzinfo=UTC), dt.datetime(2026, 11, 10, tzinfo=UTC), ("1", "2"))
MOMENTS = st.datetimes(min_value=dt.datetime(2000, 1, 1), max_value=dt.datetime(2100, 1, 1), timezones=st.just(UTC))
JUNK = st.recursive(st.none() | st.booleans() | st.integers() | st.floats() | st.text(),
                    lambda inner: st.lists(inner, max_size=3) | st.dictionaries(st.text(max_size=5), inner, max_size=3),
                    max_leaves=8)


def iso(moment: dt.datetime) -> str:
    return moment.strftime("%Y-%m-%dT%H:%M:%S.%fZ")


@st.composite
def login(draw) -> tuple[dict, bool]:
    """A login record, valid or with junk in some fields; and whether it is valid."""
    start = draw(MOMENTS)
    record = {"loginDate": iso(start), "logoutDate": iso(start + dt.timedelta(minutes=draw(st.integers(1, 600)))),
              "duration": draw(st.integers(0, 10**9))}
    broken = draw(st.sets(st.sampled_from(sorted(record)), max_size=2))
    for key in broken:
        record[key] = draw(JUNK)
    return record, not broken


@st.composite
def answer(draw) -> tuple[list[dict], list[tuple[str, str]]]:
    """An agentLoginData answer and the (agent, loginDate) of its valid records."""
    agents, valid = [], []
    for number in range(draw(st.integers(1, 4))):
        agent_id = draw(st.sampled_from([str(number), number, None, {"x": 1}, ""])) if draw(st.booleans()) else str(number)
        logins = draw(st.lists(login(), max_size=5))
        agents.append({"agentId": agent_id, "logins": [r for r, _ in logins]})
        valid += [(agent_id, r["loginDate"]) for r, ok in logins if ok and isinstance(agent_id, str) and agent_id]
    return agents, valid


@settings(max_examples=150, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(answer())
def test_every_login_record_lands_or_is_rejected_and_no_valid_one_is_lost(generated):
    agents, valid = generated
    try:
        parsed = parse(cc.AGENT_LOGINS, WINDOW, agents)
    except SourceError as refused:          # refused whole: one line naming where
        assert "\n" not in str(refused) and str(refused)
        return
    rows = parsed.table.to_pylist()
    assert len(rows) + len(parsed.rejects) == sum(len(a["logins"]) for a in agents)
    landed = {(r["agent_id"], iso(r["login_at"])) for r in rows}
    assert set(valid) <= landed
    assert all(reject.reason and "\n" not in reject.reason for reject in parsed.rejects)


@settings(max_examples=100, deadline=None)
@given(st.lists(JUNK, max_size=4))
def test_any_json_at_all_is_parsed_or_refused_in_one_line(payload):
    try:
        parse(cc.AGENT_STATUS_INTERVALS, WINDOW, payload)
    except SourceError as refused:
        assert "\n" not in str(refused)


@pytest.mark.usefixtures("prefect_harness")
def test_every_malformed_input_gets_a_one_line_error_or_a_quarantine_entry(postgres_server):
    outcome = bad_input(postgres_server, real_processes=2, flow_every=6)
    outcome.check()
    assert outcome.tried > len(corpus()) + len(CLI_CASES) + len(CASES[::6]) + len(_body_corpus()) + len(FILE_CASES) + 2
