"""Named source connections, and the sites that pair them.

A connection is one source instance: a contact center or a 1C:ZUP base, with its URL, auth and
retry cap. A site pairs the contact center with the 1C base that holds the same people, and
names their time zone, so that the agent-to-employee map, deviations and the push-back stay
inside one pairing. Both come from the settings file (`connectors/config/file.py`):

    [connections.cc-north]
    system = "contact_center"           # or "onec"
    url = "https://cc-north.example.com/api"
    auth = "oauth2"                     # as WFM_CC_AUTH; inferred when absent
    client_id = "wfm"
    client_secret = { env = "CC_NORTH_SECRET" }      # a secret: by reference only

    [connections.zup-north]
    system = "onec"
    url = "http://1c-north/zup/hs/wfm"
    username = "wfm"
    password = { block = "zup-north-password" }     # a Prefect Secret block

    [sites.north]
    contact_center = "cc-north"
    onec = "zup-north"
    timezone = "Europe/Moscow"

Without a `[connections]` section the `WFM_CC_*` / `WFM_ONEC_*` variables describe one
contact center and one 1C base, both named `default`, paired by the site `default`. A
connection's name is unique within its system; it is the value rows carry in the warehouse, so
it is short, lower case and path-safe. Secrets are resolved only when a client is built.
"""

from __future__ import annotations

import os
import re
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

from ..http import RetryPolicy
from ..settings import CONTACT_CENTER, ONEC, SourceSettings, _infer_auth, contact_center_from_env, onec_from_env
from .file import ConfigError, config_path, read_config, section

DEFAULT = "default"
SYSTEMS = {"contact_center": CONTACT_CENTER, "onec": ONEC}
NAME = re.compile(r"^[a-z0-9][a-z0-9_-]{0,62}$")
SECRETS = ("password", "token", "client_secret")
SETTINGS = {CONTACT_CENTER: {"url", "auth", "username", "api_key_header", "token_url", "client_id", "timeout",
                             "max_attempts", *SECRETS},
            ONEC: {"url", "username", "password", "timeout", "max_attempts"}}
SecretResolver = Callable[[str], str]     # a Prefect Secret block name -> its value


@dataclass(frozen=True)
class SecretRef:
    """Where a secret lives: an environment variable or a Prefect Secret block (never its value)."""

    env: str | None = None
    block: str | None = None

    def resolve(self, env: Mapping[str, str], resolve_block: SecretResolver | None, where: str) -> str:
        if self.env is not None:
            if self.env not in env:
                raise ConfigError(f"{where}: environment variable {self.env} is not set")
            return env[self.env]
        if resolve_block is None:
            raise ConfigError(f"{where}: Prefect Secret block {self.block!r} needs the blocks (WFM_USE_BLOCKS=1 "
                              "or `blocks.connections`)")
        return resolve_block(str(self.block))


@dataclass(frozen=True)
class Connection:
    """One named source instance; `settings()` resolves its secrets and gives the client's settings."""

    name: str
    system: str                                  # CONTACT_CENTER or ONEC
    base: SourceSettings                         # without secrets
    secrets: dict[str, SecretRef] = field(default_factory=dict)
    origin: str = "environment"                  # the file, or "environment"
    resolved: SourceSettings | None = field(default=None, repr=False, compare=False)

    @property
    def url(self) -> str:
        return self.base.url

    @property
    def host(self) -> str:
        """`host:port`: what the per-host source limit counts."""
        parts = urlsplit(self.base.url)
        return f"{parts.hostname}:{parts.port or (443 if parts.scheme == 'https' else 80)}"

    def settings(self, env: Mapping[str, str] | None = None,
                 resolve_block: SecretResolver | None = None) -> SourceSettings:
        """The connector settings with secrets in place; the one place they are read."""
        if self.resolved is not None:
            return self.resolved
        env = os.environ if env is None else env
        values = {name: ref.resolve(env, resolve_block, f"{self.origin}: connection {self.name!r} {name}")
                  for name, ref in self.secrets.items()}
        return replace(self.base, password=values.get("password", self.base.password),
                       token=values.get("token", self.base.token),
                       client_secret=values.get("client_secret", self.base.client_secret))


@dataclass(frozen=True)
class Site:
    """A contact center and the 1C base holding the same people, and their time zone."""

    name: str
    contact_center: str | None
    onec: str | None
    timezone: str = "Europe/Moscow"


@dataclass(frozen=True)
class Connections:
    """Every configured connection (by system and name) and site (by name)."""

    connections: tuple[Connection, ...]
    sites: dict[str, Site]
    origin: str = "environment"

    def of(self, system: str) -> list[Connection]:
        return [c for c in self.connections if c.system == system]

    def named(self, name: str, system: str | None = None) -> list[Connection]:
        """The connections called `name` (of `system`); a one-line error naming the known ones if none."""
        found = [c for c in self.connections if c.name == name and system in (None, c.system)]
        if not found:
            known = ", ".join(sorted({c.name for c in self.connections})) or "none"
            raise ConfigError(f"unknown connection {name!r} ({self.origin}); known: {known}")
        return found

    def get(self, system: str, name: str) -> Connection:
        return self.named(name, system)[0]


def load(env: Mapping[str, str] | None = None, path: Path | None = None) -> Connections:
    """The connections of the settings file, or the `default` ones of the WFM_* variables."""
    env = os.environ if env is None else env
    path = path or config_path(env)
    config = read_config(path)
    if not config.get("connections"):
        return from_env(env)
    return from_config(config, path, env)


def from_env(env: Mapping[str, str] | None = None) -> Connections:
    """`default` contact center and 1C base from WFM_CC_* / WFM_ONEC_* (either may be absent)."""
    found = [Connection(DEFAULT, s.system, s, resolved=s) for s in (contact_center_from_env(env), onec_from_env(env))
             if s is not None]
    systems = {c.system: c.name for c in found}
    site = Site(DEFAULT, systems.get(CONTACT_CENTER), systems.get(ONEC),
                (env if env is not None else os.environ).get("WFM_DEFAULT_TIMEZONE", "Europe/Moscow"))
    return Connections(tuple(found), {DEFAULT: site} if found else {})


def from_config(config: Mapping[str, Any], path: Path | None, env: Mapping[str, str]) -> Connections:
    """Connections and sites from a parsed settings file; every mistake is one line naming the place."""
    origin = str(path) if path else "settings"
    connections = tuple(_connection(name, entry, origin, env)
                        for name, entry in section(config, "connections", path).items())
    sites = {name: _site(name, entry, origin, connections)
             for name, entry in section(config, "sites", path).items()}
    return Connections(connections, sites, origin)


def _connection(name: str, entry: Mapping[str, Any], origin: str, env: Mapping[str, str]) -> Connection:
    where = f"{origin}: [connections.{name}]"
    _check_name(name, where)
    system = SYSTEMS.get(str(entry.get("system")))
    if system is None:
        raise ConfigError(f"{where} system: {entry.get('system')!r} is not one of {', '.join(SYSTEMS)}")
    values = {k: v for k, v in entry.items() if k != "system"}
    unknown = sorted(set(values) - SETTINGS[system])
    if unknown:
        raise ConfigError(f"{where}: unknown setting(s) {', '.join(unknown)}; known: "
                          f"{', '.join(sorted(SETTINGS[system]))}")
    if not isinstance(values.get("url"), str) or not values["url"].startswith(("http://", "https://")):
        raise ConfigError(f"{where} url: an http(s) URL is required")
    secrets = {k: _secret_ref(values.pop(k), f"{where} {k}") for k in SECRETS if k in values}
    return Connection(name, system, _settings(system, values, set(secrets), where), secrets, origin)


def _settings(system: str, values: dict[str, Any], secrets: set[str], where: str) -> SourceSettings:
    try:
        timeout = float(values.pop("timeout", 60.0 if system == ONEC else 30.0))
        retry = RetryPolicy(attempts=int(values.pop("max_attempts", RetryPolicy().attempts)))
    except (TypeError, ValueError) as exc:
        raise ConfigError(f"{where}: timeout and max_attempts are numbers ({exc})") from None
    url = values.pop("url")
    if system == ONEC:
        auth = "basic" if values.get("username") else "none"
        return SourceSettings(ONEC, url, auth, username=values.get("username"), timeout=max(60.0, timeout),
                              retry=retry)
    present = {f"X_{k.upper()}": "1" for k in (*values, *secrets)}
    auth = values.pop("auth", None) or _infer_auth(present, "X")
    if auth not in ("none", "basic", "bearer", "apikey", "oauth2"):
        raise ConfigError(f"{where} auth: {auth!r} is not one of none, basic, bearer, apikey, oauth2")
    token_url = values.pop("token_url", None) or (url.rstrip("/") + "/oauth/token" if auth == "oauth2" else None)
    text = {k: str(v) for k, v in values.items()}
    return SourceSettings(CONTACT_CENTER, url, auth, username=text.get("username"), token_url=token_url,
                          api_key_header=text.get("api_key_header", "X-API-Key"), client_id=text.get("client_id"),
                          timeout=timeout, retry=retry)


def _secret_ref(value: Any, where: str) -> SecretRef:
    if isinstance(value, dict) and len(value) == 1 and set(value) <= {"env", "block"} and \
            isinstance(next(iter(value.values())), str):
        return SecretRef(**value)
    raise ConfigError(f"{where}: secrets never go in the settings file; write {{ env = \"VARIABLE\" }} or "
                      "{ block = \"prefect-secret-block\" }")


def _site(name: str, entry: Mapping[str, Any], origin: str, connections: tuple[Connection, ...]) -> Site:
    where = f"{origin}: [sites.{name}]"
    _check_name(name, where)
    unknown = sorted(set(entry) - {"contact_center", "onec", "timezone"})
    if unknown:
        raise ConfigError(f"{where}: unknown setting(s) {', '.join(unknown)}; known: contact_center, onec, timezone")
    for key, system in SYSTEMS.items():
        wanted = entry.get(key)
        if wanted is not None and not any(c.name == wanted and c.system == system for c in connections):
            raise ConfigError(f"{where} {key}: no {system} connection named {wanted!r}")
    if entry.get("contact_center") is None and entry.get("onec") is None:
        raise ConfigError(f"{where}: a site names its contact_center, its onec, or both")
    timezone = str(entry.get("timezone", "Europe/Moscow"))
    try:
        ZoneInfo(timezone)
    except (ZoneInfoNotFoundError, ValueError):
        raise ConfigError(f"{where} timezone: {timezone!r} is not an IANA time zone") from None
    return Site(name, entry.get("contact_center"), entry.get("onec"), timezone)


def _check_name(name: str, where: str) -> None:
    if not NAME.match(name):
        raise ConfigError(f"{where}: the name must be 1-63 of a-z, 0-9, '-', '_', starting with a letter or digit")
