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
# Keys derived from others (the floor: the trace's mean duration, and mean JCT less it), left out so that a
# digest taken before they existed still compares; the decisions they summarize are all in the other keys.
DERIVED_KEYS = ("avg_duration_s", "avg_jct_above_floor_s")


def digest(path: str) -> str:
    with open(path, encoding="utf-8") as f:
        summary = json.load(f)
    for key in TIMING_KEYS + DERIVED_KEYS:
        summary.pop(key, None)
    for key in [k for k in summary.get("backfill") or {} if k.startswith("planner_s")]:
        del summary["backfill"][key]                  # the backfill block's planner times measure the machine too
    for tier in (summary.get("jct_by_tier") or {}).values():
        for key in DERIVED_KEYS:
            tier.pop(key, None)
    return hashlib.sha256(json.dumps(summary, sort_keys=True).encode()).hexdigest()


if __name__ == "__main__":
    for p in sys.argv[1:]:
        print(f"{digest(p)}  {p}")
