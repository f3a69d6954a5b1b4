"""The replay source: every historic answer recorded once from the simulator, then served as stored bytes.

The simulator computes its answers in pure Python (one process, one GIL): at 1.28M rows that is
most of what any contender's extract costs, so a ratio against it says little about the pipeline.
The replay source records each answer the benchmark will ask for (the agent-status requests and
`/personnel`) from the simulator once, untimed, and then serves those bytes from memory in a
process of its own: uvicorn (HTTP/1.1, keep-alive) and a bare ASGI app, so a request costs what
the loopback network and the client's JSON decoding cost.

It answers the simulator's paths (`/cc/...`, `/zup/...`) and query strings. The key of an answer
is its method, path and query parameters (order-insensitive). Anything it has not recorded — the
token endpoint, an incremental run's window that ends "now" — is forwarded to the simulator once
with its body and auth headers, counted as a miss, and kept if it is a GET, so a second identical
request is served from memory. `GET /_replay/stats` says how many hits and misses there were.
"""

from __future__ import annotations

import asyncio
import multiprocessing as mp
import socket
import threading
from collections.abc import Iterator, Sequence
from concurrent.futures import ThreadPoolExecutor
from contextlib import contextmanager
from dataclasses import dataclass
from urllib.parse import parse_qsl

import common
import orjson

HOP_BY_HOP = {"connection", "keep-alive", "transfer-encoding", "content-length", "host", "date", "server",
              "accept-encoding", "content-encoding"}
RECORD_IN_FLIGHT = 4


@dataclass(frozen=True)
class Replay:
    """Where the replay source answers, like `common.Simulator`; `recorded` answers and their bytes."""

    url: str
    cc_url: str
    onec_url: str
    recorded: int
    bytes: int
    seconds: float   # recording them from the simulator (untimed for every contender)

    def stats(self) -> dict:
        import httpx

        return httpx.get(f"{self.url}/_replay/stats", timeout=10).json()


def key(method: str, path: str, query: bytes | str) -> tuple:
    text = query.decode("latin-1") if isinstance(query, bytes) else query
    return method.upper(), path, tuple(sorted(parse_qsl(text, keep_blank_values=True)))


Answer = tuple[int, list[tuple[bytes, bytes]], bytes]


def _kept_headers(headers) -> list[tuple[bytes, bytes]]:
    return [(k.lower().encode("latin-1"), v.encode("latin-1")) for k, v in headers.items()
            if k.lower() not in HOP_BY_HOP]


def record(sim_url: str, targets: Sequence[tuple[str, dict | None]]) -> dict[tuple, Answer]:
    """GET every (path, params) from the simulator (4 in flight): {key: (status, headers, body)}."""
    import httpx

    limits = httpx.Limits(max_connections=RECORD_IN_FLIGHT, max_keepalive_connections=RECORD_IN_FLIGHT)
    with httpx.Client(base_url=sim_url, limits=limits, timeout=600) as http, \
            ThreadPoolExecutor(RECORD_IN_FLIGHT) as pool:
        def get(target: tuple[str, dict | None]) -> tuple[tuple, Answer]:
            response = http.get(target[0], params=target[1])
            url = response.request.url
            return key("GET", url.path, url.query), (response.status_code, _kept_headers(response.headers),
                                                     response.content)
        return dict(pool.map(get, targets))


class _App:
    """The ASGI app: recorded bytes from memory, anything else forwarded to the simulator once."""

    def __init__(self, sim_url: str, answers: dict[tuple, Answer]) -> None:
        self.sim_url = sim_url
        self.answers = answers
        self.hits = self.misses = 0
        self.client = None

    async def __call__(self, scope, receive, send) -> None:
        if scope["type"] != "http":
            return
        method, path = scope["method"], scope["path"]
        if path == "/_replay/stats":
            body = orjson.dumps({"hits": self.hits, "misses": self.misses, "answers": len(self.answers)})
            return await _send(send, (200, [(b"content-type", b"application/json")], body))
        wanted = key(method, path, scope["query_string"])
        answer = self.answers.get(wanted)
        if answer is None:
            self.misses += 1
            answer = await self._forward(scope, receive)
            if method == "GET" and answer[0] < 500:
                self.answers[wanted] = answer
        else:
            self.hits += 1
        await _send(send, answer)

    async def _forward(self, scope, receive) -> Answer:
        import httpx

        if self.client is None:
            self.client = httpx.AsyncClient(base_url=self.sim_url, timeout=600)
        body = b""
        while True:
            message = await receive()
            body += message.get("body", b"")
            if not message.get("more_body"):
                break
        headers = [(k, v) for k, v in scope["headers"] if k.decode("latin-1").lower() not in HOP_BY_HOP]
        target = scope["path"] + ("?" + scope["query_string"].decode("latin-1") if scope["query_string"] else "")
        response = await self.client.request(scope["method"], target, content=body or None, headers=headers)
        return response.status_code, _kept_headers(response.headers), response.content


async def _send(send, answer: Answer) -> None:
    status, headers, body = answer
    await send({"type": "http.response.start", "status": status,
                "headers": [*headers, (b"content-length", str(len(body)).encode())]})
    await send({"type": "http.response.body", "body": body})


def _serve(sim_url: str, targets: list, conn, stop) -> None:
    """The child-process body: record, report where it listens, serve until `stop` is set."""
    import time

    import uvicorn

    started = time.perf_counter()
    answers = record(sim_url, targets)
    seconds = time.perf_counter() - started
    sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    sock.bind(("127.0.0.1", 0))
    sock.listen(128)   # connections wait in the backlog until uvicorn takes over the socket
    server = uvicorn.Server(uvicorn.Config(_App(sim_url, answers), http="h11", lifespan="off", access_log=False,
                                           log_level="warning", timeout_keep_alive=120))
    threading.Thread(target=lambda: (stop.wait(), setattr(server, "should_exit", True)), daemon=True).start()
    conn.send((f"http://127.0.0.1:{sock.getsockname()[1]}", len(answers),
               sum(len(body) for _, _, body in answers.values()), seconds))
    asyncio.run(server.serve(sockets=[sock]))


def targets_of(windows: list) -> list[tuple[str, dict | None]]:
    """The simulator-relative (path, params) of `/personnel` and of every agent-status request."""
    import floor

    out: list[tuple[str, dict | None]] = [("/cc/personnel", None)]
    for window in windows:
        request = floor.STREAM.request(window)
        out.append(("/cc" + request.path, request.params))
    return out


@contextmanager
def replay(sim: common.Simulator, windows: list) -> Iterator[Replay]:
    """A replay source of `windows` (and `/personnel`) in its own process, in front of `sim`."""
    ctx = mp.get_context("spawn")
    parent, child = ctx.Pipe()
    stop = ctx.Event()
    proc = ctx.Process(target=_serve, args=(sim.url, targets_of(windows), child, stop), daemon=True)
    proc.start()
    try:
        if not parent.poll(3600):
            raise RuntimeError("replay source did not start")
        url, recorded, size, seconds = parent.recv()
        yield Replay(url, url + "/cc", url + "/zup/hs/wfm", recorded, size, seconds)
    finally:
        stop.set()
        proc.join(10)
        if proc.is_alive():
            proc.terminate()


@contextmanager
def source(kind: str, agents: int, days: int, start) -> Iterator[tuple[common.Simulator | Replay, list]]:
    """(what the contenders read, the agent-status requests): the replay source in front of a
    simulator (`kind` "replay"), or the simulator itself ("simulator")."""
    with common.simulator(agents, days, start) as sim:
        windows = common.plan_windows(sim.cc_url, start, days)
        if kind == "simulator":
            yield sim, windows
            return
        with replay(sim, windows) as recorded:
            yield recorded, windows
