"""Rule policies: how strictly each check is enforced, from the `[rules]` and `[expectations]` of wfm.toml.

    [rules]                                   # tolerances for every reconciliation rule
    settle_hours = 24
    [rules.handled_calls_match_intervals]     # one rule: its severity and its own tolerances
    severity = "warn"                         # error | warn | off
    calls_share = 0.10
    [expectations.timesheet_days]             # the row checks of one stream, by check name
    threshold = 0.10                          # failing share above which a window is held back
    "ExpectColumnValuesToBeInSet(time_type)" = "warn"

A source the rules were not written against may disagree with itself in ways nobody can fix
upstream; the operator says here how much of that to accept, per rule, instead of editing code.
`error` enforces (a reconciliation rule holds what broke, a row check quarantines the row),
`warn` records and tells, `off` does not run the rule (a row check's result is dropped).
A tolerance comes from, weakest first: its declared default, `[rules]`, the environment
variable WFM_RECONCILE_<NAME>, `[rules.<name>]`. The policy in force is stored with every
reconciliation result (`wfm_meta.check_results.policy`), and row checks count in the content hash
of a window (`engine/landing/content.py`), so a changed policy checks the window again.
"""

from __future__ import annotations

import dataclasses
import os
from dataclasses import dataclass
from typing import Any

import orjson

from engine.project_file import ConfigError, describe, section
from engine.quality.rules import ERROR, RULES, WARN, Rule

__all__ = ["OFF", "SEVERITIES", "ExpectationPolicy", "RulePolicy", "Tolerances", "expectation_policy",
           "expectations_fingerprint", "rule_policy"]

OFF = "off"
SEVERITIES = (ERROR, WARN, OFF)


@dataclass(frozen=True)
class Tolerances:
    """How far honest data may disagree; each field can be set in [rules], the environment or per rule."""

    seconds: float = 1.0          # statuses and calls vs login sessions, and status overlaps
    calls: int = 1                # handled calls vs the interval statistics, absolute ...
    calls_share: float = 0.05     # ... or this share of notUniqueTreated, whichever is larger
    chat_ms: int = 1000           # chat work time vs logged-in time of an agent-day
    settle_hours: float = 12.0    # a day of history is judged once landed this long after it ended

    @classmethod
    def from_env(cls) -> "Tolerances":
        """[rules] of wfm.toml, then WFM_RECONCILE_<FIELD> overrides."""
        base = _tolerances(cls(), section("rules"), "[rules]")
        values = {name: type(getattr(cls, name))(os.environ[f"WFM_RECONCILE_{name.upper()}"])
                  for name in cls.__dataclass_fields__ if f"WFM_RECONCILE_{name.upper()}" in os.environ}
        return dataclasses.replace(base, **values)


@dataclass(frozen=True)
class RulePolicy:
    """The severity and tolerances one reconciliation rule runs with."""

    severity: str
    declared: str                 # the rule's own severity in reconcile_rules.py
    tolerances: Tolerances

    def record(self) -> str:
        """The policy as stored with a result (JSON)."""
        return orjson.dumps({"severity": self.severity, "declared": self.declared,
                             "tolerances": dataclasses.asdict(self.tolerances)}).decode()


def rule_policy(rule: Rule, base: Tolerances | None = None) -> RulePolicy:
    """The policy of `rule`: `base` tolerances (default `Tolerances.from_env()`) under its own table."""
    _check_rule_names()
    own = section("rules").get(rule.name, {})
    severity = own.get("severity", rule.severity)
    if severity not in SEVERITIES:
        raise ConfigError(f"{describe()}: [rules.{rule.name}] severity = {severity!r}: use error, warn or off")
    tolerances = _tolerances(base or Tolerances.from_env(), {k: v for k, v in own.items() if k != "severity"},
                             f"[rules.{rule.name}]")
    return RulePolicy(severity, rule.severity, tolerances)


@dataclass(frozen=True)
class ExpectationPolicy:
    """The configured severities of a stream's row checks (by check name) and its threshold."""

    severities: dict[str, str]
    threshold: float | None = None


def expectation_policy(stream: str, known: tuple[str, ...]) -> ExpectationPolicy:
    """`[expectations.<stream>]`, checked against the stream's check names `known`."""
    own = dict(section("expectations").get(stream, {}))
    threshold = own.pop("threshold", None)
    where = f"{describe()}: [expectations.{stream}]"
    if threshold is not None and not (isinstance(threshold, (int, float)) and 0 <= threshold <= 1):
        raise ConfigError(f"{where} threshold = {threshold!r}: a share between 0 and 1")
    for name, severity in own.items():
        if name not in known:
            raise ConfigError(f"{where}: {name!r} is no check of {stream} (its checks: {', '.join(known)})")
        if severity not in SEVERITIES:
            raise ConfigError(f"{where} {name!r} = {severity!r}: use error, warn or off")
    return ExpectationPolicy(own, None if threshold is None else float(threshold))


def expectations_fingerprint(stream: str) -> bytes:
    """The configured row-check policy of a stream as bytes, for the content hash."""
    return orjson.dumps(section("expectations").get(stream, {}), option=orjson.OPT_SORT_KEYS)


def _tolerances(base: Tolerances, values: dict[str, Any], where: str) -> Tolerances:
    fields = base.__dataclass_fields__
    chosen = {k: v for k, v in values.items() if not isinstance(v, dict)}   # [rules.<name>] tables are rules
    for name, value in chosen.items():
        if name not in fields:
            raise ConfigError(f"{describe()}: {where} {name} is not a tolerance (tolerances: {', '.join(fields)})")
        if not isinstance(value, (int, float)) or isinstance(value, bool) or value < 0:
            raise ConfigError(f"{describe()}: {where} {name} = {value!r}: a number of at least 0")
    return dataclasses.replace(base, **{k: type(getattr(base, k))(v) for k, v in chosen.items()})


def _check_rule_names() -> None:
    names = {rule.name for rule in RULES}
    for name, value in section("rules").items():
        if isinstance(value, dict) and name not in names:
            raise ConfigError(f"{describe()}: [rules.{name}] names no rule (rules: {', '.join(sorted(names))})")
