"""The tasks that rebuild datasets derived from landed tables: the agent ↔ employee map, deviations."""

from __future__ import annotations

from prefect import task
from prefect.cache_policies import NONE

from engine import derived
from engine.push import deviations

build_agent_employee_map = task(name="build-agent-employee-map", cache_policy=NONE)(derived.build_agent_employee_map)
build_deviations = task(name="build-deviations", cache_policy=NONE)(deviations.build_deviations)
