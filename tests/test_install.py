"""The locked install (issue 16.5): uv.lock matches pyproject.toml, holds the known pins, and is
what this environment runs; the Makefile bootstraps the uv version that the lock pins."""
from __future__ import annotations

import os
import re
import subprocess
import sys
import tomllib
from importlib import metadata
from pathlib import Path

from packaging.version import Version

ROOT = Path(__file__).resolve().parents[1]
UV = Path(sys.executable).with_name("uv")


def _locked() -> dict[str, list[str]]:
    """Package name -> every version uv.lock holds for it (a universal lock forks some by Python)."""
    lock = tomllib.loads((ROOT / "uv.lock").read_text())
    versions: dict[str, list[str]] = {}
    for package in lock["package"]:
        if "version" in package:
            versions.setdefault(package["name"], []).append(package["version"])
    return versions


def test_the_lock_is_current_with_pyproject():
    """`uv lock --check` fails when pyproject.toml changed and nobody ran `uv lock`."""
    done = subprocess.run([str(UV), "lock", "--check", "--offline"], cwd=ROOT,
                          capture_output=True, text=True)
    assert done.returncode == 0, done.stderr


def test_the_known_pins_hold_in_the_lock():
    locked = _locked()
    assert all(Version(v) < Version("0.151") for v in locked["fastapi"])
    assert all(Version("2.0") <= Version(v) < Version("2.1") for v in locked["sqlalchemy"])
    assert all(Version(v) < Version("3.9") for v in locked["prefect"])


def test_the_makefile_bootstraps_the_locked_uv():
    """`uv sync` removes what the lock lacks, so the bootstrapped uv must be the locked one."""
    makefile = (ROOT / "Makefile").read_text()
    bootstrap = re.search(r"^UV_VERSION\s*:=\s*(\S+)", makefile, re.M).group(1)
    assert _locked()["uv"] == [bootstrap]
    assert re.search(r"^\$\(STAMP\): pyproject.toml uv.lock$", makefile, re.M)


def test_this_environment_runs_the_locked_versions():
    """`uv sync --check` of the test extra: every locked package that this platform needs is
    installed at its locked version (`--inexact`: the bench extra or a developer's own tools may
    be there too)."""
    done = subprocess.run([str(UV), "sync", "--check", "--inexact", "--offline", "--locked",
                           "--extra", "test"], cwd=ROOT, capture_output=True, text=True,
                          env={**os.environ, "UV_PROJECT_ENVIRONMENT": sys.prefix})
    assert done.returncode == 0, done.stderr
    assert metadata.version("prefect") in _locked()["prefect"]
