"""`sync_online` per connection: two simulated contact centers (colliding agent ids) land side by side
into one warehouse and lake; a third, down, fails its own runs only and the flow names it at the end."""

from __future__ import annotations

import socket
from pathlib import Path

import psycopg
import pyarrow.dataset as ds
import pytest

from connectors.simulator import ServerConfig
from connectors.simulator.fleet import fleet_configs, sites_settings, start_fleet
from connectors.simulator.world import SimConfig

from .conftest import SIM_START, sim_clock
from .landing import latest_artifact

pytestmark = pytest.mark.usefixtures("prefect_harness")


def free_port() -> int:
    """A port nobody listens on: the connection of a contact center that is down."""
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return probe.getsockname()[1]


def configure(monkeypatch, tmp_path: Path, fleet, database_url: str) -> None:
    text = sites_settings(fleet, "ZUP_PASSWORD") + f"""
[connections.cc-gone]
system = "contact_center"
url = "http://127.0.0.1:{free_port()}/cc"
max_attempts = 2
"""
    path = tmp_path / "wfm.toml"
    path.write_text(text, encoding="utf-8")
    monkeypatch.setenv("ZUP_PASSWORD", "wfm")
    monkeypatch.setenv("WFM_CONFIG", str(path))
    monkeypatch.setenv("WFM_DATABASE_URL", database_url)
    monkeypatch.setenv("WFM_LAKE_PATH", str(tmp_path / "lake"))


def by_source(database_url: str, table: str) -> dict[str, set[tuple]]:
    with psycopg.connect(database_url) as conn:
        found: dict[str, set[tuple]] = {}
        for source, snapshot_at, agent_id, status in conn.execute(
                f"SELECT source, snapshot_at, agent_id, state_code FROM wfm.{table}"):
            found.setdefault(source, set()).add((snapshot_at, agent_id, status))
    return found


def lake_by_source(lake: Path) -> dict[str, set[tuple]]:
    table = ds.dataset(lake / "online_agent_status", partitioning="hive").to_table()
    found: dict[str, set[tuple]] = {}
    for row in table.select(["source", "snapshot_at", "agent_id", "state_code"]).to_pylist():
        found.setdefault(row["source"], set()).add((row["snapshot_at"], row["agent_id"], row["state_code"]))
    return found


def test_every_contact_center_lands_as_itself_and_one_down_fails_alone(monkeypatch, tmp_path, database_url):
    from flows.online import OnlineFailed, sync_online

    base = ServerConfig(sim=SimConfig(seed=5, agents=40, services=1, groups_per_service=2, start=SIM_START, days=7))
    with start_fleet(fleet_configs(["north", "south"], base)) as fleet:
        for running in fleet.values():
            running.set_clock(sim_clock(days=2))
        configure(monkeypatch, tmp_path, fleet, database_url)
        with pytest.raises(OnlineFailed) as failed:
            sync_online()
        message = str(failed.value)
        assert message.startswith("1 of 3 contact center(s) not snapshotted: cc-gone: ")
        assert "north" not in message and "south" not in message and "\n" not in message

        agents = by_source(database_url, "online_agent_status")
        assert set(agents) == {"cc-north", "cc-south"}
        ids = {s: {a for _, a, _ in rows} for s, rows in agents.items()}
        assert len(ids["cc-north"] & ids["cc-south"]) >= 3         # the same agent ids, kept apart by source
        assert agents["cc-north"] != agents["cc-south"]             # other seeds: other statuses
        assert lake_by_source(tmp_path / "lake") == agents
        with psycopg.connect(database_url) as conn:
            groups = dict(conn.execute("SELECT source, count(*) FROM wfm.online_group_load GROUP BY source"))
            assert set(groups) == {"cc-north", "cc-south"} and all(groups.values())
            runs = conn.execute("""SELECT source, stream, status, error FROM wfm_meta.sync_runs
                                   WHERE mode = 'snapshot' ORDER BY source, stream""").fetchall()
        assert [(s, st) for s, _, st, _ in runs] == [("cc-gone", "failed")] * 2 + \
            [("cc-north", "completed")] * 2 + [("cc-south", "completed")] * 2
        assert all(error for source, _, _, error in runs if source == "cc-gone")
        assert "| status | failed |" in latest_artifact("sync-online-agent-status-cc-gone")
        assert "from `cc-north`" in latest_artifact("sync-online-group-load-cc-north")

        fleet["north"].set_clock(sim_clock(days=2, hour=13))
        only = sync_online(connections=["cc-north"])
        assert set(only) == {"cc-north"} and only["cc-north"]["status"] == "completed", only
        assert set(only["cc-north"]["streams"]) == {"online_agent_status", "online_group_load"}
        with psycopg.connect(database_url) as conn:
            counts = dict(conn.execute("""SELECT source, count(*) FROM wfm_meta.sync_runs
                                          WHERE mode = 'snapshot' GROUP BY source"""))
        assert counts == {"cc-gone": 2, "cc-north": 4, "cc-south": 2}
        assert by_source(database_url, "online_agent_status")["cc-south"] == agents["cc-south"]

        with pytest.raises(ValueError, match=r"^unknown contact-center connection\(s\) zup-north .*known: cc-north"):
            sync_online(connections=["zup-north"])
