"""The blocks: Prefect's block standards, WFM_* round trips, clients with the right auth, no secret shown."""

from __future__ import annotations

import base64
import json
import logging

import httpx
import pytest
from prefect.blocks.core import Block
from prefect.exceptions import ObjectNotFound
from prefect.settings import PREFECT_API_URL, PREFECT_SERVER_EPHEMERAL_ENABLED, temporary_settings
from prefect.testing.standard_test_suites import BlockStandardTestSuite
from prefect.utilities.dispatch import get_registry_for_type
from prefect.utilities.importtools import to_qualified_name
from pydantic import ValidationError

from blocks import (
    BLOCK_NAMES,
    ContactCenterConnection,
    LakeLocation,
    OneCConnection,
    WarehouseConnection,
    load_settings,
)
from connectors.config.auth import OAuth2ClientCredentials
from connectors.settings import contact_center_from_env, onec_from_env

CC_PASSWORD, CC_TOKEN, CC_CLIENT_SECRET = "cc-password-1a", "cc-token-2b", "cc-client-secret-3c"
ONEC_PASSWORD, DB_PASSWORD, LAKE_SECRET = "onec-password-4d", "db-password-5e", "lake-secret-6f"
SECRETS = (CC_PASSWORD, CC_TOKEN, CC_CLIENT_SECRET, ONEC_PASSWORD, DB_PASSWORD, LAKE_SECRET)
ALL_BLOCKS = {ContactCenterConnection, OneCConnection, WarehouseConnection, LakeLocation}


# -- Prefect's standards ----------------------------------------------------------------------------

@pytest.fixture(scope="module")
def logo_url():
    """The shipped logo served on loopback: the suite's image check opens a URL, and CI has no internet."""
    import threading
    from functools import partial
    from http.server import SimpleHTTPRequestHandler, ThreadingHTTPServer
    from pathlib import Path

    import blocks

    class Quiet(SimpleHTTPRequestHandler):
        def log_message(self, *args) -> None:
            pass

    assets = Path(blocks.__file__).parent / "assets"
    server = ThreadingHTTPServer(("127.0.0.1", 0), partial(Quiet, directory=str(assets)))
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    yield f"http://127.0.0.1:{server.server_address[1]}/wfm.png"
    server.shutdown()
    server.server_close()


class _Standards(BlockStandardTestSuite):
    @pytest.fixture(autouse=True)
    def served_logo(self, block: type[Block], logo_url: str, monkeypatch: pytest.MonkeyPatch) -> None:
        monkeypatch.setattr(block, "_logo_url", logo_url)


class TestContactCenterConnectionStandards(_Standards):
    @pytest.fixture
    def block(self) -> type[Block]:
        return ContactCenterConnection


class TestOneCConnectionStandards(_Standards):
    @pytest.fixture
    def block(self) -> type[Block]:
        return OneCConnection


class TestWarehouseConnectionStandards(_Standards):
    @pytest.fixture
    def block(self) -> type[Block]:
        return WarehouseConnection


class TestLakeLocationStandards(_Standards):
    @pytest.fixture
    def block(self) -> type[Block]:
        return LakeLocation


def test_every_block_of_the_package_runs_the_standard_suite() -> None:
    registered = {cls for cls in get_registry_for_type(Block).values()
                  if to_qualified_name(cls).startswith("blocks.")}
    assert registered == ALL_BLOCKS
    assert {block_type for block_type, _ in BLOCK_NAMES.values()} == ALL_BLOCKS


# -- from the environment -----------------------------------------------------------------------------

CC_ENVIRONMENTS = {
    "none": {"WFM_CC_URL": "https://cc.test/api"},
    "basic": {"WFM_CC_URL": "https://cc.test/api", "WFM_CC_USERNAME": "wfm", "WFM_CC_PASSWORD": CC_PASSWORD},
    "bearer": {"WFM_CC_URL": "https://cc.test/api", "WFM_CC_TOKEN": CC_TOKEN, "WFM_HTTP_TIMEOUT": "12"},
    "apikey": {"WFM_CC_URL": "https://cc.test/api", "WFM_CC_AUTH": "apikey", "WFM_CC_API_KEY": CC_TOKEN,
               "WFM_CC_API_KEY_HEADER": "X-Wfm-Key"},
    "oauth2": {"WFM_CC_URL": "https://cc.test/api", "WFM_CC_CLIENT_ID": "wfm",
               "WFM_CC_CLIENT_SECRET": CC_CLIENT_SECRET},
}


@pytest.mark.parametrize("kind", sorted(CC_ENVIRONMENTS))
def test_contact_center_from_env_round_trips(kind: str) -> None:
    env = CC_ENVIRONMENTS[kind]
    block = ContactCenterConnection.from_env(env)
    assert block is not None and block.auth == kind
    assert block.settings() == contact_center_from_env(env)


@pytest.mark.parametrize("env", [
    {"WFM_ONEC_URL": "http://onec.test/zup/hs/wfm"},
    {"WFM_ONEC_URL": "http://onec.test/zup/hs/wfm", "WFM_ONEC_USERNAME": "wfm",
     "WFM_ONEC_PASSWORD": ONEC_PASSWORD, "WFM_HTTP_TIMEOUT": "90"},
], ids=["anonymous", "basic"])
def test_onec_from_env_round_trips(env: dict[str, str]) -> None:
    block = OneCConnection.from_env(env)
    assert block is not None
    assert block.settings() == onec_from_env(env)


def test_from_env_reads_the_process_environment(monkeypatch: pytest.MonkeyPatch, tmp_path) -> None:
    monkeypatch.setenv("WFM_CC_URL", "https://cc.test/api")
    monkeypatch.setenv("WFM_CC_TOKEN", CC_TOKEN)
    monkeypatch.setenv("WFM_DATABASE_URL", f"postgresql://wfm:{DB_PASSWORD}@db.test:5432/wfm")
    monkeypatch.setenv("WFM_LAKE_PATH", str(tmp_path))
    assert ContactCenterConnection.from_env().settings().token == CC_TOKEN
    assert WarehouseConnection.from_env().dsn() == f"postgresql://wfm:{DB_PASSWORD}@db.test:5432/wfm"
    assert LakeLocation.from_env().path == str(tmp_path)


@pytest.mark.parametrize("block_type", sorted(ALL_BLOCKS, key=lambda cls: cls.__name__))
def test_from_env_is_none_when_the_system_is_not_configured(block_type: type[Block]) -> None:
    assert block_type.from_env({}) is None


@pytest.mark.parametrize("url, dsn, sqlalchemy_url", [
    ("postgresql://wfm:pw@db.test/wfm", "postgresql://wfm:pw@db.test/wfm", "postgresql+psycopg://wfm:pw@db.test/wfm"),
    ("postgres://wfm@db.test:6432/wfm", "postgresql://wfm@db.test:6432/wfm",
     "postgresql+psycopg://wfm@db.test:6432/wfm"),
    ("postgresql+psycopg2://db.test/wfm", "postgresql://db.test/wfm", "postgresql+psycopg2://db.test/wfm"),
])
def test_warehouse_urls_for_psycopg_and_sqlalchemy(url: str, dsn: str, sqlalchemy_url: str) -> None:
    warehouse = WarehouseConnection(url=url)
    assert (warehouse.dsn(), warehouse.sqlalchemy_url()) == (dsn, sqlalchemy_url)


def test_the_retired_warehouse_schema_fields_are_dropped_and_a_changed_one_is_reported(
        caplog: pytest.LogCaptureFixture) -> None:
    """`schema_name`/`meta_schema` were shown in the UI and read by nothing: gone from the form,
    accepted (and dropped) from an old document, a value that was never honoured is reported."""
    assert {"schema_name", "meta_schema"}.isdisjoint(WarehouseConnection.model_json_schema()["properties"])
    with caplog.at_level(logging.WARNING, logger="blocks.warehouse"):
        quiet = WarehouseConnection(url="postgresql://db.test/wfm", schema_name="wfm", meta_schema="wfm_meta")
    assert caplog.text == "" and "schema_name" not in quiet.model_dump()
    with caplog.at_level(logging.WARNING, logger="blocks.warehouse"):
        moved = WarehouseConnection(url="postgresql://db.test/wfm", schema_name="analytics")
    assert "schema_name='analytics' is ignored; the tables live in schema wfm" in caplog.text
    assert "schema_name" not in moved.model_dump() and moved.dsn() == "postgresql://db.test/wfm"


def test_lake_builds_its_filesystem_with_the_storage_options(tmp_path) -> None:
    fs, root = LakeLocation(path=str(tmp_path / "lake")).filesystem()
    assert "file" in fs.protocol and root == str(tmp_path / "lake")
    memory = LakeLocation(path="memory://lake", storage_options={"skip_instance_cache": True})
    fs, root = memory.filesystem()
    assert "memory" in fs.protocol and root == "/lake"


# -- clients ------------------------------------------------------------------------------------------

@pytest.mark.parametrize("fields, header, value", [
    ({"auth": "basic", "username": "wfm", "password": CC_PASSWORD}, "Authorization",
     "Basic " + base64.b64encode(f"wfm:{CC_PASSWORD}".encode()).decode()),
    ({"auth": "bearer", "token": CC_TOKEN}, "Authorization", f"Bearer {CC_TOKEN}"),
    ({"auth": "apikey", "token": CC_TOKEN, "api_key_header": "X-Wfm-Key"}, "X-Wfm-Key", CC_TOKEN),
], ids=["basic", "bearer", "apikey"])
def test_client_sends_the_configured_credentials(fields: dict, header: str, value: str) -> None:
    block = ContactCenterConnection(url="https://cc.test/api", max_attempts=3, timeout=7, **fields)
    with block.client() as client:
        request = client._http.build_request("GET", "/personnel")
        sent = next(client._http.auth.sync_auth_flow(request))
        assert sent.headers[header] == value
        assert client.retry.attempts == 3 and client.base_url == "https://cc.test/api/"


def test_oauth2_client_asks_the_default_token_endpoint() -> None:
    block = ContactCenterConnection(url="https://cc.test/api/", auth="oauth2", client_id="wfm",
                                    client_secret=CC_CLIENT_SECRET)
    with block.client() as client:
        auth = client._http.auth
        assert isinstance(auth, OAuth2ClientCredentials)
        assert (auth.token_url, auth.client_id) == ("https://cc.test/api/oauth/token", "wfm")


def test_onec_client_uses_basic_only_with_a_user() -> None:
    with OneCConnection(url="http://onec.test/zup/hs/wfm").client() as client:
        assert client._http.auth is None
    with OneCConnection(url="http://onec.test/zup/hs/wfm", username="wfm", password=ONEC_PASSWORD).client() as client:
        assert isinstance(client._http.auth, httpx.BasicAuth) and not client.not_found_is_empty


def test_a_style_without_its_credentials_fails_when_the_client_is_built() -> None:
    with pytest.raises(ValueError, match="auth bearer needs token"):
        ContactCenterConnection(url="https://cc.test/api", auth="bearer").client()


# -- secrets ------------------------------------------------------------------------------------------

def blocks_holding_secrets() -> dict[str, Block]:
    return {
        "cc-basic": ContactCenterConnection(url="https://cc.test/api", auth="basic", username="wfm",
                                            password=CC_PASSWORD),
        "cc-bearer": ContactCenterConnection(url="https://cc.test/api", auth="bearer", token=CC_TOKEN),
        "cc-oauth2": ContactCenterConnection(url="https://cc.test/api", auth="oauth2", client_id="wfm",
                                             client_secret=CC_CLIENT_SECRET),
        "onec": OneCConnection(url="http://onec.test/zup/hs/wfm", username="wfm", password=ONEC_PASSWORD),
        "warehouse": WarehouseConnection(url=f"postgresql://wfm:{DB_PASSWORD}@db.test:5432/wfm"),
        "lake": LakeLocation(path="s3://wfm-lake/prod", storage_options={"key": "wfm", "secret": LAKE_SECRET}),
    }


@pytest.mark.parametrize("name", sorted(blocks_holding_secrets()))
def test_no_secret_in_repr_str_or_json_dump(name: str) -> None:
    block = blocks_holding_secrets()[name]
    shown = [repr(block), str(block), block.model_dump_json(), json.dumps(block.model_dump(mode="json"))]
    if hasattr(block, "settings"):
        shown += [repr(block.settings()), str(block.settings())]
    if hasattr(block, "client"):
        with block.client() as client:
            shown.append(repr(client._http.auth))
    for text in shown:
        assert not any(secret in text for secret in SECRETS), text


@pytest.mark.parametrize("build", [
    lambda: ContactCenterConnection(url=f"https://wfm:{CC_PASSWORD}@cc.test/api"),
    lambda: OneCConnection(url="http://onec.test/zup", password=[ONEC_PASSWORD]),
    lambda: WarehouseConnection(url=f"mysql://wfm:{DB_PASSWORD}@db.test/wfm"),
    lambda: LakeLocation(path="s3://wfm-lake", storage_options=LAKE_SECRET),
], ids=["cc-url-with-password", "onec-password-not-a-string", "warehouse-not-postgres", "lake-options-not-a-dict"])
def test_a_rejected_value_is_not_echoed(build) -> None:
    with pytest.raises(ValidationError) as failure:
        build()
    assert not any(secret in str(failure.value) for secret in SECRETS)


# -- load_settings ------------------------------------------------------------------------------------

ENV = {**CC_ENVIRONMENTS["bearer"], "WFM_ONEC_URL": "http://onec.test/zup/hs/wfm",
       "WFM_DATABASE_URL": f"postgresql://wfm:{DB_PASSWORD}@db.test/wfm", "WFM_LAKE_PATH": "/srv/lake"}


def saved(monkeypatch: pytest.MonkeyPatch, found: dict[str, Block], failure: Exception | None = None) -> list[str]:
    """Replace `Block.load` of our blocks with a lookup in `found`; returns the names asked for."""
    asked: list[str] = []

    def load(cls, name: str, **kwargs: object) -> Block:
        asked.append(name)
        if failure is not None:
            raise failure
        if name in found:
            return found[name]
        raise ValueError(f"Unable to find block document named {name}") from ObjectNotFound(Exception("404"))

    for block_type in ALL_BLOCKS:
        monkeypatch.setattr(block_type, "load", classmethod(load))
    return asked


def test_load_settings_reads_the_environment_without_asking_prefect(monkeypatch: pytest.MonkeyPatch) -> None:
    asked = saved(monkeypatch, {})
    connections = load_settings(ENV)
    assert connections.contact_center.settings() == contact_center_from_env(ENV)
    assert connections.onec.settings() == onec_from_env(ENV)
    assert connections.warehouse.dsn() == ENV["WFM_DATABASE_URL"] and connections.lake.path == "/srv/lake"
    assert set(connections.origin.values()) == {"environment"} and asked == []


def test_load_settings_prefers_saved_blocks_when_asked(monkeypatch: pytest.MonkeyPatch) -> None:
    onec = OneCConnection(url="http://onec.saved/zup/hs/wfm", username="wfm", password=ONEC_PASSWORD)
    asked = saved(monkeypatch, {"wfm-onec": onec})
    connections = load_settings({**ENV, "WFM_USE_BLOCKS": "1"})
    assert connections.onec is onec and connections.origin["onec"] == "block wfm-onec"
    assert connections.contact_center.url == "https://cc.test/api"
    assert connections.origin["contact_center"] == "environment"
    assert asked == ["wfm-contact-center", "wfm-onec", "wfm-warehouse", "wfm-lake"]


def test_load_settings_falls_back_to_the_environment_when_prefect_is_unreachable(
        monkeypatch: pytest.MonkeyPatch, caplog: pytest.LogCaptureFixture) -> None:
    asked = saved(monkeypatch, {}, failure=httpx.ConnectError("connection refused"))
    with caplog.at_level(logging.WARNING, logger="blocks"):
        connections = load_settings(ENV, use_blocks=True)
    assert asked == ["wfm-contact-center"]   # no second attempt at a dead API
    assert set(connections.origin.values()) == {"environment"}
    assert "Prefect API unreachable" in caplog.text


def test_load_settings_skips_the_lookup_when_no_prefect_api_is_configured(monkeypatch: pytest.MonkeyPatch) -> None:
    asked = saved(monkeypatch, {})
    with temporary_settings({PREFECT_API_URL: None, PREFECT_SERVER_EPHEMERAL_ENABLED: False}):
        connections = load_settings(ENV, use_blocks=True)
    assert asked == [] and connections.onec is not None


def test_load_settings_does_not_hide_a_broken_saved_block(monkeypatch: pytest.MonkeyPatch) -> None:
    saved(monkeypatch, {}, failure=ValueError("block document does not match the schema"))
    with pytest.raises(ValueError, match="does not match"):
        load_settings(ENV, use_blocks=True)


@pytest.mark.slow
def test_saved_blocks_keep_their_secrets_through_the_prefect_api(prefect_harness: None) -> None:
    """A real save and load: SecretStr and SecretDict values survive, and load_settings finds them."""
    to_save = blocks_holding_secrets()
    for attribute, key in (("contact_center", "cc-bearer"), ("onec", "onec"), ("warehouse", "warehouse"),
                           ("lake", "lake")):
        to_save[key].save(BLOCK_NAMES[attribute][1], overwrite=True)
    connections = load_settings({}, use_blocks=True)
    assert connections.contact_center.settings().token == CC_TOKEN
    assert connections.onec.settings().password == ONEC_PASSWORD
    assert DB_PASSWORD in connections.warehouse.dsn()
    assert connections.lake.storage_options.get_secret_value()["secret"] == LAKE_SECRET
    assert set(connections.origin.values()) == {"block wfm-contact-center", "block wfm-onec",
                                                "block wfm-warehouse", "block wfm-lake"}


@pytest.mark.slow
def test_a_warehouse_document_saved_with_the_retired_fields_still_loads(prefect_harness: None) -> None:
    """A block document saved by the older block type (its data carries the schema fields) loads."""
    from prefect.client.orchestration import get_client
    from prefect.client.schemas.actions import BlockDocumentCreate

    WarehouseConnection(url="postgresql://db.test/wfm").save("wfm-test-current", overwrite=True)
    with get_client(sync_client=True) as client:
        current = client.read_block_document_by_name(
            "wfm-test-current", block_type_slug=WarehouseConnection.get_block_type_slug())
        client.create_block_document(BlockDocumentCreate(
            name="wfm-test-retired", block_type_id=current.block_type_id, block_schema_id=current.block_schema_id,
            data={"url": f"postgresql://wfm:{DB_PASSWORD}@db.test/wfm", "schema_name": "wfm",
                  "meta_schema": "wfm_meta"}))
    try:
        loaded = WarehouseConnection.load("wfm-test-retired")
        assert loaded.dsn() == f"postgresql://wfm:{DB_PASSWORD}@db.test/wfm"
        assert "schema_name" not in loaded.model_dump()
    finally:
        for name in ("wfm-test-current", "wfm-test-retired"):
            WarehouseConnection.delete(name)


@pytest.mark.slow
def test_the_saved_lakes_storage_options_reach_the_lake_writer_and_wfm_check(
        prefect_harness: None, tmp_path, monkeypatch: pytest.MonkeyPatch) -> None:
    """`storage_options` open the lake for the writer (and for `wfm check`), not only for the UI:
    fsspec's `dir` filesystem puts every file under the `path` option, so the partition is found
    there, read back by pyarrow, only because the options were used."""
    import datetime as dt

    import pyarrow as pa
    import pyarrow.parquet as pq

    from engine.catalog import STREAMS
    from engine.landing import lake
    from engine.settings import resolve_settings
    from wfm.check import check_lake

    root = tmp_path / "object-store"
    saved_lake = LakeLocation(path="dir://", storage_options={"path": str(root), "target_protocol": "file"})
    saved_lake.save("wfm-lake", overwrite=True)
    monkeypatch.setenv("WFM_USE_BLOCKS", "1")
    monkeypatch.setenv("WFM_DATABASE_URL", "postgresql://db.test/wfm")   # resolved, never opened
    monkeypatch.chdir(tmp_path)   # a writer ignoring the options would write `dir://`'s '' root here
    try:
        settings = resolve_settings()
        stream = STREAMS["agent_logins"]
        table = pa.Table.from_pylist([], schema=lake.lake_schema(stream))
        lake.write_partition(settings.lake_path, stream, lake.partition_name(dt.date(2026, 11, 2)), table)
        written = root / "agent_logins" / "date=2026-11-02" / lake.FILE
        assert pq.read_table(written).schema == lake.lake_schema(stream)
        assert not (tmp_path / "agent_logins").exists()
        checked = check_lake(saved_lake)
        assert checked.status == "OK", checked.detail
        assert sorted(p.name for p in root.iterdir()) == ["agent_logins"]   # the probe is gone
    finally:
        LakeLocation.delete("wfm-lake")
