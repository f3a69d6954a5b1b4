"""Top functions by cumulative samples in a py-spy "raw" (collapsed stacks) profile.

    .venv/bin/pip install py-spy
    .venv/bin/py-spy record --nolineno --format raw -o /tmp/backfill.txt -- \
        .venv/bin/python bench/wfm_runs.py --no-rerun
    .venv/bin/python bench/hotspots.py /tmp/backfill.txt [--top 10] [--all]

A function's cumulative share is the share of samples whose stack holds it at least once. By
default only our code (connectors/, tasks/, flows/, wfm/, blocks/) is listed; `--all` lists
every function. The stage table files each sample under the outermost pipeline stage on its
stack (the names in STAGES), so the stages add up to 100% with "other".
"""

from __future__ import annotations

import argparse
import re
from collections import Counter

OURS = re.compile(r"\((?:.*/)?(?:connectors|tasks|flows|wfm|blocks)/[^/]*\.py")
FRAME = re.compile(r"^(?P<fn>.+?) \((?P<file>[^()]*?)(?::\d+)?\)$")
# (stage, function, file suffix) — checked in this order; the first one on the stack wins
STAGES = (
    ("lake publication", "publish_lake", "engine/landing/window.py"),
    ("HTTP fetch (connector)", "request_json", "connectors/http.py"),
    ("parse: flatten", "flatten", "connectors/records.py"),
    ("parse: to_arrow", "to_arrow", "connectors/records.py"),
    ("GX validation", "validate", "engine/quality/gate.py"),
    ("deduplicate", "deduplicate", "engine/landing/warehouse.py"),
    ("upsert: COPY to staging", "_copy", "engine/landing/warehouse.py"),
    ("upsert: INSERT ON CONFLICT", "upsert", "engine/landing/warehouse.py"),
    ("ledger/lineage writes", "_land", "engine/landing/window.py"),
    ("other work in sync_window", "sync_window", "engine/landing/window.py"),
    ("flow body (planning, ledger)", "sync_stream", "flows/sync.py"),
)


def read(path: str) -> list[tuple[list[str], int]]:
    stacks = []
    with open(path) as f:
        for line in f:
            stack, _, count = line.rstrip("\n").rpartition(" ")
            if stack and count.isdigit():
                stacks.append((stack.split(";"), int(count)))
    return stacks


def short(frame: str) -> str:
    m = FRAME.match(frame)
    if not m:
        return frame
    parts = m.group("file").split("/")
    keep = next((i for i, p in enumerate(parts) if p in ("site-packages", "lib")), None)
    tail = "/".join(parts[keep + 1:] if keep is not None else parts[-2:])
    return f"{m.group('fn')} ({tail})"


def stage_of(stack: list[str]) -> str:
    found = {(m.group("fn"), m.group("file")) for f in stack if (m := FRAME.match(f))}
    for stage, fn, suffix in STAGES:
        if any(name == fn and file.endswith(suffix) for name, file in found):
            return stage
    return "other (Prefect engine, harness, imports, idle)"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("profile")
    parser.add_argument("--top", type=int, default=10)
    parser.add_argument("--all", action="store_true", help="every function, not only ours")
    args = parser.parse_args()
    stacks = read(args.profile)
    total = sum(c for _, c in stacks)
    cumulative: Counter[str] = Counter()
    stages: Counter[str] = Counter()
    for stack, count in stacks:
        for frame in set(stack):
            if args.all or OURS.search(frame):
                cumulative[short(frame)] += count
        stages[stage_of(stack)] += count
    print(f"{total:,} samples\n\n| cumulative | function |\n|---:|---|")
    for name, count in cumulative.most_common(args.top):
        print(f"| {100 * count / total:5.1f}% | `{name}` |")
    print("\n| share | stage (outermost on the stack) |\n|---:|---|")
    for name, count in stages.most_common():
        print(f"| {100 * count / total:5.1f}% | {name} |")


if __name__ == "__main__":
    main()
