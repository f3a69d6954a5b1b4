"""Fault injection for the simulator's HTTP server.

A spec is a comma-separated list of `kind=probability` items and options, e.g.
`"500=0.05,502=0.02,503=0.02,504=0.01,429=0.05,timeout=0.02,drop=0.02,truncate=0.02,restate=0.1,
retry_after=2,retry_after_form=mixed,slow_seconds=5"`.

Kinds, decided once per request by a seeded generator (the same seed and request order give the
same faults):

- `500`, `502`, `503`, `504`: answer with that status instead of the real answer.
- `429`: answer 429 with `Retry-After` (`retry_after` seconds, written as seconds, an HTTP-date,
  or either at random with `retry_after_form=mixed`).
- `timeout`: wait `slow_seconds`, then answer normally.
- `drop`: close the connection without answering.
- `reset`: reset the connection (a TCP RST, not an orderly close) without answering.
- `drop_after`: handle the request (1C stores what it was sent), then close the connection
  without answering: the answer is lost after the fact. `drop_after_path=/sendFactWorkTime`
  limits it to one path (relative to the system's base). `path=/historic/agentLoginData` limits
  every kind to the paths that start with it.
- `truncate`: send the headers with the full Content-Length, then only part of the body.
- `empty`: contact center only: answer 404 "No data" as if the source held nothing (a source
  that silently stopped serving a stream).
- `hang`: accept the request and never answer (until the simulator stops): a hung source.
- `error`: a deterministic 500 — the same message every time, as 1C answers when its own code
  fails on a request (a transient 500 reads like a lock conflict or an interrupted session).
- `corrupt`: contact-center historic answers only, drawn per record: that share of the records
  is damaged (see `corrupt.py`); the count is of damaged records.
- `restate`: serviceGroupData only, drawn independently of the others: after the answer is
  computed, the simulator restates the intervals it holds, so a repeated request gets corrected
  numbers while this one carries the old ones.

The 1C web service only knows 500 (with an empty, plain-text or JSON body), 502, 503, `drop`,
`reset`, `drop_after` and `timeout`; any other kind drawn for a 1C path becomes a 500. Token endpoints and `/_sim/` admin
paths are never faulted.
"""

from __future__ import annotations

import email.utils
import math
import random
import threading
import time
from collections import Counter
from dataclasses import dataclass, field

from .base import SimResponse

EXCLUSIVE_KINDS = ("500", "502", "503", "504", "429", "timeout", "drop", "reset", "truncate", "drop_after",
                   "empty", "hang", "error")
KINDS = EXCLUSIVE_KINDS + ("restate", "corrupt")
INDEPENDENT_KINDS = ("restate", "corrupt")
ONEC_KINDS = ("500", "502", "503", "drop", "reset", "timeout", "drop_after", "hang", "error")
RETRY_AFTER_FORMS = ("seconds", "http-date", "mixed")
DETERMINISTIC_ERROR = ("{ОбщийМодуль.ОбменWFM.Модуль(214)}: Ошибка при вызове метода контекста (Получить): "
                       "Поле объекта не обнаружено (ТабельныйНомер)")


@dataclass(frozen=True)
class FaultSpec:
    """Parsed fault configuration: probability per kind and the options."""

    rates: dict[str, float] = field(default_factory=dict)
    retry_after: float = 2.0
    retry_after_form: str = "seconds"
    slow_seconds: float = 5.0
    drop_after_path: str = ""
    path: str = ""                # only paths starting with this are faulted ("" = every path)
    text: str = ""

    @classmethod
    def parse(cls, text: str) -> "FaultSpec":
        """Parse a spec; a bad item raises ValueError naming it."""
        rates: dict[str, float] = {}
        options: dict[str, object] = {}
        for item in (i.strip() for i in text.split(",")):
            if not item:
                continue
            key, sep, value = (part.strip() for part in item.partition("="))
            if not sep:
                raise ValueError(f"fault spec item {item!r} is not key=value")
            if key in KINDS:
                rates[key] = _number(item, value, upper=1.0)
            elif key in ("retry_after", "slow_seconds"):
                options[key] = _number(item, value)
            elif key == "retry_after_form":
                if value not in RETRY_AFTER_FORMS:
                    forms = ", ".join(RETRY_AFTER_FORMS)
                    raise ValueError(f"fault spec item {item!r}: form must be one of {forms}")
                options[key] = value
            elif key in ("drop_after_path", "path"):
                options[key] = value
            else:
                raise ValueError(f"fault spec item {item!r}: unknown kind or option {key!r}")
        total = sum(rate for kind, rate in rates.items() if kind not in INDEPENDENT_KINDS)
        if total > 1.0 + 1e-9:
            raise ValueError(f"fault spec {text!r}: probabilities other than restate add up to {total:g} > 1")
        return cls(rates=rates, text=text.strip(), **options)  # type: ignore[arg-type]


@dataclass(frozen=True)
class Fault:
    """What to do to one request: `kind` is None for a normal answer."""

    kind: str | None = None
    restate: bool = False
    retry_after_date: bool = False
    onec_body: int = 0          # 0 empty, 1 plain text, 2 JSON (1C 500 only)
    corrupt: float = 0.0        # share of records to damage in a contact-center historic answer
    corrupt_seed: int = 0


NO_FAULT = Fault()


def _endpoint(path: str) -> str:
    """A request path without its dates (`/agents/2026-11-01/2026-11-30` -> `/agents`)."""
    parts = [p for p in path.split("/") if p and not p[:1].isdigit()]
    return "/" + "/".join(parts)


class FaultInjector:
    """Draws a fault for each request and counts what it injected, by kind and by place."""

    def __init__(self, spec: str = "", seed: int = 0):
        self.seed = seed
        self._lock = threading.Lock()
        self.counts: Counter[str] = Counter()
        self.places: Counter[tuple[str, str]] = Counter()     # (system, endpoint path) -> faults
        self.configure(spec)

    def configure(self, spec: str) -> None:
        """Replace the spec (ValueError if it is bad) and restart the draw sequence."""
        parsed = FaultSpec.parse(spec)
        with self._lock:
            self.spec = parsed
            self._rng = random.Random(self.seed)

    def decide(self, system: str, path: str) -> Fault:
        """The fault for one request to `system` ("cc" or "onec") at `path` (relative to its base)."""
        with self._lock:
            spec, rng = self.spec, self._rng
            if not spec.rates or not path.startswith(spec.path):
                return NO_FAULT
            draw, restate_draw, form_draw, body_draw = (rng.random() for _ in range(4))
            kind = _pick(spec.rates, draw)
            restate = (system == "cc" and path.rstrip("/") == "/historic/serviceGroupData"
                       and restate_draw < spec.rates.get("restate", 0.0))
            if system == "onec" and kind == "empty":
                kind = None                  # 1C has no "no data" answer to imitate
            if system == "onec" and kind is not None and kind not in ONEC_KINDS:
                kind = "500"
            if kind == "drop_after" and spec.drop_after_path and path.rstrip("/") != spec.drop_after_path.rstrip("/"):
                kind = None
            for counted in ([kind] if kind else []) + (["restate"] if restate else []):
                self.counts[counted] += 1
                self.places[(system, _endpoint(path))] += 1
        form = spec.retry_after_form
        date_form = form == "http-date" or (form == "mixed" and form_draw < 0.5)
        corrupt = spec.rates.get("corrupt", 0.0) if system == "cc" and path.startswith("/historic/") else 0.0
        return Fault(kind, restate, date_form, int(body_draw * 3), corrupt, int(draw * 2**31))

    def count(self, kind: str, n: int, system: str = "cc", path: str = "") -> None:
        with self._lock:
            self.counts[kind] += n
            if n:
                self.places[(system, _endpoint(path))] += n

    def fault_counts(self) -> dict[str, int]:
        with self._lock:
            return dict(self.counts)

    def fault_places(self) -> dict[str, dict[str, int]]:
        """Faults per system and endpoint: {"cc": {"/historic/agentLoginData": 12, ...}, "onec": {...}}."""
        with self._lock:
            out: dict[str, dict[str, int]] = {}
            for (system, path), n in sorted(self.places.items()):
                out.setdefault(system, {})[path] = n
            return out

    def reset_counts(self) -> None:
        with self._lock:
            self.counts.clear()
            self.places.clear()

    def error_response(self, system: str, fault: Fault) -> SimResponse | None:
        """The answer that replaces the real one for status faults; None for the other kinds."""
        kind = fault.kind
        if kind == "429":
            return SimResponse.json(429, {"field": None, "message": "Too many requests",
                                          "description": "Rate limit exceeded (simulated)"},
                                    **{"Retry-After": self._retry_after(fault)})
        if kind in ("502", "503", "504"):
            reason = {"502": "Bad Gateway", "503": "Service Unavailable", "504": "Gateway Timeout"}[kind]
            return SimResponse(int(kind), f"<html><body><h1>{kind} {reason}</h1></body></html>".encode(),
                               content_type="text/html; charset=utf-8")
        if kind == "empty":
            return SimResponse.json(404, {"field": None, "message": "No data",
                                          "description": "No data for these parameters"})
        if kind == "error":
            return SimResponse.json(500, {"field": None, "message": DETERMINISTIC_ERROR, "description": ""}) \
                if system == "cc" else SimResponse.text(500, DETERMINISTIC_ERROR)
        if kind == "500" and system == "onec":
            return _onec_500(fault.onec_body)
        if kind == "500":
            return SimResponse.json(500, {"field": None, "message": "Internal server error",
                                          "description": "Simulated failure"})
        return None

    def _retry_after(self, fault: Fault) -> str:
        seconds = self.spec.retry_after
        if fault.retry_after_date:
            return email.utils.formatdate(math.ceil(time.time() + seconds), usegmt=True)
        return str(math.ceil(seconds))


def _pick(rates: dict[str, float], draw: float) -> str | None:
    edge = 0.0
    for kind in EXCLUSIVE_KINDS:
        edge += rates.get(kind, 0.0)
        if draw < edge:
            return kind
    return None


def _onec_500(form: int) -> SimResponse:
    if form == 0:
        return SimResponse(500, b"", content_type="text/plain; charset=utf-8")
    if form == 1:
        return SimResponse.text(500, "Ошибка при вызове метода контекста (Выполнить): сеанс прерван")
    return SimResponse.json(500, {"error": "Внутренняя ошибка 1С",
                                  "description": "Конфликт блокировок при выполнении транзакции (simulated)"})


def _number(item: str, value: str, upper: float | None = None) -> float:
    try:
        number = float(value)
    except ValueError:
        raise ValueError(f"fault spec item {item!r}: {value!r} is not a number") from None
    if not math.isfinite(number) or number < 0 or (upper is not None and number > upper):
        bound = f"between 0 and {upper:g}" if upper is not None else "a non-negative number"
        raise ValueError(f"fault spec item {item!r}: value must be {bound}")
    return number
