"""The simulator's loopback HTTP server: the contact center, 1C:ZUP and an admin API.

Routes (one port):
- `/cc/...`          the contact-center API (`ContactCenterSystem`); token endpoint `/cc/oauth/token`
- `/zup/hs/wfm/...`  the 1C:ZUP HTTP service (`OneCSystem`); token endpoint `/zup/oauth/token`
- `/_sim/...`        admin, never faulted nor authenticated (see `admin.py`)

What it serves — the systems, clock, faults, auth and request log — is a `Simulation`
(`simulation.py`); this module is the HTTP side: routing, faults on the wire, the server thread.

The server is stdlib `ThreadingHTTPServer` speaking HTTP/1.1 with keep-alive, which leaves the
raw socket at hand for the `drop`, `reset`, `truncate` and `hang` faults. The simulation clock is real time until
set; a set clock stays where it was put.
"""

from __future__ import annotations

import datetime as dt
import logging
import random
import select
import socket
import struct
import sys
import threading
from contextlib import suppress
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any
from urllib.parse import parse_qsl, urlsplit

from .admin import admin_response
from .auth import AuthConfig
from .base import SimResponse, SimulatedSystem
from .contact_center import ContactCenterSystem
from .corrupt import corrupt_body
from .faults import Fault
from .simulation import LOG_LENGTH, ServerConfig, Simulation

__all__ = ["AuthConfig", "ServerConfig", "RunningSimulator", "start_simulator", "serve_forever"]

log = logging.getLogger(__name__)
CC_BASE = "/cc"
ONEC_BASE = "/zup/hs/wfm"
MAX_BODY = 16 * 1024 * 1024


class _Server(ThreadingHTTPServer):
    daemon_threads = True
    allow_reuse_address = True

    def __init__(self, simulation: Simulation):
        self.simulation = simulation
        self.connections: set[socket.socket] = set()
        self.connections_lock = threading.Lock()
        super().__init__((simulation.config.host, simulation.config.port), _Handler)

    def handle_error(self, request, client_address) -> None:
        """Clients that hang up (timeouts, dropped connections) are normal here."""
        if isinstance(sys.exc_info()[1], OSError):
            return
        log.exception("simulator request from %s failed", client_address)

    def close_connections(self) -> None:
        with self.connections_lock:
            for conn in list(self.connections):
                _hang_up(conn)


class _Handler(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"
    server: _Server

    def setup(self) -> None:
        super().setup()
        self.connection.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        with self.server.connections_lock:
            self.server.connections.add(self.connection)

    def finish(self) -> None:
        with self.server.connections_lock:
            self.server.connections.discard(self.connection)
        super().finish()

    def log_message(self, format: str, *args: Any) -> None:   # the request log replaces stderr lines
        pass

    def do_GET(self) -> None:
        self._serve()

    do_POST = do_PUT = do_DELETE = do_PATCH = do_GET

    def _serve(self) -> None:
        sim = self.server.simulation
        url = urlsplit(self.path)
        query = dict(parse_qsl(url.query, keep_blank_values=True))
        body = self._read_body()
        if body is None:
            return
        path = url.path
        if path.startswith("/_sim/"):
            response = admin_response(sim, self.command, path[len("/_sim/"):].strip("/"), query, body)
            return self._send(response)
        for base, system in ((CC_BASE, "cc"), ("/zup", "onec")):
            if path == f"{base}/oauth/token" and self.command == "POST":
                response = sim.auth[system].issue_token(self.headers, body)
                sim.record(self.command, path, query, response.status, None)
                return self._send(response)
        if path == CC_BASE or path.startswith(CC_BASE + "/"):
            return self._serve_counted("cc", path, path[len(CC_BASE):] or "/", query, body)
        if path == ONEC_BASE or path.startswith(ONEC_BASE + "/"):
            return self._serve_counted("onec", path, path[len(ONEC_BASE):] or "/", query, body)
        sim.record(self.command, path, query, 404, None)
        self._send(SimResponse.json(404, {"field": "path", "message": "Unknown path", "description": path}))

    def _serve_counted(self, system: str, path: str, relative: str, query: dict[str, str],
                       body: bytes) -> None:
        with self.server.simulation.in_flight():
            self._serve_system(system, path, relative, query, body)

    def _serve_system(self, system: str, path: str, relative: str, query: dict[str, str],
                      body: bytes) -> None:
        sim = self.server.simulation
        fault = sim.faults.decide(system, relative)
        if fault.kind in ("drop", "reset"):
            sim.record(self.command, path, query, None, fault.kind)
            self.close_connection = True
            return _hang_up(self.connection) if fault.kind == "drop" else self._reset()
        if fault.kind == "timeout":
            sim.stopping.wait(sim.faults.spec.slow_seconds)
        if fault.kind == "hang":             # accepted, never answered: the client's timeout ends it
            sim.record(self.command, path, query, None, "hang")
            while not sim.stopping.wait(0.1) and not _hung_up(self.connection):
                pass
            self.close_connection = True
            return _hang_up(self.connection)
        response = sim.faults.error_response(system, fault) or sim.auth[system].check(self.headers)
        if response is None:
            response = self._answer(system, relative, query, body)
            if fault.restate and response.status == 200:
                sim.restate_answer(response.body)
            if fault.corrupt and response.status == 200:
                body, damaged = corrupt_body(response.body, fault.corrupt, random.Random(fault.corrupt_seed))
                response = SimResponse(200, body, response.headers, response.content_type)
                sim.faults.count("corrupt", damaged, system, relative)
            if response.status == 200 and sim.breaks:
                response = SimResponse(200, sim.breaks.rewrite(system, relative, response.body), response.headers,
                                       response.content_type)
        if fault.kind == "drop_after":      # handled (and stored), then the answer is lost
            sim.record(self.command, path, query, None, "drop_after")
            self.close_connection = True
            return _hang_up(self.connection)
        sim.record(self.command, path, query, response.status, _fault_name(fault))
        self._send(response, truncate=fault.kind == "truncate")

    def _reset(self) -> None:
        """Abort the connection: with a zero linger time, closing it sends RST instead of FIN."""
        self.connection.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))
        self.rfile.close()           # the socket's only file reference (writes go straight to it)
        self.connection.close()

    def _answer(self, system: str, relative: str, query: dict[str, str], body: bytes) -> SimResponse:
        sim = self.server.simulation
        target: SimulatedSystem | None = sim.contact_center if system == "cc" else sim.onec
        if target is None:
            return SimResponse.text(503, "1C:ZUP simulator is not available")
        try:
            return target.handle(self.command, relative, query, body)
        except Exception:
            log.exception("simulated %s failed on %s", system, relative)
            return SimResponse.json(500, {"field": None, "message": "Internal server error",
                                          "description": "The simulator failed on this request"})

    def _read_body(self) -> bytes | None:
        length = int(self.headers.get("Content-Length") or 0)
        if length > MAX_BODY:
            self.close_connection = True
            self._send(SimResponse.json(413, {"field": None, "message": "Body too large", "description": ""}))
            return None
        return self.rfile.read(length) if length else b""

    def _send(self, response: SimResponse, truncate: bool = False) -> None:
        body = response.body
        self.send_response(response.status)
        self.send_header("Content-Type", response.content_type)
        self.send_header("Content-Length", str(len(body)))
        for name, value in response.headers.items():
            self.send_header(name, value)
        self.end_headers()
        if truncate:        # promise the whole body, deliver half, hang up
            self.wfile.write(body[: len(body) // 2])
            self.close_connection = True
            _hang_up(self.connection)
        elif self.command != "HEAD":
            self.wfile.write(body)


class RunningSimulator:
    """A simulator serving in a background thread; `stop()` (or leaving `with`) ends it."""

    def __init__(self, server: _Server, thread: threading.Thread):
        self._server = server
        self._thread = thread
        self.simulation = server.simulation
        host, port = server.server_address[:2]
        self.port: int = port
        self.url = f"http://{host}:{port}"
        self.cc_url = self.url + CC_BASE
        self.onec_url = self.url + ONEC_BASE

    @property
    def contact_center(self) -> ContactCenterSystem:
        return self.simulation.contact_center

    def stats(self) -> dict[str, Any]:
        return self.simulation.stats()

    def requests(self, limit: int = LOG_LENGTH) -> list[dict[str, Any]]:
        return self.simulation.requests(limit)

    def reset_stats(self) -> None:
        self.simulation.reset_stats()

    def set_faults(self, spec: str) -> None:
        self.simulation.faults.configure(spec)

    def set_clock(self, moment: dt.datetime | None) -> None:
        self.simulation.clock.set(moment)

    def restate(self, group_id: str, interval_start: dt.datetime | str) -> int:
        return self.simulation.contact_center.restate(group_id, interval_start)

    def revoke_tokens(self) -> int:
        return self.simulation.revoke_tokens()

    def set_break(self, kind: str | None, days: list[dt.date] | None = None, clear: bool = False) -> None:
        self.simulation.set_break(kind, days, clear)

    def stop(self) -> None:
        """Stop serving, wake sleeping `timeout` faults and close open connections."""
        self.simulation.stopping.set()
        self._server.shutdown()
        self._server.close_connections()
        self._server.server_close()
        self._thread.join(timeout=5)

    def __enter__(self) -> "RunningSimulator":
        return self

    def __exit__(self, *exc: object) -> None:
        self.stop()


def start_simulator(config: ServerConfig) -> RunningSimulator:
    """Serve `config` in a background thread; returns once the socket is listening."""
    server = _Server(Simulation(config))
    thread = threading.Thread(target=server.serve_forever, kwargs={"poll_interval": 0.1},
                              name=f"simulator:{server.server_address[1]}", daemon=True)
    thread.start()
    return RunningSimulator(server, thread)


def serve_forever(config: ServerConfig) -> None:
    """Serve `config` in the foreground until Ctrl-C."""
    server = _Server(Simulation(config))
    host, port = server.server_address[:2]
    print(f"simulator: contact center http://{host}:{port}{CC_BASE}  1C http://{host}:{port}{ONEC_BASE}",
          flush=True)
    try:
        server.serve_forever()
    except KeyboardInterrupt:
        pass
    finally:
        server.simulation.stopping.set()
        server.close_connections()
        server.server_close()


def _hung_up(conn: socket.socket) -> bool:
    """The client closed its end (it gave up waiting)."""
    try:
        ready, _, _ = select.select([conn], [], [], 0)
        return bool(ready) and conn.recv(1, socket.MSG_PEEK) == b""
    except OSError:
        return True


def _hang_up(conn: socket.socket) -> None:
    with suppress(OSError):
        conn.shutdown(socket.SHUT_RDWR)


def _fault_name(fault: Fault) -> str | None:
    names = [n for n in (fault.kind, "restate" if fault.restate else None) if n]
    return "+".join(names) or None
