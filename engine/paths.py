"""Where wfm-pipelines keeps things on disk: the project checkout, the data directory, the lake.

    WFM_DATA_DIR       default: `.data/` in the project checkout
    WFM_LAKE_PATH      Parquet lake root; unset: `lake/` in the data dir
"""

from __future__ import annotations

import os
from pathlib import Path

PROJECT_ROOT = Path(__file__).resolve().parent.parent


def data_dir() -> Path:
    path = Path(os.environ.get("WFM_DATA_DIR") or PROJECT_ROOT / ".data")
    path.mkdir(parents=True, exist_ok=True)
    return path


def lake_path() -> str:
    """Local path or fsspec URL of the Parquet lake."""
    return os.environ.get("WFM_LAKE_PATH") or str(data_dir() / "lake")
