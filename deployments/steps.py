"""Deployment steps that workers run before a flow: kept apart from the catalog so that a pull step
imports nothing heavy (a flow-run process imports the flow itself afterwards)."""

from __future__ import annotations

import os
from pathlib import Path

PROJECT_ROOT = Path(__file__).resolve().parent.parent


def enter_project() -> dict[str, str]:
    """Pull step: run from the checkout the worker's environment has installed (`pip install -e`)."""
    os.chdir(PROJECT_ROOT)
    return {"directory": str(PROJECT_ROOT)}
