"""Smoke check, not a test: a headless-Chromium screenshot of the Prefect UI's deployments page.

    python -m deployments.screenshot --ui http://127.0.0.1:4200 --out docs/deployments.png

Needs Chromium (`apt-get install -y chromium`) and a server with the deployments registered
(`make server`, `make deploy`). Look at the picture: every deployment with its schedule.
"""

from __future__ import annotations

import argparse
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import httpx

FLAGS = ("--headless", "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
         "--disable-background-networking", "--disable-component-update", "--disable-sync",
         "--hide-scrollbars", "--window-size=1600,1000", "--virtual-time-budget=15000")


def wait_for_ui(ui: str, timeout: float = 30) -> None:
    """Return once the server's health endpoint answers; fail after `timeout` seconds."""
    deadline = time.monotonic() + timeout
    while True:
        try:
            if httpx.get(f"{ui}/api/health", timeout=2).status_code == 200:
                return
        except httpx.HTTPError:
            pass
        if time.monotonic() > deadline:
            raise SystemExit(f"no Prefect server answers at {ui} (start one with `make server`)")
        time.sleep(0.5)


def screenshot(page: str, out: Path) -> Path:
    """Save a PNG of `page` as rendered by headless Chromium."""
    browser = shutil.which("chromium") or shutil.which("chromium-browser")
    if browser is None:
        raise SystemExit("Chromium is not installed: apt-get install -y chromium")
    out.parent.mkdir(parents=True, exist_ok=True)
    with tempfile.TemporaryDirectory(prefix="wfm-chromium-") as profile:
        subprocess.run([browser, *FLAGS, f"--user-data-dir={profile}", f"--screenshot={out.resolve()}", page],
                       check=True, capture_output=True, timeout=120)
    if not out.exists() or out.stat().st_size == 0:
        raise SystemExit(f"Chromium wrote no screenshot to {out}")
    return out


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description="Screenshot the Prefect UI's deployments page.")
    parser.add_argument("--ui", default="http://127.0.0.1:4200", help="the Prefect server's address")
    parser.add_argument("--out", type=Path, default=Path("docs/deployments.png"))
    args = parser.parse_args(argv)
    ui = args.ui.rstrip("/")
    wait_for_ui(ui)
    print(screenshot(f"{ui}/deployments", args.out))
    return 0


if __name__ == "__main__":  # pragma: no cover - a smoke script
    sys.exit(main())
