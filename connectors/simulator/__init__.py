"""Simulated source systems (contact center and 1C:ZUP) behind one loopback HTTP server."""

from .server import AuthConfig, RunningSimulator, ServerConfig, serve_forever, start_simulator
from .world import SimConfig

__all__ = ["AuthConfig", "RunningSimulator", "ServerConfig", "SimConfig", "serve_forever", "start_simulator"]
