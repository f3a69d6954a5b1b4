"""Connection settings for a source system, from code, a Prefect block or `WFM_*` variables.

    WFM_CC_URL                    contact-center base URL
    WFM_CC_AUTH                   none|basic|bearer|apikey|oauth2 (default: inferred)
    WFM_CC_TOKEN                  bearer token (or the API key with WFM_CC_AUTH=apikey)
    WFM_CC_API_KEY_HEADER         header for the API key (default X-API-Key)
    WFM_CC_USERNAME/PASSWORD      HTTP Basic
    WFM_CC_CLIENT_ID/SECRET       OAuth2 client credentials, with WFM_CC_TOKEN_URL
    WFM_ONEC_URL                  1C base URL, e.g. http://host/infobase/hs/wfm
    WFM_ONEC_USERNAME/PASSWORD    HTTP Basic (1C's technical user)
    WFM_HTTP_TIMEOUT              seconds per request (default 30; 1C gets at least 60)
    WFM_HTTP_ATTEMPTS             attempts per request on transient faults (default 6)
    WFM_CC_MAINTENANCE            daily windows not to ask in: "01:00-04:30 Europe/Moscow, ..."
    WFM_ONEC_MAINTENANCE          the same for 1C (its nightly routines); see `Maintenance`
"""

from __future__ import annotations

import dataclasses
import datetime as dt
import os
import re
from dataclasses import dataclass, field
from typing import Mapping
from urllib.parse import urlsplit
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

from .config.auth import build_auth
from .config.systems import CONTACT_CENTER_SYSTEM, ONEC_SYSTEM, source_system
from .http import RetryPolicy, SourceClient

CONTACT_CENTER = CONTACT_CENTER_SYSTEM.name
ONEC = ONEC_SYSTEM.name
_WINDOW = re.compile(r"^(\d{1,2}):(\d{2})\s*-\s*(\d{1,2}):(\d{2})(?:\s+(\S+))?$")


@dataclass(frozen=True)
class Maintenance:
    """Daily windows, in local time of a zone, in which a source is not asked (1C's nightly
    routines): `01:00-04:30 Europe/Moscow`, several comma-separated, a window may cross midnight.
    The client asks it before every attempt; inside a window nothing is sent (`SourceDeferred`)."""

    windows: tuple[tuple[dt.time, dt.time, str], ...] = ()

    @classmethod
    def parse(cls, text: str, variable: str = "maintenance") -> "Maintenance":
        """`HH:MM-HH:MM [Zone]`, comma-separated; a bad item is a one-line ValueError naming it."""
        windows = []
        for item in (part.strip() for part in (text or "").split(",")):
            if not item:
                continue
            found = _WINDOW.match(item)
            if not found:
                raise ValueError(f"{variable}: {item!r} is not HH:MM-HH:MM [time zone]")
            h1, m1, h2, m2, zone = found.groups()
            try:
                start, end = dt.time(int(h1), int(m1)), dt.time(int(h2), int(m2))
                ZoneInfo(zone or "UTC")
            except ValueError:
                raise ValueError(f"{variable}: {item!r} has an impossible time") from None
            except ZoneInfoNotFoundError:
                raise ValueError(f"{variable}: {item!r}: unknown time zone {zone!r}") from None
            windows.append((start, end, zone or "UTC"))
        return cls(tuple(windows))

    def active(self, now: dt.datetime | None = None) -> str | None:
        """The window `now` falls in, as written (`01:00-04:30 Europe/Moscow`), or None."""
        now = now or dt.datetime.now(dt.timezone.utc)
        for start, end, zone in self.windows:
            local = now.astimezone(ZoneInfo(zone)).time()
            inside = start <= local < end if start <= end else (local >= start or local < end)
            if inside:
                return f"{start:%H:%M}-{end:%H:%M} {zone}"
        return None

    def __bool__(self) -> bool:
        return bool(self.windows)


@dataclass(frozen=True)
class SourceSettings:
    """Where a source lives and how to authenticate; secrets are hidden from repr()."""

    system: str
    url: str
    auth: str = "none"
    username: str | None = None
    password: str | None = field(default=None, repr=False)
    token: str | None = field(default=None, repr=False)
    api_key_header: str = "X-API-Key"
    token_url: str | None = None
    client_id: str | None = None
    client_secret: str | None = field(default=None, repr=False)
    timeout: float = 30.0
    retry: RetryPolicy = field(default_factory=RetryPolicy)
    max_connections: int = 8
    maintenance: str = ""                       # daily windows in which the source is not asked

    @property
    def key(self) -> str:
        """The base URL without credentials, query or trailing slash: what a sync's circuit breaker
        is kept under (the roster is kept under the connection's name; releases before it used this)."""
        parts = urlsplit(self.url)
        host = parts.hostname or ""
        port = f":{parts.port}" if parts.port else ""
        return f"{parts.scheme}://{host}{port}{parts.path.rstrip('/')}"

    def client(self) -> SourceClient:
        """A ready client; the caller closes it."""
        auth = build_auth(self.auth, username=self.username, password=self.password, token=self.token,
                          api_key_header=self.api_key_header, token_url=self.token_url,
                          client_id=self.client_id, client_secret=self.client_secret)
        system = source_system(self.system)
        retry = dataclasses.replace(self.retry, repeat_is_final=self.retry.repeat_is_final or system.repeated_500_is_final)
        return SourceClient(self.system, self.url, auth=auth, timeout=self.timeout, retry=retry,
                            not_found_is_empty=system.not_found_is_empty, max_connections=self.max_connections,
                            maintenance=Maintenance.parse(self.maintenance, f"{self.system} maintenance").active)


def contact_center_from_env(env: Mapping[str, str] | None = None) -> SourceSettings | None:
    """Settings from WFM_CC_* variables, or None when WFM_CC_URL is unset."""
    env = os.environ if env is None else env
    url = env.get("WFM_CC_URL")
    if not url:
        return None
    kind = env.get("WFM_CC_AUTH") or _infer_auth(env, "WFM_CC")
    token_url = env.get("WFM_CC_TOKEN_URL") or (url.rstrip("/") + "/oauth/token" if kind == "oauth2" else None)
    return SourceSettings(
        CONTACT_CENTER, url, kind, username=env.get("WFM_CC_USERNAME"), password=env.get("WFM_CC_PASSWORD"),
        token=env.get("WFM_CC_TOKEN") or env.get("WFM_CC_API_KEY"),
        api_key_header=env.get("WFM_CC_API_KEY_HEADER", "X-API-Key"), token_url=token_url,
        client_id=env.get("WFM_CC_CLIENT_ID"), client_secret=env.get("WFM_CC_CLIENT_SECRET"),
        timeout=float(env.get("WFM_HTTP_TIMEOUT", "30")), retry=RetryPolicy(attempts=_attempts(env)),
        maintenance=_maintenance(env, "WFM_CC_MAINTENANCE"),
    )


def onec_from_env(env: Mapping[str, str] | None = None) -> SourceSettings | None:
    """Settings from WFM_ONEC_* variables, or None when WFM_ONEC_URL is unset."""
    env = os.environ if env is None else env
    url = env.get("WFM_ONEC_URL")
    if not url:
        return None
    kind = "basic" if env.get("WFM_ONEC_USERNAME") else "none"
    return SourceSettings(ONEC, url, kind, username=env.get("WFM_ONEC_USERNAME"),
                          password=env.get("WFM_ONEC_PASSWORD", ""),
                          timeout=max(ONEC_SYSTEM.min_timeout, float(env.get("WFM_HTTP_TIMEOUT", "30"))),
                          retry=RetryPolicy(attempts=_attempts(env)), maintenance=_maintenance(env, "WFM_ONEC_MAINTENANCE"))


def _attempts(env: Mapping[str, str]) -> int:
    raw = env.get("WFM_HTTP_ATTEMPTS", "").strip()
    if not raw:
        return RetryPolicy().attempts
    if not raw.isdigit() or not 1 <= int(raw) <= 20:
        raise ValueError(f"WFM_HTTP_ATTEMPTS must be a whole number from 1 to 20, got {raw!r}")
    return int(raw)


def _maintenance(env: Mapping[str, str], variable: str) -> str:
    text = env.get(variable, "").strip()
    Maintenance.parse(text, variable)   # a malformed schedule fails at configuration, in one line
    return text


def _infer_auth(env: Mapping[str, str], prefix: str) -> str:
    if env.get(f"{prefix}_CLIENT_ID"):
        return "oauth2"
    if env.get(f"{prefix}_TOKEN"):
        return "bearer"
    if env.get(f"{prefix}_API_KEY"):
        return "apikey"
    if env.get(f"{prefix}_USERNAME"):
        return "basic"
    return "none"
