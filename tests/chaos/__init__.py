"""The chaos suite: scenarios that try hard to break the exactly-once promise, and count how hard.

Each scenario is a function of its counts (days, kills, inputs) that returns an `Outcome`; the
pytest files `tests/test_chaos_*.py` call them with small counts, `python -m tests.chaos` (`make
chaos`) with larger ones and prints the figures. Nothing in a figure is written by hand: it is
what the scenario injected, tried and checked.
"""

from __future__ import annotations

from dataclasses import dataclass, field


@dataclass
class Outcome:
    """What one scenario tried and what held: the row of the figures table."""

    scenario: str
    tried: int                       # faults injected, kills, malformed inputs, scans, attempts
    held: int                        # faults survived, exact reruns, inputs handled, refusals
    unit: str                        # what `tried` counts
    exact: bool = True               # every exactness check of the scenario passed
    leaks: int = 0                   # secret occurrences found (must be 0)
    problems: list[str] = field(default_factory=list)
    detail: str = ""

    @property
    def verdict(self) -> str:
        return "exact" if self.exact and not self.problems and self.held == self.tried and not self.leaks else "FAILED"

    def check(self) -> None:
        """Raise AssertionError naming every problem (what a test asserts)."""
        assert not self.problems, f"{self.scenario}: " + "; ".join(self.problems[:10])
        assert self.exact and self.held == self.tried and self.leaks == 0, self
