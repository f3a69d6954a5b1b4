"""What the status receiver checks before it stores a push: its size, who sent it, and how fast.

    WFM_RECEIVER_MAX_BODY   largest body taken, in bytes (default 65536); larger → 413, not stored
    WFM_RECEIVER_AUTH       none | token | hmac (default: token when a secret is set, else none)
    WFM_RECEIVER_SECRET     the shared secret; token: `Authorization: Bearer <secret>` (or
                            `X-WFM-Token: <secret>`); hmac: `X-WFM-Timestamp: <unix seconds>` and
                            `X-WFM-Signature: v1=<hex HMAC-SHA256(secret, "<timestamp>.<body>")>`,
                            the webhooks' scheme (`engine.push.webhooks.sign`), within 300 s of now
    WFM_RECEIVER_RATE       events per second per client address (default 500; 0: no limit)
    WFM_RECEIVER_BURST      events a client may send at once before the rate applies (default 4000)

A refused push (413, 401, 429) is answered at once and not stored: it is not the contact center's
(401), or it would let one client exhaust the disk or the database (413, 429). The contact center
sends each event once and never retries, so the rate's defaults sit far above what one site
sends (a status change of every agent of a 5,000-agent site in the same second is 10,000 events
in a burst, spread over its connections); lower them for a receiver exposed beyond the site.
Malformed bodies within the limits are still stored, with their error, and answered 400.
"""

from __future__ import annotations

import hmac
import math
import os
import threading
import time
from collections.abc import Mapping
from dataclasses import dataclass

AUTH_KINDS = ("none", "token", "hmac")


class GuardConfigError(ValueError):
    """A receiver variable (WFM_RECEIVER_AUTH, _MAX_BODY, _RATE, _BURST) cannot be used."""


@dataclass(frozen=True)
class Guard:
    """The receiver's limits and its authentication."""

    max_body: int = 65536
    auth: str = "none"
    secret: str | None = None
    rate: float = 500.0
    burst: int = 4000
    tolerance: float = 300.0

    def __post_init__(self) -> None:
        if self.auth not in AUTH_KINDS:
            raise GuardConfigError(f"WFM_RECEIVER_AUTH={self.auth!r}: expected one of {', '.join(AUTH_KINDS)}")
        if self.auth != "none" and not self.secret:
            raise GuardConfigError(f"WFM_RECEIVER_AUTH={self.auth} needs WFM_RECEIVER_SECRET")
        if self.max_body < 1 or self.rate < 0 or self.burst < 1:
            raise GuardConfigError("WFM_RECEIVER_MAX_BODY and WFM_RECEIVER_BURST must be positive, "
                                   "WFM_RECEIVER_RATE not negative")

    @classmethod
    def from_env(cls, env: Mapping[str, str] | None = None) -> Guard:
        env = os.environ if env is None else env
        secret = env.get("WFM_RECEIVER_SECRET") or None
        try:
            return cls(max_body=int(env.get("WFM_RECEIVER_MAX_BODY", "65536")),
                       auth=env.get("WFM_RECEIVER_AUTH") or ("token" if secret else "none"), secret=secret,
                       rate=float(env.get("WFM_RECEIVER_RATE", "500")), burst=int(env.get("WFM_RECEIVER_BURST", "4000")))
        except ValueError as exc:
            raise GuardConfigError("WFM_RECEIVER_MAX_BODY, WFM_RECEIVER_RATE and WFM_RECEIVER_BURST must be numbers: "
                                   f"{exc}") from None

    def refuse_auth(self, headers: Mapping[str, str], body: bytes) -> str | None:
        """Why the push is not authenticated, or None when it is (or no check is configured)."""
        if self.auth == "none":
            return None
        assert self.secret is not None
        if self.auth == "token":
            given = headers.get("x-wfm-token") or _bearer(headers.get("authorization", ""))
            if not given:
                return "no Authorization: Bearer token"
            return None if hmac.compare_digest(given.encode(), self.secret.encode()) else "wrong token"
        from engine.push.webhooks import check_signature

        timestamp, signature = headers.get("x-wfm-timestamp"), headers.get("x-wfm-signature")
        if not timestamp or not signature:
            return "no X-WFM-Timestamp / X-WFM-Signature"
        return check_signature(self.secret, timestamp, body, signature, self.tolerance)


def _bearer(header: str) -> str:
    scheme, _, value = header.partition(" ")
    return value.strip() if scheme.lower() == "bearer" else ""


class RateLimiter:
    """A token bucket per client: `burst` at once, then `rate` per second."""

    def __init__(self, rate: float, burst: int, clock=time.monotonic):
        self.rate, self.burst, self.clock = rate, burst, clock
        self._buckets: dict[str, tuple[float, float]] = {}     # client -> (tokens, when)
        self._lock = threading.Lock()

    def wait(self, client: str) -> int:
        """0 if the client may send now (a token is taken), else the seconds until it may."""
        if self.rate <= 0:
            return 0
        now = self.clock()
        with self._lock:
            tokens, when = self._buckets.get(client, (float(self.burst), now))
            tokens = min(float(self.burst), tokens + (now - when) * self.rate)
            if tokens >= 1:
                self._buckets[client] = (tokens - 1, now)
                return 0
            self._buckets[client] = (tokens, now)
            if len(self._buckets) > 10_000:           # forget clients that are full again
                full = [c for c, (t, w) in self._buckets.items() if t + (now - w) * self.rate >= self.burst]
                for c in full:
                    del self._buckets[c]
            return max(1, math.ceil((1 - tokens) / self.rate))
