"""The project's declarative settings file: `wfm.toml` (or `.yaml`), found through `WFM_CONFIG`.

One file, several sections (`connections`, `sites`, and whatever other parts of the project
declare); this module only finds and parses it and hands out sections as plain dicts. Each
section's meaning lives with its owner (see `connectors/config/connections.py`). Secrets never go in
the file: sections refer to them by environment variable or Prefect Secret block name.

    WFM_CONFIG   path of the file; unset: `wfm.toml` in the data dir (WFM_DATA_DIR, default `.data/`
                 in the checkout), else in the checkout — the same file `engine/project_file.py` reads
"""

from __future__ import annotations

import os
import tomllib
from collections.abc import Mapping
from pathlib import Path
from typing import Any

DEFAULT_NAME = "wfm.toml"
PROJECT_ROOT = Path(__file__).resolve().parents[2]


class ConfigError(ValueError):
    """The settings file cannot be used; the message names the file and the place in it."""


def config_path(env: Mapping[str, str] | None = None) -> Path | None:
    """The settings file in use, or None when there is none."""
    env = os.environ if env is None else env
    if env.get("WFM_CONFIG"):
        path = Path(env["WFM_CONFIG"]).expanduser()
        if not path.is_file():
            raise ConfigError(f"WFM_CONFIG={path}: no such file")
        return path
    for directory in (env.get("WFM_DATA_DIR") or PROJECT_ROOT / ".data", PROJECT_ROOT):
        if (candidate := Path(directory) / DEFAULT_NAME).is_file():
            return candidate
    return None


def read_config(path: Path | None) -> dict[str, Any]:
    """The whole file as a dict ({} without a file); TOML, or YAML by a .yaml/.yml suffix."""
    if path is None:
        return {}
    try:
        text = path.read_text(encoding="utf-8-sig")
    except (OSError, UnicodeDecodeError) as exc:
        raise ConfigError(f"{path}: cannot read: {exc}") from None
    try:
        if path.suffix.lower() in (".yaml", ".yml"):
            import yaml

            loaded = yaml.safe_load(text) or {}
        else:
            loaded = tomllib.loads(text)
    except Exception as exc:  # tomllib / yaml parse errors carry line and column
        kind = "YAML" if path.suffix.lower() in (".yaml", ".yml") else "TOML"
        raise ConfigError(f"{path}: not valid {kind}: {_one_line(exc)}") from None
    if not isinstance(loaded, dict):
        raise ConfigError(f"{path}: the top level must be a table of sections")
    return loaded


def section(config: Mapping[str, Any], name: str, path: Path | None) -> dict[str, dict[str, Any]]:
    """A section of named entries (`[connections.north]`, ...): {name: entry}, each a dict."""
    entries = config.get(name, {})
    if not isinstance(entries, dict):
        raise ConfigError(f"{path}: [{name}] must be a table of named entries")
    for entry, value in entries.items():
        if not isinstance(value, dict):
            raise ConfigError(f"{path}: [{name}.{entry}] must be a table of settings")
    return entries


def _one_line(exc: Exception) -> str:
    return " ".join(str(exc).split())
