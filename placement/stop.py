"""Stopping criteria: when the engine's stages stop, by the wall clock or by deterministic work.

Modelled on PyVRP's `pyvrp/stop/`: small objects the stages ask instead of branching on
`policy.deterministic`. `MaxRuntime` answers from a deadline (what is left goes to the stage that
runs); `WorkUnits` answers from the request alone (CP-SAT work units, iteration and step counts
fixed by the time limit), so the same request gives the same plan on any machine and load.
Both give a stage its budget through `budget(units, seconds)`: the stage states both figures, the
criterion picks its own.
"""

from __future__ import annotations

import time
from typing import Any, Protocol

from models.request import Policy


class StoppingCriterion(Protocol):
    deterministic: bool

    def left(self, until: float | None = None) -> float:
        """Wall-clock seconds to `until` (default: the deadline)."""

    def may_start(self, needs_s: float, until: float | None = None) -> bool:
        """Whether a stage that needs more than `needs_s` seconds before `until` may start."""

    def stopped(self, margin_s: float, until: float | None = None) -> bool:
        """Whether a loop must stop now (less than `margin_s` left)."""

    def budget(self, units: float, seconds: float) -> float:
        """A stage's budget: `units` (deterministic work) or `seconds` (wall clock)."""

    def cpsat_parameters(self, budget: float, workers: int) -> dict[str, Any]:
        """CP-SAT parameters that stop a solve at `budget`."""


class MaxRuntime:
    """Stop at a wall-clock deadline; each stage gets a share of what is left."""

    deterministic = False

    def __init__(self, deadline: float):
        self.deadline = deadline

    def left(self, until: float | None = None) -> float:
        return (self.deadline if until is None else until) - time.perf_counter()

    def may_start(self, needs_s: float, until: float | None = None) -> bool:
        return self.left(until) > needs_s

    def stopped(self, margin_s: float, until: float | None = None) -> bool:
        return self.left(until) < margin_s

    def budget(self, units: float, seconds: float) -> float:
        return seconds

    def cpsat_parameters(self, budget: float, workers: int) -> dict[str, Any]:
        return {"num_workers": max(1, workers), "max_time_in_seconds": max(0.01, budget)}


SAFETY_FACTOR = 20.0   # deterministic: wall-clock safety nets sit this many times above the work's budget


def safety_s(budget: float) -> float:
    """The wall-clock safety net of a deterministic solve of `budget` work units: far above what the
    work takes even on a machine loaded ten times over, so the same request gives the same plan; it
    only fires on a solver that misbehaves (and then the plan may differ)."""
    return max(10.0, SAFETY_FACTOR * budget + 10.0)


class WorkUnits:
    """Stop after deterministic work fixed by the request; the wall clock never decides. The wall
    limit given to CP-SAT is a safety net only, far above what the work takes (`safety_s`)."""

    deterministic = True

    def __init__(self, deadline: float):
        self.deadline = deadline            # reported, never obeyed

    def left(self, until: float | None = None) -> float:
        return (self.deadline if until is None else until) - time.perf_counter()

    def may_start(self, needs_s: float, until: float | None = None) -> bool:
        return True

    def stopped(self, margin_s: float, until: float | None = None) -> bool:
        return False

    def budget(self, units: float, seconds: float) -> float:
        return units

    def cpsat_parameters(self, budget: float, workers: int) -> dict[str, Any]:
        return {"num_workers": 1, "max_deterministic_time": max(0.05, budget),
                "max_time_in_seconds": safety_s(max(0.05, budget))}


def criterion(policy: Policy, deadline: float) -> StoppingCriterion:
    """The request's criterion: `WorkUnits` when `policy.deterministic`, else `MaxRuntime`."""
    return WorkUnits(deadline) if policy.deterministic else MaxRuntime(deadline)


CHECK_EVERY = 32   # jobs between two looks at the clock in a stoppable pass


class PassDeadline:
    """A pass's stop: past `deadline` (a perf_counter reading; None: never) it stops placing what
    is optional. Looks at the clock every CHECK_EVERY asks; once past, stays past."""

    def __init__(self, deadline: float | None):
        self.deadline = deadline
        self.count = 0
        self.hit = False

    def passed(self) -> bool:
        if self.deadline is None or self.hit:
            return self.hit
        self.count += 1
        if self.count % CHECK_EVERY == 0 and time.perf_counter() > self.deadline:
            self.hit = True
        return self.hit
