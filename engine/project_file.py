"""`wfm.toml`: the project's declarative configuration, one TOML table per concern.

    WFM_CONFIG   the file's path; unset: `wfm.toml` in the data dir (WFM_DATA_DIR), else in the checkout

A concern reads its own table with `section("rules")` and validates it itself; this module only
finds the file, parses it once per change (keyed by path, size and mtime) and turns a syntax
error into one line naming the file, the line and the column. A missing file is an empty
configuration: every concern then falls back to its declared defaults. Sections in use:
`[rules]` and `[expectations]` (`engine/quality/policies.py`), `[personal_data]`
(`engine/privacy/personal_data.py`).
"""

from __future__ import annotations

import os
import threading
import tomllib
from pathlib import Path
from typing import Any

from engine.paths import PROJECT_ROOT

__all__ = ["ConfigError", "config_path", "describe", "section"]

FILE = "wfm.toml"
_cache: dict[tuple[str, int, int], dict[str, Any]] = {}
_lock = threading.Lock()


class ConfigError(ValueError):
    """The configuration file cannot be read or says something that cannot be applied."""


def config_path() -> Path | None:
    """The configuration file in force, or None when there is none."""
    if explicit := os.environ.get("WFM_CONFIG"):
        path = Path(explicit)
        if not path.is_file():
            raise ConfigError(f"WFM_CONFIG={explicit}: no such file")
        return path
    for directory in (os.environ.get("WFM_DATA_DIR") or PROJECT_ROOT / ".data", PROJECT_ROOT):
        if (candidate := Path(directory) / FILE).is_file():
            return candidate
    return None


def load() -> dict[str, Any]:
    """The whole file as a dict ({} without a file)."""
    path = config_path()
    if path is None:
        return {}
    stat = path.stat()
    key = (str(path), stat.st_size, stat.st_mtime_ns)
    with _lock:
        if key not in _cache:
            try:
                parsed = tomllib.loads(path.read_text(encoding="utf-8"))
            except (tomllib.TOMLDecodeError, UnicodeDecodeError) as exc:
                raise ConfigError(f"{path}: {exc}") from None
            _cache.clear()
            _cache[key] = parsed
        return _cache[key]


def section(name: str) -> dict[str, Any]:
    """One top-level table of the file ({} when absent); not a table is an error naming it."""
    found = load().get(name, {})
    if not isinstance(found, dict):
        raise ConfigError(f"{describe()}: `{name}` must be a table ([{name}])")
    return found


def describe() -> str:
    """The file's path for messages ('wfm.toml' when there is none)."""
    path = config_path()
    return str(path) if path else FILE
