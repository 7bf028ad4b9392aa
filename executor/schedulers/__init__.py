"""Schedulers the epoch loop can drive: the planner (`cpsat`) and the baselines (`fifo`, `las`).

Each has `name`, `decide(request, state) -> PlanResponse` and `replan_when_quiet(state) -> bool`
(see `executor.loop`). `make_scheduler(name, ...)` builds one by name.
"""

from __future__ import annotations

from typing import Any

SCHEDULERS = ("cpsat", "fifo", "las")


def make_scheduler(name: str, **options: Any):
    """The scheduler called `name` (cpsat | fifo | las) with its options."""
    if name == "fifo":
        from executor.schedulers.fifo import FifoScheduler

        return FifoScheduler(**options)
    if name == "las":
        from executor.schedulers.las import LasScheduler

        return LasScheduler(**options)
    if name == "cpsat":
        from executor.schedulers.cpsat import CpsatScheduler

        return CpsatScheduler(**options)
    raise ValueError(f"unknown scheduler {name!r}: expected one of {', '.join(SCHEDULERS)}")
