"""The source systems wfm-pipelines knows: one declaration each, looked up by the name streams carry.

A stream names its system (`Stream.system`); everything that differs between systems — how
their settings are named, what a 404 means, the shortest sensible timeout, whether a repeated
500 is final — is read from here, never decided by comparing names. A system this registry does not know is an error, not a
silent fallback to another system's settings.
"""

from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True)
class SourceSystem:
    name: str                    # what streams, messages and the ledger call it
    key: str                     # its attribute in a run's settings, its block's slot
    env_prefix: str              # WFM_<prefix>_URL, …
    hint: str                    # how to configure it, for the "not configured" message
    not_found_is_empty: bool     # 404 means "no data for this request" (not "no such API")
    min_timeout: float = 0.0     # seconds; a request to it never gets less
    repeated_500_is_final: bool = False   # the same 500 message twice: a fault in its code, not retried


CONTACT_CENTER_SYSTEM = SourceSystem(
    "contact center", "contact_center", "WFM_CC",
    "set WFM_CC_URL (and WFM_CC_TOKEN or WFM_CC_USERNAME/WFM_CC_PASSWORD)", not_found_is_empty=True)
ONEC_SYSTEM = SourceSystem(
    "1C:ZUP", "onec", "WFM_ONEC", "set WFM_ONEC_URL, WFM_ONEC_USERNAME and WFM_ONEC_PASSWORD",
    not_found_is_empty=False, min_timeout=60.0,    # 1C's HTTP services answer slowly on month-long periods
    repeated_500_is_final=True)                    # its own code failing answers 500 with the same message

SYSTEMS: dict[str, SourceSystem] = {s.name: s for s in (CONTACT_CENTER_SYSTEM, ONEC_SYSTEM)}


def source_system(name: str) -> SourceSystem:
    """The system a stream or a setting names; an unknown name is a one-line error."""
    try:
        return SYSTEMS[name]
    except KeyError:
        raise ValueError(f"unknown source system {name!r}; known: {', '.join(SYSTEMS)}") from None
