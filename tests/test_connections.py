"""Connections and sites from the settings file (connectors/config/connections.py) and as Prefect blocks
(blocks/connections.py): every mistake one line naming the place, secrets only by reference."""

from __future__ import annotations

import textwrap
from pathlib import Path

import pytest

from connectors.config.connections import DEFAULT, load
from connectors.config.file import ConfigError
from connectors.settings import CONTACT_CENTER, ONEC

FLEET = """
[connections.cc-north]
system = "contact_center"
url = "http://127.0.0.1:9001/cc"
client_id = "wfm"
client_secret = { env = "CC_NORTH_SECRET" }

[connections.cc-south]
system = "contact_center"
url = "https://cc-south.example.com/api"
token = { block = "cc-south-token" }
timeout = 12

[connections.zup-north]
system = "onec"
url = "http://127.0.0.1:9001/zup/hs/wfm"
username = "wfm"
password = { env = "ZUP_NORTH_PASSWORD" }

[connections.zup-south]
system = "onec"
url = "http://127.0.0.1:9002/zup/hs/wfm"

[sites.north]
contact_center = "cc-north"
onec = "zup-north"
timezone = "Asia/Yekaterinburg"

[sites.south]
contact_center = "cc-south"
onec = "zup-south"
"""
ENV = {"CC_NORTH_SECRET": "north-secret-7g", "ZUP_NORTH_PASSWORD": "zup-north-8h"}


def write(tmp_path: Path, text: str, name: str = "wfm.toml") -> Path:
    path = tmp_path / name
    path.write_text(textwrap.dedent(text), encoding="utf-8")
    return path


def load_text(tmp_path: Path, text: str, env: dict[str, str] | None = None):
    path = write(tmp_path, text)
    return load({"WFM_CONFIG": str(path), **(env or {})})


def test_a_file_with_two_contact_centers_and_two_onec_bases(tmp_path: Path) -> None:
    found = load_text(tmp_path, FLEET, ENV)
    assert [c.name for c in found.of(CONTACT_CENTER)] == ["cc-north", "cc-south"]
    assert [c.name for c in found.of(ONEC)] == ["zup-north", "zup-south"]
    north = found.get(CONTACT_CENTER, "cc-north")
    assert north.base.auth == "oauth2" and north.base.token_url == "http://127.0.0.1:9001/cc/oauth/token"
    assert north.base.client_secret is None and "north-secret" not in repr(north)   # resolved on use only
    assert north.settings(ENV).client_secret == "north-secret-7g"
    south = found.get(CONTACT_CENTER, "cc-south")
    assert (south.base.auth, south.base.timeout, south.host) == ("bearer", 12.0, "cc-south.example.com:443")
    assert found.get(ONEC, "zup-north").settings(ENV).password == "zup-north-8h"
    assert found.get(ONEC, "zup-south").base.auth == "none" and found.get(ONEC, "zup-south").base.timeout >= 60
    assert found.get(ONEC, "zup-north").host == "127.0.0.1:9001"
    assert found.sites["north"].timezone == "Asia/Yekaterinburg"
    assert (found.sites["south"].contact_center, found.sites["south"].onec, found.sites["south"].timezone) == (
        "cc-south", "zup-south", "Europe/Moscow")


def test_the_same_file_as_yaml(tmp_path: Path) -> None:
    path = write(tmp_path, """
        connections:
          north:   {system: contact_center, url: "http://127.0.0.1:9001/cc", token: {env: T}}
          north-1c: {system: onec, url: "http://127.0.0.1:9001/zup/hs/wfm"}
        sites:
          north: {contact_center: north, onec: north-1c}
        """, "connections.yaml")
    found = load({"WFM_CONFIG": str(path), "T": "tok"})
    assert found.get(CONTACT_CENTER, "north").settings({"T": "tok"}).token == "tok"
    assert found.sites["north"].onec == "north-1c"


def test_a_secret_by_reference_only_and_its_value_never_echoed(tmp_path: Path) -> None:
    text = FLEET.replace('password = { env = "ZUP_NORTH_PASSWORD" }', 'password = "hunter2-literal"')
    with pytest.raises(ConfigError, match=r"\[connections.zup-north\] password: secrets never go") as caught:
        load_text(tmp_path, text)
    assert "hunter2" not in str(caught.value)
    found = load_text(tmp_path, FLEET)                 # the variable is missing: an error when used
    with pytest.raises(ConfigError, match="connection 'zup-north' password: environment variable "
                                          "ZUP_NORTH_PASSWORD is not set"):
        found.get(ONEC, "zup-north").settings({})
    with pytest.raises(ConfigError, match="Secret block 'cc-south-token'"):
        found.get(CONTACT_CENTER, "cc-south").settings({})


@pytest.mark.parametrize("change, message", [
    (('system = "onec"\nurl = "http://127.0.0.1:9002', 'system = "zup"\nurl = "http://127.0.0.1:9002'),
     r"\[connections.zup-south\] system: 'zup' is not one of contact_center, onec"),
    (("timeout = 12", "timeout = 12\nretries = 3"), r"\[connections.cc-south\]: unknown setting\(s\) retries"),
    (('url = "https://cc-south.example.com/api"', 'url = "ftp://x"'), r"\[connections.cc-south\] url: an http"),
    (("[connections.cc-south]", "[connections.'Cc South']"), r"\[connections.Cc South\]: the name must be"),
    (('contact_center = "cc-south"', 'contact_center = "cc-west"'),
     r"\[sites.south\] contact_center: no contact center connection named 'cc-west'"),
    (('timezone = "Asia/Yekaterinburg"', 'timezone = "Mars/Olympus"'), r"\[sites.north\] timezone: 'Mars/Olympus'"),
    (("[sites.south]", "[sites.south]\nlead = 1"), r"\[sites.south\]: unknown setting\(s\) lead"),
    (('[sites.south]\ncontact_center = "cc-south"\nonec = "zup-south"', "[sites.south]"),
     r"\[sites.south\]: a site names its contact_center"),
    (("timeout = 12", "timeout = 'soon'"), r"\[connections.cc-south\]: timeout and max_attempts are numbers"),
    (("[sites.north]", "[sites.north"), r"wfm.toml: not valid TOML: .*line"),
])
def test_every_mistake_is_one_line_naming_file_and_place(tmp_path: Path, change, message) -> None:
    old, new = change
    assert old in FLEET
    with pytest.raises(ConfigError, match=message) as caught:
        load_text(tmp_path, FLEET.replace(old, new))
    assert "\n" not in str(caught.value) and str(tmp_path) in str(caught.value)


def test_without_a_connections_section_the_variables_are_the_default_connection(tmp_path: Path) -> None:
    env = {"WFM_CC_URL": "http://127.0.0.1:9/cc", "WFM_CC_TOKEN": "t", "WFM_ONEC_URL": "http://127.0.0.1:9/zup",
           "WFM_ONEC_USERNAME": "wfm", "WFM_ONEC_PASSWORD": "p", "WFM_DEFAULT_TIMEZONE": "Asia/Omsk"}
    for found in (load(env), load({**env, "WFM_CONFIG": str(write(tmp_path, "[rules]\nx = 1\n"))})):
        assert [(c.name, c.system) for c in found.connections] == [(DEFAULT, CONTACT_CENTER), (DEFAULT, ONEC)]
        assert found.get(CONTACT_CENTER, DEFAULT).settings({}).token == "t"
        assert found.get(ONEC, DEFAULT).settings({}).password == "p"
        assert (found.sites[DEFAULT].contact_center, found.sites[DEFAULT].onec,
                found.sites[DEFAULT].timezone) == (DEFAULT, DEFAULT, "Asia/Omsk")
        assert len(found.named(DEFAULT)) == 2
    assert load({}).connections == () and load({}).sites == {}


def test_unknown_names_and_files_are_one_line(tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match=r"unknown connection 'west' \(.*wfm.toml\); known: cc-north, cc-south"):
        load_text(tmp_path, FLEET).named("west")
    with pytest.raises(ConfigError, match="WFM_CONFIG=.*nowhere.toml: no such file"):
        load({"WFM_CONFIG": str(tmp_path / "nowhere.toml")})


@pytest.mark.slow
def test_one_block_per_connection_and_secret_blocks(prefect_harness: None, tmp_path: Path) -> None:
    from prefect.blocks.system import Secret

    from blocks import ContactCenterConnection, OneCConnection
    from blocks.connections import block_name, connection_settings, save_connection_blocks

    Secret(value="south-token-9i").save("cc-south-token", overwrite=True)
    found = load_text(tmp_path, FLEET, ENV)
    south = found.get(CONTACT_CENTER, "cc-south")
    assert connection_settings(south, use_blocks=False).token == "south-token-9i"
    with pytest.MonkeyPatch.context() as patch:
        for name, value in ENV.items():
            patch.setenv(name, value)
        saved = save_connection_blocks(found)
    assert saved == ["wfm-cc-cc-north", "wfm-cc-cc-south", "wfm-onec-zup-north", "wfm-onec-zup-south"]
    assert ContactCenterConnection.load("wfm-cc-cc-north").settings().client_secret == "north-secret-7g"
    assert OneCConnection.load("wfm-onec-zup-north").settings().password == "zup-north-8h"
    # the saved block wins over the file when blocks are asked for; the env default keeps its old names
    assert connection_settings(found.get(ONEC, "zup-north"), use_blocks=True).password == "zup-north-8h"
    default = load({"WFM_CC_URL": "http://127.0.0.1:9/cc"}).get(CONTACT_CENTER, DEFAULT)
    assert block_name(default) == "wfm-contact-center"
    client = connection_settings(south, use_blocks=True).client()
    try:
        assert client.base_url.startswith("https://cc-south")
    finally:
        client.close()


def test_cli_lists_and_tests_connections_of_two_simulated_sites(tmp_path: Path, monkeypatch) -> None:
    """`wfm connections list | test NAME` against two simulated sites, one of them down."""
    from typer.testing import CliRunner

    from connectors.simulator import AuthConfig, ServerConfig, SimConfig
    from connectors.simulator.fleet import fleet_configs, start_fleet
    from wfm.cli import app

    base = ServerConfig(sim=SimConfig(agents=6, days=1), cc_auth=AuthConfig("bearer", token="fleet-token-0j"))
    with start_fleet(fleet_configs(["north", "south"], base)) as fleet:
        entries = []
        for name, running in fleet.items():
            entries.append(f"""
                [connections.{name}]
                system = "contact_center"
                url = "{running.cc_url}"
                token = {{ env = "CC_TOKEN" }}
                [connections.{name}-1c]
                system = "onec"
                url = "{running.onec_url}"
                username = "wfm"
                password = {{ env = "ZUP_PASSWORD" }}
                [sites.{name}]
                contact_center = "{name}"
                onec = "{name}-1c"
                """)
        monkeypatch.setenv("WFM_CONFIG", str(write(tmp_path, "".join(entries))))
        monkeypatch.setenv("CC_TOKEN", "fleet-token-0j")
        monkeypatch.setenv("ZUP_PASSWORD", "wfm")
        runner = CliRunner()
        listed = runner.invoke(app, ["connections", "list"])
        assert listed.exit_code == 0, listed.output
        assert all(n in listed.output for n in ("north-1c", "south-1c", fleet["south"].cc_url, "bearer"))
        ok = runner.invoke(app, ["connections", "test", "north"])
        assert ok.exit_code == 0 and "6 agents" in ok.output and "fleet-token" not in ok.output, ok.output
        checked = runner.invoke(app, ["check"])           # wfm check: every connection of the file, named
        assert checked.exit_code == 0, checked.output
        assert all(f"{system} {n}" in checked.output for system, n in (
            ("contact center", "north"), ("contact center", "south"), ("1C:ZUP", "north-1c"), ("1C:ZUP", "south-1c")))
        fleet["south"].stop()
        down = runner.invoke(app, ["connections", "test", "south-1c", "--timeout", "2"])
        assert down.exit_code == 1 and "connection refused" in down.output, down.output
        unknown = runner.invoke(app, ["connections", "test", "west"])
        assert unknown.exit_code == 1 and "unknown connection 'west'" in unknown.output
        monkeypatch.delenv("CC_TOKEN")
        missing = runner.invoke(app, ["connections", "test", "north"])
        assert missing.exit_code == 1 and "CC_TOKEN is not set" in missing.output
