"""Personal data: per column `keep | hash | drop` for the lake and the quarantine.

    [personal_data.employees]        # wfm.toml: overrides the defaults below, column by column
    sn = "hash"
    second_name = "drop"

The Parquet lake is for analysts; it should not carry identifiers of people in the clear. By
default the SNILS (`employees.sn`) and 1C's personal database id (`employees.db_id`) are
**hashed**: HMAC-SHA256 with the key in `WFM_PII_KEY`, as 64 hex characters, so the same person
has the same pseudonym in every partition and run (tables still join) but nobody without the
key can recover the number — a plain hash would not do, since a SNILS has only 10^9 values to
try. Without a key, a hashed column is written as null (the schema stays the same) and a
warning is logged each time: no key, no pseudonym, and never the clear value. Names are **kept**
where the table is a directory of people — `employees` and `cc_agents`, which analysts read to
put a name to a schedule — and no other table carries them. `drop` leaves the column out of the
lake altogether.

The same policy is applied to the raw records the quarantine keeps (`ledger.quarantine`): the
record's keys of a hashed or dropped field (its source names and column name) are hashed or
removed before it is stored, so a replayed record lands the pseudonym, not the number. The
warehouse tables in PostgreSQL keep the clear values (they are the working copy the pipelines
join on); `wfm grants` gives analysts a role that cannot read those columns (`engine/privacy/grants.py`).
"""

from __future__ import annotations

import hashlib
import hmac
import logging
import os
from collections.abc import Callable, Mapping
from typing import Any

import pyarrow as pa

from connectors.streams import Stream
from engine.project_file import ConfigError, describe, section

__all__ = ["ACTIONS", "DEFAULTS", "KEY_VARIABLE", "apply", "lake_fields", "masker", "policy", "pseudonym"]

KEEP, HASH, DROP = "keep", "hash", "drop"
ACTIONS = (KEEP, HASH, DROP)
KEY_VARIABLE = "WFM_PII_KEY"
DEFAULTS: dict[str, dict[str, str]] = {"employees": {"sn": HASH, "db_id": HASH}}
log = logging.getLogger("wfm.personal_data")


def policy(stream: Stream) -> dict[str, str]:
    """Column -> hash | drop for the stream's personal columns (kept columns are not listed)."""
    chosen = {**DEFAULTS.get(stream.name, {}), **section("personal_data").get(stream.name, {})}
    types = {f.column: f.type for f in stream.fields}
    for column, action in chosen.items():
        where = f"{describe()}: [personal_data.{stream.name}] {column}"
        if column not in types:
            raise ConfigError(f"{where}: {stream.name} has no column {column!r}")
        if action not in ACTIONS:
            raise ConfigError(f"{where} = {action!r}: use keep, hash or drop")
        if action == HASH and types[column] != "text":
            raise ConfigError(f"{where}: only a text column can be hashed ({column} is {types[column]})")
    return {c: a for c, a in chosen.items() if a != KEEP}


def lake_fields(stream: Stream, fields: list[pa.Field]) -> list[pa.Field]:
    """The lake's columns: `fields` without the dropped ones."""
    dropped = {c for c, a in policy(stream).items() if a == DROP}
    return [f for f in fields if f.name not in dropped]


def apply(stream: Stream, table: pa.Table) -> pa.Table:
    """Hash the hashed columns of a table of the stream (dropped ones are never read for the lake)."""
    hashed = [c for c, a in policy(stream).items() if a == HASH and c in table.column_names]
    key = _key(stream, hashed)
    for column in hashed:
        values = [pseudonym(v, key) for v in table.column(column).to_pylist()]
        table = table.set_column(table.schema.get_field_index(column), column, pa.array(values, pa.string()))
    return table


def masker(stream: Stream) -> Callable[[Any], Any]:
    """record -> the raw source record with the policy applied to every key of a hashed or dropped
    field (its column name and source names), at any depth."""
    chosen = policy(stream)
    actions = {name: chosen[f.column] for f in stream.fields if f.column in chosen for name in {f.column, *f.sources}}
    if not actions:
        return lambda record: record
    key = _key(stream, [c for c, a in chosen.items() if a == HASH])
    return lambda record: _mask(record, actions, key)


def _mask(value: Any, actions: Mapping[str, str], key: bytes | None) -> Any:
    if isinstance(value, dict):
        return {k: (pseudonym(v, key) if actions.get(k) == HASH else _mask(v, actions, key))
                for k, v in value.items() if actions.get(k) != DROP}
    if isinstance(value, list):
        return [_mask(v, actions, key) for v in value]
    return value


def pseudonym(value: Any, key: bytes | None) -> str | None:
    """HMAC-SHA256 of the value's text under `key`, as hex; None for None and without a key."""
    if value is None or value == "":
        return value
    return None if key is None else hmac.new(key, str(value).encode(), hashlib.sha256).hexdigest()


def _key(stream: Stream, hashed: list[str]) -> bytes | None:
    """The key from WFM_PII_KEY; its absence is logged when there is something to hash."""
    key = os.environ.get(KEY_VARIABLE)
    if not key and hashed:
        log.warning("%s is not set: %s.%s written as null (no key, no pseudonym)", KEY_VARIABLE, stream.name,
                    ", ".join(hashed))
    return key.encode() if key else None
