"""Several simulated sites at once: one contact center and one 1C:ZUP per site, each on its own port.

A holding's warehouse reads many source systems whose identifiers collide: every contact center
numbers its agents from 1000 and names its groups `1-1`, every 1C base has its tabN, and two of
them easily hold the same ones. A fleet is how tests and the demo prove that nothing collides in
one warehouse: its sites differ in seed (other people, names, statuses, calls) but share the id
space — agent ids, logins, group ids, employee GUIDs and, through one `id_seed`, the tabN.

Each site is a whole `start_simulator` server (its own faults, clock, auth, request log), so a
site can be taken down, slowed or faulted alone, and each is a distinct source host `host:port`.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Iterator, Mapping
from contextlib import ExitStack

from .server import RunningSimulator, ServerConfig, start_simulator

__all__ = ["SimulatorFleet", "fleet_configs", "start_fleet"]


def fleet_configs(sites: int | list[str], base: ServerConfig | None = None,
                  seed_step: int = 1) -> dict[str, ServerConfig]:
    """One server config per site, named `site1`, `site2`, ... (or the names given).

    Site i gets seed `base.sim.seed + i * seed_step` and the tabN seed of the first site, so the
    worlds differ in content and collide in identifiers. With a fixed `base.port`, site i listens
    on `base.port + i`; with 0, on any free port.
    """
    base = base or ServerConfig()
    names = [f"site{i + 1}" for i in range(sites)] if isinstance(sites, int) else list(sites)
    if len(set(names)) != len(names) or not names:
        raise ValueError(f"site names must be distinct and at least one: {names}")
    id_seed = base.sim.id_seed if base.sim.id_seed is not None else base.sim.seed
    return {name: dataclasses.replace(base, port=base.port + i if base.port else 0,
                                      sim=dataclasses.replace(base.sim, seed=base.sim.seed + i * seed_step,
                                                              id_seed=id_seed))
            for i, name in enumerate(names)}


class SimulatorFleet(Mapping[str, RunningSimulator]):
    """Running simulators by site name; `stop()` (or leaving `with`) stops every one."""

    def __init__(self, simulators: dict[str, RunningSimulator], stack: ExitStack):
        self._simulators = simulators
        self._stack = stack

    def __getitem__(self, name: str) -> RunningSimulator:
        return self._simulators[name]

    def __iter__(self) -> Iterator[str]:
        return iter(self._simulators)

    def __len__(self) -> int:
        return len(self._simulators)

    def stop(self) -> None:
        self._stack.close()

    def __enter__(self) -> "SimulatorFleet":
        return self

    def __exit__(self, *exc: object) -> None:
        self.stop()


def start_fleet(configs: Mapping[str, ServerConfig]) -> SimulatorFleet:
    """Start one simulator per site; if one fails to start, those already running are stopped."""
    stack = ExitStack()
    try:
        running = {name: stack.enter_context(start_simulator(config)) for name, config in configs.items()}
    except BaseException:
        stack.close()
        raise
    return SimulatorFleet(running, stack)


def sites_settings(simulators: Mapping[str, RunningSimulator], password_env: str, names: list[str] | None = None) -> str:
    """The `[connections]`/`[sites]` text for these sites: `cc-<site>`, `zup-<site>` (password by env)."""
    return "".join(f"""
[connections.cc-{name}]
system = "contact_center"
url = "{simulators[name].cc_url}"

[connections.zup-{name}]
system = "onec"
url = "{simulators[name].onec_url}"
username = "wfm"
password = {{ env = "{password_env}" }}

[sites.{name}]
contact_center = "cc-{name}"
onec = "zup-{name}"
""" for name in (names if names is not None else list(simulators)))
