"""The simulator's HTTP server over real loopback HTTP: injected faults and authentication."""

from __future__ import annotations

import base64
import datetime as dt
import email.utils
import socket
import time

import httpx
import orjson
import pytest

from connectors.simulator import AuthConfig, ServerConfig, start_simulator
from connectors.simulator.faults import FaultInjector, FaultSpec
from connectors.simulator.world import SimConfig

UTC = dt.timezone.utc
WORLD = SimConfig(seed=11, agents=12, start=dt.date(2024, 1, 1), days=2)
ONEC_AGENTS = "/zup/hs/wfm/agents/2024-01-01/2024-01-31"


def start(**overrides):
    return start_simulator(ServerConfig(sim=WORLD, **overrides))


# --- faults ------------------------------------------------------------------------------

def test_fault_spec_errors_name_the_bad_item():
    for spec, bad in (("500=2", "500=2"), ("teapot=0.1", "teapot"), ("503", "503"),
                      ("retry_after_form=soon", "soon"), ("500=0.6,503=0.6", "> 1")):
        with pytest.raises(ValueError, match=bad):
            FaultSpec.parse(spec)


def test_fault_sequence_is_deterministic_for_a_seed():
    def draws(seed):
        injector = FaultInjector("500=0.2,503=0.2,drop=0.1", seed)
        return [injector.decide("cc", "/personnel").kind for _ in range(50)]
    assert draws(3) == draws(3) != draws(4)


@pytest.mark.parametrize("kind", ["500", "502", "503", "504"])
def test_every_answer_has_the_configured_error_status(kind):
    with start(faults=f"{kind}=1.0") as simulator, httpx.Client(base_url=simulator.url) as client:
        answers = [client.get("/cc/personnel") for _ in range(4)]
        assert {r.status_code for r in answers} == {int(kind)}
        if kind == "500":
            assert set(answers[0].json()) == {"field", "message", "description"}
        onec = client.get(ONEC_AGENTS, auth=("wfm", "wfm")).status_code
        assert onec == (500 if kind == "504" else int(kind))      # 1C has no 504: it becomes 500
        assert simulator.stats()["faults"] == ({kind: 4, "500": 1} if kind == "504" else {kind: 5})


def test_429_carries_retry_after_in_seconds_or_as_an_http_date():
    with start(faults="429=1.0,retry_after=3") as simulator, httpx.Client(base_url=simulator.url) as client:
        response = client.get("/cc/personnel")
        assert response.status_code == 429 and response.headers["Retry-After"] == "3"
        assert client.get(ONEC_AGENTS, auth=("wfm", "wfm")).status_code == 500   # 1C knows no 429
        simulator.set_faults("429=1.0,retry_after=3,retry_after_form=http-date")
        retry_at = email.utils.parsedate_to_datetime(client.get("/cc/personnel").headers["Retry-After"])
        assert 0 < (retry_at - dt.datetime.now(UTC)).total_seconds() <= 4


def test_drop_closes_the_connection_without_an_answer():
    with start(faults="drop=1.0") as simulator, httpx.Client(base_url=simulator.cc_url) as client:
        with pytest.raises(httpx.TransportError):
            client.get("/personnel")
        assert simulator.requests()[-1]["status"] is None


def raw_get(port: int, path: str) -> tuple[dict[str, str], bytes]:
    """One GET over a bare socket, read until the server closes: headers and the body received."""
    with socket.create_connection(("127.0.0.1", port), timeout=5) as conn:
        conn.sendall(f"GET {path} HTTP/1.1\r\nHost: sim\r\nConnection: close\r\n\r\n".encode())
        chunks = []
        for _ in range(10_000):
            chunk = conn.recv(65536)
            if not chunk:
                break
            chunks.append(chunk)
    head, _, body = b"".join(chunks).partition(b"\r\n\r\n")
    headers = dict(line.decode().lower().split(": ", 1) for line in head.split(b"\r\n")[1:])
    return headers, body


def test_truncate_sends_less_body_than_content_length():
    with start(faults="truncate=1.0") as simulator:
        headers, body = raw_get(simulator.port, "/cc/personnel")
        assert 0 < len(body) < int(headers["content-length"])
        with pytest.raises(orjson.JSONDecodeError):
            orjson.loads(body)
        with httpx.Client(base_url=simulator.cc_url) as client, pytest.raises(httpx.RemoteProtocolError):
            client.get("/personnel")


def test_timeout_fault_answers_after_slow_seconds():
    with start(faults="timeout=1.0,slow_seconds=1") as simulator:
        with httpx.Client(base_url=simulator.cc_url, timeout=0.3) as client, pytest.raises(httpx.ReadTimeout):
            client.get("/personnel")
        simulator.set_faults("timeout=1.0,slow_seconds=0.3")
        with httpx.Client(base_url=simulator.cc_url, timeout=5) as client:
            began = time.monotonic()
            assert client.get("/personnel").status_code == 200
            assert time.monotonic() - began >= 0.3


def test_admin_api_sets_faults_and_clock_and_reports_requests():
    with start() as simulator, httpx.Client(base_url=simulator.url) as client:
        bad = client.post("/_sim/faults", json={"spec": "500=0.1,teapot=1"})
        assert bad.status_code == 400 and "teapot" in bad.json()["message"]
        assert client.post("/_sim/faults", json={"spec": "503=1"}).json() == {"spec": "503=1"}
        assert client.get("/cc/personnel").status_code == 503
        client.post("/_sim/faults", json={"spec": ""})
        assert client.post("/_sim/clock", json={"now": "2024-01-01T12:00:00+03:00"}).status_code == 200
        assert simulator.stats()["clock"] == "2024-01-01T09:00:00+00:00"
        client.get("/cc/online/agentStatus")
        log = client.get("/_sim/requests", params={"limit": 1}).json()["requests"]
        assert log == [{"method": "GET", "path": "/cc/online/agentStatus", "status": 200, "fault": None, "query": {}}]
        assert client.get("/_sim/stats").json()["requests"] == {"/cc/personnel": 1, "/cc/online/agentStatus": 1}
        client.post("/_sim/reset-stats")
        assert simulator.stats()["requests"] == {} and simulator.stats()["faults"] == {}


# --- authentication ----------------------------------------------------------------------

@pytest.mark.parametrize("auth, good, bad", [
    (AuthConfig("basic", username="u", password="p"), {"auth": ("u", "p")}, {"auth": ("u", "wrong")}),
    (AuthConfig("bearer", token="t0k"), {"headers": {"Authorization": "Bearer t0k"}},
     {"headers": {"Authorization": "Bearer nope"}}),
    (AuthConfig("apikey", header="X-Key", token="k3y"), {"headers": {"X-Key": "k3y"}},
     {"headers": {"X-API-Key": "k3y"}}),
    (AuthConfig("none"), {}, None),
])
def test_static_auth_kinds(auth, good, bad):
    with start(cc_auth=auth) as simulator, httpx.Client(base_url=simulator.cc_url) as client:
        assert client.get("/personnel", **good).status_code == 200
        if bad is not None:
            denied = client.get("/personnel", **bad)
            assert denied.status_code == 401 and "message" in denied.json()
            assert client.get("/personnel").status_code == 401


def test_onec_answers_401_from_its_web_server_on_wrong_credentials():
    with start() as simulator, httpx.Client(base_url=simulator.url) as client:
        assert client.get(ONEC_AGENTS, auth=("wfm", "bad")).status_code == 401
    auth = AuthConfig("oauth2", client_id="zup", client_secret="z")
    with start(onec_auth=auth) as simulator, httpx.Client(base_url=simulator.url) as client:
        assert client.get(ONEC_AGENTS).status_code == 401
        form = {"grant_type": "client_credentials", "client_id": "zup", "client_secret": "z"}
        token = client.post("/zup/oauth/token", data=form).json()["access_token"]
        assert client.get(ONEC_AGENTS, headers={"Authorization": f"Bearer {token}"}).status_code != 401


def test_oauth2_tokens_are_issued_expire_and_can_be_revoked():
    auth = AuthConfig("oauth2", client_id="wfm", client_secret="s3cret", token_ttl=1)
    with start(cc_auth=auth) as simulator, httpx.Client(base_url=simulator.cc_url) as client:
        form = {"grant_type": "client_credentials", "client_id": "wfm", "client_secret": "s3cret"}
        issued = client.post("/oauth/token", data=form).json()
        assert issued["token_type"] == "Bearer" and issued["expires_in"] == 1
        bearer = {"Authorization": f"Bearer {issued['access_token']}"}
        assert client.get("/personnel", headers=bearer).status_code == 200
        assert client.post("/oauth/token", data={**form, "client_secret": "x"}).status_code == 401
        basic = base64.b64encode(b"wfm:s3cret").decode()
        again = client.post("/oauth/token", data={"grant_type": "client_credentials"},
                            headers={"Authorization": f"Basic {basic}"}).json()
        assert client.get("/personnel").status_code == 401
        time.sleep(1.1)
        expired = client.get("/personnel", headers=bearer)
        assert expired.status_code == 401 and 'error="invalid_token"' in expired.headers["WWW-Authenticate"]
        fresh = {"Authorization": f"Bearer {client.post('/oauth/token', data=form).json()['access_token']}"}
        assert client.get("/personnel", headers=fresh).status_code == 200
        assert client.post(simulator.url + "/_sim/revoke-tokens").json()["revoked"] >= 1
        assert client.get("/personnel", headers=fresh).status_code == 401
        assert again["access_token"] not in str(simulator.requests()) and "s3cret" not in str(simulator.stats())
