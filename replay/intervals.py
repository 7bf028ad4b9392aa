"""Replications summed up: the mean of every figure, Student-t intervals for the metrics a planner decides on.

A what-if row is the mean over R replications (`replay.replications`) under each summary key's own name,
and for the metrics in `INTERVAL_KEYS` (plus any numeric key naming a `floor`, and `sla_attainment` per
tier) `<key>_ci95: [lo, hi]`, the two-sided 95 % t-interval of the mean over the replications (null when
R = 1: one run gives no spread). Shares (attainment, utilization) are clipped to [0, 1]: a mean cannot leave
it. `lower95` is the lower end of the one-sided 95 % interval, the figure the capacity search compares with
a target: a candidate "meets" only when even that end does.

The quantiles are Student's t at R - 1 degrees of freedom (a table to 30, the Cornish-Fisher expansion
beyond), so the intervals need no SciPy.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from statistics import NormalDist

INTERVAL_KEYS = ("avg_jct_s", "p50_jct_s", "p99_jct_s", "avg_queue_s", "utilization", "preemptions")
SHARE_KEYS = ("utilization", "utilization_replay")

# Student's t quantiles for df = 1..30: two-sided 95 % (0.975) and one-sided 95 % (0.95).
_T975 = (12.706, 4.303, 3.182, 2.776, 2.571, 2.447, 2.365, 2.306, 2.262, 2.228, 2.201, 2.179, 2.160, 2.145, 2.131,
         2.120, 2.110, 2.101, 2.093, 2.086, 2.080, 2.074, 2.069, 2.064, 2.060, 2.056, 2.052, 2.048, 2.045, 2.042)
_T95 = (6.314, 2.920, 2.353, 2.132, 2.015, 1.943, 1.895, 1.860, 1.833, 1.812, 1.796, 1.782, 1.771, 1.761, 1.753,
        1.746, 1.740, 1.734, 1.729, 1.725, 1.721, 1.717, 1.714, 1.711, 1.708, 1.706, 1.703, 1.701, 1.699, 1.697)


def t_quantile(p: float, df: int) -> float:
    """Student's t quantile for p in {0.95, 0.975} (table to df 30), any p beyond (Cornish-Fisher)."""
    if df < 1:
        raise ValueError(f"degrees of freedom must be >= 1, got {df}")
    table = {0.975: _T975, 0.95: _T95}.get(p)
    if table is not None and df <= len(table):
        return table[df - 1]
    z = NormalDist().inv_cdf(p)
    return (z + (z**3 + z) / (4 * df) + (5 * z**5 + 16 * z**3 + 3 * z) / (96 * df**2)
            + (3 * z**7 + 19 * z**5 + 17 * z**3 - 15 * z) / (384 * df**3))


def _spread(values: Sequence[float]) -> tuple[float, float]:
    n = len(values)
    m = sum(values) / n
    var = sum((v - m) ** 2 for v in values) / (n - 1)
    return m, math.sqrt(var / n)


def ci95(values: Sequence[float], share: bool = False) -> list[float] | None:
    """Two-sided 95 % t-interval of the mean; None for fewer than two values."""
    if len(values) < 2:
        return None
    m, se = _spread(values)
    h = t_quantile(0.975, len(values) - 1) * se
    lo, hi = m - h, m + h
    return [max(0.0, lo), min(1.0, hi)] if share else [lo, hi]


def lower95(values: Sequence[float], share: bool = False) -> float | None:
    """Lower end of the one-sided 95 % t-interval of the mean; the value itself for one value."""
    if not values:
        return None
    if len(values) == 1:
        return values[0]
    m, se = _spread(values)
    lo = m - t_quantile(0.95, len(values) - 1) * se
    return max(0.0, lo) if share else lo


def upper95(values: Sequence[float]) -> float | None:
    """Upper end of the one-sided 95 % t-interval of the mean; the value itself for one value."""
    if not values:
        return None
    if len(values) == 1:
        return values[0]
    m, se = _spread(values)
    return m + t_quantile(0.95, len(values) - 1) * se


def _number(v: object) -> bool:
    return isinstance(v, (int, float)) and not isinstance(v, bool)


def mean_of(values: list) -> object:
    """The mean of one key over replications: numbers averaged (kept exactly when all equal, so R = 1 and
    constant figures are untouched), mappings key by key, anything else from replication 0."""
    first = values[0]
    if isinstance(first, dict) and all(isinstance(v, dict) for v in values):
        return {k: mean_of([v.get(k) for v in values]) for k in first}
    nums = [v for v in values if _number(v)]
    if _number(first) or (first is None and nums):
        if not nums:
            return None
        if all(v == nums[0] for v in nums):
            return nums[0]
        return sum(nums) / len(nums)
    return first


def interval_keys(summary: dict) -> list[str]:
    """The top-level keys that get an interval: `INTERVAL_KEYS` and any numeric key naming a floor."""
    extra = [k for k, v in summary.items() if "floor" in k and (_number(v) or v is None) and k not in INTERVAL_KEYS]
    return [k for k in INTERVAL_KEYS if k in summary] + sorted(extra)


def aggregate(summaries: Sequence[dict]) -> dict:
    """One comparison row from R replications' summaries (in replication order): means under today's keys,
    `<key>_ci95`, `sla_attainment_ci95` / `sla_attainment_lower95` per tier, and the per-replication values."""
    if not summaries:
        raise ValueError("aggregate needs at least one summary")
    row = {k: mean_of([s.get(k) for s in summaries]) for k in summaries[0]}
    per_rep: dict = {}
    for k in interval_keys(summaries[0]):
        vals = [s[k] for s in summaries if _number(s.get(k))]
        per_rep[k] = [s.get(k) for s in summaries]
        row[f"{k}_ci95"] = ci95(vals, share=k in SHARE_KEYS) if len(vals) == len(summaries) else None
    tiers = list(summaries[0].get("sla_attainment", {}))
    att = {t: [s["sla_attainment"].get(t) for s in summaries] for t in tiers}
    full = {t: [v for v in vs if v is not None] for t, vs in att.items()}
    row["sla_attainment_ci95"] = {t: ci95(full[t], share=True) if len(full[t]) == len(summaries) else None
                                  for t in tiers}
    row["sla_attainment_lower95"] = {t: lower95(full[t], share=True) if len(full[t]) == len(summaries) else None
                                     for t in tiers}
    per_rep["sla_attainment"] = att
    row["replications"] = len(summaries)
    row["replication_values"] = per_rep
    row["wall_s_total"] = sum(s.get("wall_s", 0.0) for s in summaries)
    return row
