"""The Parquet lake as a Prefect block: a local directory or an fsspec URL, with its options."""

from __future__ import annotations

import os
from collections.abc import Mapping
from typing import TYPE_CHECKING

from prefect.blocks.core import Block
from prefect.types import SecretDict
from pydantic import ConfigDict, Field

if TYPE_CHECKING:
    from fsspec import AbstractFileSystem


class LakeLocation(Block):
    """Where the Parquet lake lives: a local directory or any fsspec URL (`s3://bucket/prefix`).

    `storage_options` go to the fsspec filesystem (keys, endpoint, region ...). They are kept
    as a `SecretDict` as a whole and unwrapped only by `filesystem()`.

    Example:
        Load a saved location and list the lake's tables:
        ```python
        from blocks import LakeLocation

        lake = LakeLocation.load("BLOCK_NAME")
        fs, root = lake.filesystem()
        print(fs.ls(root))
        ```
    """

    _block_type_name = "WFM Lake Location"
    _documentation_url = "https://filesystem-spec.readthedocs.io/en/latest/"

    # a rejected value is not echoed in the error: storage options hold credentials
    model_config = ConfigDict(hide_input_in_errors=True)

    path: str = Field(description="Root of the lake: a local directory or an fsspec URL such as `s3://bucket/prefix`.")
    storage_options: SecretDict = Field(
        default_factory=lambda: SecretDict({}),
        description="Options for the fsspec filesystem, e.g. key, secret, endpoint_url; all kept secret.",
    )

    def filesystem(self) -> tuple[AbstractFileSystem, str]:
        """The fsspec filesystem and the lake's root within it."""
        from fsspec.core import url_to_fs

        return url_to_fs(self.path, **self.storage_options.get_secret_value())

    @classmethod
    def from_env(cls, env: Mapping[str, str] | None = None) -> LakeLocation | None:
        """The lake named by WFM_LAKE_PATH, or None when it is unset (the default lives in the data dir)."""
        env = os.environ if env is None else env
        path = env.get("WFM_LAKE_PATH")
        return cls(path=path) if path else None
