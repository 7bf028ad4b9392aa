"""Sweep fixtures shared by the local and the Ray runner tests: small real scenarios, and a summary
without the fields that measure this machine (wall and CPU seconds, planner timings)."""

from __future__ import annotations

from replay.scenarios import parse_scenarios

BASE = {"trace": "synthetic:0.25", "fleet": "single:1x8", "policy": "las", "seed": 2, "warmup_days": 0,
        "replications": 1}


def scenarios(missing_trace: str | None = None) -> list:
    """Three cheap scenarios (las, fifo, demand x1.5); with `missing_trace`, a fourth named 'broken'
    whose trace file does not exist (it fails inside its run, after the up-front checks)."""
    doc = [{"name": "las"}, {"name": "fifo", "policy": "fifo"}, {"name": "busy", "demand_scale": 1.5}]
    if missing_trace:
        doc.insert(1, {"name": "broken", "trace": missing_trace, "format": "canonical"})
    return parse_scenarios({"base": BASE, "scenarios": doc})[0]


def deterministic(value):
    """`value` (a summary or comparison row) without measured times (wall, CPU, planner seconds): what two
    runners must agree on."""
    if isinstance(value, dict):
        return {k: deterministic(v) for k, v in value.items()
                if "wall_s" not in k and "cpu_s" not in k and not k.startswith("planner_s")}
    if isinstance(value, list):
        return [deterministic(v) for v in value]
    return value


def epochs_without_timing(rows: list[list]) -> list[list]:
    """epochs.csv rows without the planner's measured seconds."""
    from replay.metrics import EPOCH_COLUMNS

    k = EPOCH_COLUMNS.index("planner_s")
    return [r[:k] + r[k + 1:] for r in rows]
