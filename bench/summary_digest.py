"""Print a digest of a replay's summary.json without its timing keys: two runs that decided the same agree.

`python bench/summary_digest.py runs/x/summary.json [more ...]` prints one `sha256  path` line each. The keys
that measure this machine rather than the schedule (wall and CPU seconds, planner seconds) are left out, so a
deterministic replay gives the same digest before and after a change that should not alter behaviour.
"""

from __future__ import annotations

import hashlib
import json
import sys

TIMING_KEYS = ("wall_s", "cpu_s", "planner_s_p50", "planner_s_p99", "planner_s_total")


def digest(path: str) -> str:
    with open(path, encoding="utf-8") as f:
        summary = json.load(f)
    for key in TIMING_KEYS:
        summary.pop(key, None)
    return hashlib.sha256(json.dumps(summary, sort_keys=True).encode()).hexdigest()


if __name__ == "__main__":
    for p in sys.argv[1:]:
        print(f"{digest(p)}  {p}")
