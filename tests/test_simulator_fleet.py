"""Several simulated sites at once (connectors/simulator/fleet.py), over real loopback HTTP:
different seeds, colliding identifiers, faults and outages that stay inside one site."""

from __future__ import annotations

import dataclasses
import datetime as dt

import httpx
import pytest

from connectors.simulator import ServerConfig
from connectors.simulator.fleet import fleet_configs, start_fleet
from connectors.simulator.world import SimConfig, World

WORLD = SimConfig(seed=7, agents=10, start=dt.date(2024, 1, 1), days=2)
DAY = {"startDate": "2024-01-01T00:00:00Z", "endDate": "2024-01-02T00:00:00Z"}
ONEC_AGENTS = "/agents/2024-01-01/2024-01-31"


def personnel(running) -> tuple[dict, list]:
    with httpx.Client(base_url=running.cc_url, timeout=10) as cc, \
            httpx.Client(base_url=running.onec_url, auth=("wfm", "wfm"), timeout=30) as onec:
        roster = cc.get("/personnel").json()
        agents = cc.get("/historic/agentStatusData",
                        params={**DAY, "agentId": ",".join(a["id"] for a in roster["agents"])}).json()
        return roster, [roster, agents, onec.get(ONEC_AGENTS).json()[0]["AR_agents"]]


def test_two_sites_collide_in_ids_and_differ_in_content():
    configs = fleet_configs(2, ServerConfig(sim=WORLD))
    assert [c.sim.seed for c in configs.values()] == [7, 8]
    with start_fleet(configs) as fleet:
        assert list(fleet) == ["site1", "site2"] and fleet["site1"].port != fleet["site2"].port
        (roster1, (_, statuses1, employees1)), (roster2, (_, statuses2, employees2)) = (
            personnel(fleet["site1"]), personnel(fleet["site2"]))
    assert {a["id"] for a in roster1["agents"]} & {a["id"] for a in roster2["agents"]}, "agent ids collide"
    assert {(e["agentId"], e["tabN"]) for e in employees1} & {(e["agentId"], e["tabN"]) for e in employees2}
    assert {a["agentNumber"] for a in roster1["agents"] if a.get("agentNumber")} & \
           {e["tabN"] for e in employees2}, "the tabN of one site is an agentNumber of the other"
    names = lambda employees: {(e["agentId"], e["lastname"], e["firstname"]) for e in employees}  # noqa: E731
    assert names(employees1) != names(employees2)
    assert statuses1 != statuses2


def test_id_seed_fixes_tabn_across_seeds_and_none_keeps_the_old_world():
    same_ids = [World(dataclasses.replace(WORLD, seed=s, id_seed=1)) for s in (7, 99)]
    assert [p.tab_n for p in same_ids[0].people] == [p.tab_n for p in same_ids[1].people]
    assert [p.last_name for p in same_ids[0].people] != [p.last_name for p in same_ids[1].people]
    plain, tagged = World(WORLD), World(dataclasses.replace(WORLD, id_seed=123))
    # the tabN seed changes the tabN only: every other draw of a person stays where it was
    strip = lambda p: dataclasses.replace(p, tab_n="")  # noqa: E731
    assert [strip(p) for p in plain.people] == [strip(p) for p in tagged.people]
    assert [p.tab_n for p in plain.people] != [p.tab_n for p in tagged.people]


def test_a_fault_or_an_outage_stays_inside_its_site():
    with start_fleet(fleet_configs(["north", "south"], ServerConfig(sim=WORLD))) as fleet:
        fleet["north"].set_faults("503=1.0")
        with httpx.Client(timeout=10) as client:
            assert client.get(fleet["north"].cc_url + "/personnel").status_code == 503
            assert client.get(fleet["south"].cc_url + "/personnel").status_code == 200
            fleet["north"].stop()
            with pytest.raises(httpx.ConnectError):
                client.get(fleet["north"].cc_url + "/personnel")
            assert client.get(fleet["south"].cc_url + "/personnel").status_code == 200
        assert fleet["south"].stats()["faults"] == {}


def test_fixed_ports_count_up_and_names_must_be_distinct():
    configs = fleet_configs(3, ServerConfig(sim=WORLD, port=18765))
    assert [c.port for c in configs.values()] == [18765, 18766, 18767]
    assert {c.sim.id_seed for c in configs.values()} == {7}
    with pytest.raises(ValueError, match="distinct"):
        fleet_configs(["a", "a"])
    with pytest.raises(ValueError, match="at least one"):
        fleet_configs([])
