"""The Gittins index of attained service, learned online from the jobs seen so far (Tiresias's 2D-Gittins).

With S a job's total attained service and the job having attained `a`, the index is

    G(a) = max over quanta D of  P(S - a <= D | S > a) / E[min(S - a, D) | S > a]

the chance of finishing within the next quantum per unit of service spent on it: serving the highest
index first minimises mean completion time when only the distribution of S is known (non-clairvoyant).
Computed on a fixed grid of attained-service points, with the quanta the steps to the grid points
above, so a job's index changes only when its service crosses a grid point: two similar jobs do not
swap places every epoch (each swap costs a checkpoint and a restart), and a lookup is one bisection.

The distribution is the Kaplan-Meier estimate from what a control plane knows: the total service of
every finished job (an observation) and the service attained so far by every active job (a
lower bound, censored there). Never a job's trace duration.
"""

from __future__ import annotations

import bisect
import math
from collections.abc import Iterable, Sequence

# attained service grid (GPU-hours, a gang's scaled as the controller's levels): the levels' thresholds
# and two more. A grid doubling from 1 minute was worse on Philly days 20-27 (652 s above the floor vs
# 560 s, 1,020 preemptions vs 468): an index that moves every few minutes of service preempts often.
DEFAULT_GRID_H: tuple[float, ...] = (0.0, 1.0, 4.0, 16.0, 64.0, 256.0, 1024.0, 4096.0)


def survival(finished: Iterable[float], censored: Iterable[float], grid: Sequence[float]) -> list[float]:
    """Kaplan-Meier P(S > g) at each grid point g, from finished jobs' total service and active jobs'
    attained service (S > attained; a censored value at or below g says nothing about S > g beyond it).
    Events at a point come before the censorings there, as usual."""
    events = sorted(finished)
    cens = sorted(censored)
    points = sorted(set(events))
    surv = 1.0
    at_risk = len(events) + len(cens)
    out: list[float] = []
    ie = ic = 0
    k = 0
    for g in grid:
        # every distinct event time <= g: leave the risk set of censorings below it, then the events there
        while k < len(points) and points[k] <= g:
            t = points[k]
            while ic < len(cens) and cens[ic] < t:
                ic += 1
                at_risk -= 1
            d = 0
            while ie < len(events) and events[ie] == t:
                ie += 1
                d += 1
            if at_risk > 0:
                surv *= 1.0 - d / at_risk
            at_risk -= d
            k += 1
        out.append(surv)
    return out


def gittins_indices(surv: Sequence[float], grid: Sequence[float]) -> list[float]:
    """G(g_i) at every grid point from the survival function on the grid: the quanta are the steps
    to each grid point above. The last point has no quantum: it takes the index of the one below
    (or 0.0 where nothing survives to it). Units: 1 / the grid's unit."""
    n = len(grid)
    cells = [(grid[i + 1] - grid[i]) * 0.5 * (surv[i] + surv[i + 1]) for i in range(n - 1)]
    out: list[float] = []
    for i in range(n - 1):
        best = 0.0
        if surv[i] > 0:
            work = 0.0
            for j in range(i + 1, n):
                work += cells[j - 1]
                if work > 0:
                    best = max(best, (surv[i] - surv[j]) / work)
        out.append(best)
    out.append(out[-1] if out else 0.0)
    return out


class OnlineGittins:
    """The index table, relearned every `refresh_s` of replay time from the jobs seen so far: over every
    job once `min_samples` have finished, and with `per_class` one per class of job (its
    `devices_per_replica` bucket) that has `class_min_samples` finished jobs (the others use the
    table over every job). `index(cls, a)` is the index of the grid cell holding `a`, divided by the
    largest index of its table: 1.0 is the most urgent service in the job's class, so each class is
    ranked by its own distribution and no class is starved for having longer jobs than another."""

    def __init__(self, grid: Sequence[float] = DEFAULT_GRID_H, refresh_s: float = 3600.0, min_samples: int = 200,
                 per_class: bool = False, censored: bool = True, class_min_samples: int = 200):
        self.grid = tuple(grid)
        self.refresh_s = refresh_s
        self.min_samples = min_samples
        self.per_class = per_class
        self.censored = censored
        self.class_min_samples = class_min_samples
        self.finished: dict[str, list[float]] = {}
        self.tables: dict[str, list[float]] | None = None
        self.learned_at: float | None = None

    def add_finished(self, cls: str, service: float) -> None:
        self.finished.setdefault(cls, []).append(service)

    def due(self, now_s: float) -> bool:
        return self.learned_at is None or now_s >= self.learned_at + self.refresh_s

    def learn(self, now_s: float, active: Iterable[tuple[str, float]]) -> None:
        """Recompute the tables from the finished jobs and (with `censored`) the active jobs' attained
        service; no table (the caller's prior) while fewer than `min_samples` jobs have finished."""
        self.learned_at = now_s
        cens: dict[str, list[float]] = {}
        if self.censored:
            for cls, a in active:
                cens.setdefault(cls, []).append(a)
        every = [x for xs in self.finished.values() for x in xs]
        if len(every) < self.min_samples:
            self.tables = None
            return
        every_c = [x for xs in cens.values() for x in xs]
        tables = {"*": gittins_indices(survival(every, every_c, self.grid), self.grid)}
        if self.per_class:
            for cls, xs in self.finished.items():
                if len(xs) >= self.class_min_samples:
                    tables[cls] = gittins_indices(survival(xs, cens.get(cls, ()), self.grid), self.grid)
        self.tables = {c: [g / max(t) if max(t) > 0 else 1.0 for g in t] for c, t in tables.items()}

    def index(self, cls: str, attained: float) -> float | None:
        """The normalised index of the cell holding `attained` (None: nothing learned yet)."""
        if self.tables is None:
            return None
        table = self.tables.get(cls) or self.tables["*"]
        i = bisect.bisect_right(self.grid, attained) - 1
        return table[max(0, min(i, len(table) - 1))]


def quantise(x: float, step: float) -> float:
    """`x` rounded to the nearest power of `step` (step > 1; x > 0): a table refresh that moves an index
    a little moves no job's priority."""
    return step ** round(math.log(x, step)) if x > 0 else 0.0
