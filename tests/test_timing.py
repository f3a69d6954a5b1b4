"""Stage timing hooks (connectors/timing.py): off they record nothing; on, nested stages add up."""

from __future__ import annotations

import json
import subprocess
import sys
import threading
import time

import pytest

from connectors import timing


@pytest.fixture
def timer():
    timing.reset()
    timing.enable()
    yield timing
    timing.disable()
    timing.reset()


def test_off_records_nothing_and_costs_a_shared_noop():
    timing.reset()
    assert not timing.enabled()
    with timing.stage("fetch"):
        pass
    assert timing.stage("a") is timing.stage("b")
    assert timing.snapshot() == {"stages": {}, "calls": {}, "first": None, "last": None, "idle": 0.0}


def test_nested_stage_is_not_counted_twice(timer):
    with timer.stage("outer"):
        time.sleep(0.05)
        with timer.stage("inner"):
            time.sleep(0.1)
    snap = timer.snapshot()
    assert snap["calls"] == {"outer": 1, "inner": 1}
    assert 0.09 <= snap["stages"]["inner"] < 0.3
    assert 0.04 <= snap["stages"]["outer"] < 0.09   # its own time only
    assert snap["last"] - snap["first"] == pytest.approx(sum(snap["stages"].values()), abs=0.01)


def test_idle_is_the_time_no_thread_was_in_a_stage(timer):
    def work():
        with timer.stage("parallel"):
            time.sleep(0.1)
    threads = [threading.Thread(target=work) for _ in range(3)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    time.sleep(0.1)
    with timer.stage("after"):
        pass
    snap = timer.snapshot()
    assert snap["calls"]["parallel"] == 3
    assert snap["stages"]["parallel"] >= 0.3            # thread-seconds
    assert 0.09 <= snap["idle"] < snap["last"] - snap["first"]


def test_the_environment_variable_writes_the_snapshot_at_exit(tmp_path):
    out = tmp_path / "stages.json"
    code = "from connectors import timing\nwith timing.stage('fetch'):\n    pass\n"
    subprocess.run([sys.executable, "-c", code], check=True, env={timing.ENV: str(out), "PATH": ""})
    snap = json.loads(out.read_text())
    assert snap["calls"] == {"fetch": 1} and snap["first"] <= snap["last"]
