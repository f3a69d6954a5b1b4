"""Process-local progress hooks, so the CLI can draw bars without the flows knowing about Rich."""

from __future__ import annotations

from collections.abc import Callable

Listener = Callable[[str, str, int], None]   # (event "start" | "advance", stream, count)
_listeners: list[Listener] = []


def subscribe(listener: Listener) -> None:
    _listeners.append(listener)


def unsubscribe(listener: Listener) -> None:
    if listener in _listeners:
        _listeners.remove(listener)


def emit(event: str, stream: str, count: int = 1) -> None:
    for listener in list(_listeners):
        listener(event, stream, count)
