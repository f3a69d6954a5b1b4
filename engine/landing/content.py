"""A window's content hash: a re-fetched window whose content has not changed is not landed again.

An incremental run re-reads its lookback (hours to days of history, to catch late and restated
records) every time it runs, and most of those windows come back exactly as they were landed.
Landing such a window again would validate every row once more and upsert rows that do not
change. Instead the landing transaction stores a hash of what it landed — the parsed rows (with
`_extra`), the records that could not be parsed, and the version of the checks — and a later
window with the same start, the same ids and the same hash is recorded as landed, all of its
rows unchanged, without running the checks or touching the table.

The checks' version is the text of the modules that define and apply them, the Great
Expectations version and the stream's `[expectations]` policy in wfm.toml, so a changed suite
or policy validates everything again. `--force` and dry runs
always take the full path; so do imported files, which have their own ledger rows.
"""

from __future__ import annotations

import functools
import hashlib
import importlib.metadata
import importlib.util
from collections.abc import Sequence
from pathlib import Path

import orjson
import pyarrow as pa

from connectors.records import Reject
from connectors.streams import Stream
from engine.quality.policies import expectations_fingerprint

__all__ = ["content_hash"]

CHECK_MODULES = ("engine.quality.suites", "engine.quality.gate", "engine.quality.policies")


def content_hash(stream: Stream, table: pa.Table, rejects: Sequence[Reject]) -> str:
    """A hex digest of everything a window's landing depends on."""
    digest = hashlib.blake2b(digest_size=16)
    digest.update(_checks_version())
    digest.update(stream.name.encode())
    digest.update(expectations_fingerprint(stream.name))   # wfm.toml's policy for these checks
    sink = pa.BufferOutputStream()
    with pa.ipc.new_stream(sink, table.schema) as writer:
        writer.write_table(table)
    digest.update(sink.getvalue())
    for reject in rejects:
        digest.update(orjson.dumps([reject.reason, reject.field, reject.record],
                                   option=orjson.OPT_SORT_KEYS | orjson.OPT_NON_STR_KEYS, default=str))
    return digest.hexdigest()


@functools.cache
def _checks_version() -> bytes:
    """The checks' source and the GX version, read without importing GX (a run may not need it)."""
    digest = hashlib.blake2b(digest_size=16)
    for module in CHECK_MODULES:
        digest.update(Path(str(importlib.util.find_spec(module).origin)).read_bytes())
    digest.update(importlib.metadata.version("great_expectations").encode())
    return digest.digest()
