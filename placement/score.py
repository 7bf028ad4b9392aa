"""The canonical scorer: objective, breakdown and actions of a plan from its assignments.

Every plan the engine returns is scored here, whichever stage produced it, with the formulas of
`placement.contract`, so what the response reports is exactly what placement-v1.md computes.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass, field
from typing import TYPE_CHECKING

from models.fleet_index import fleet_index
from models.request import Placement, PlanRequest
from models.response import Action
from placement import contract
from placement.instance import Instance, Pool

if TYPE_CHECKING:
    from placement.packing import Packing

# job index -> (cluster, accelerator, {node name: replicas})
PlacedMap = dict[int, tuple[str, str, dict[str, int]]]


@dataclass
class Scored:
    """A plan's objective and breakdown; its actions are built on first use, since most scored plans
    are candidates that lose (at planet size building every action of a plan took 0.2 s of CPU)."""

    value: float = 0.0
    disruption: float = 0.0
    spread: float = 0.0
    inst: Instance | None = field(default=None, repr=False, compare=False)
    placed: PlacedMap | None = field(default=None, repr=False, compare=False)
    _actions: list[Action] | None = field(default=None, repr=False, compare=False)

    @property
    def objective(self) -> float:
        return self.value - self.disruption - self.spread

    @property
    def actions(self) -> list[Action]:
        """One action per job whose state changes, in job order (the contract's kinds)."""
        if self._actions is None:
            self._actions = plan_actions(self.inst, self.placed) if self.inst is not None else []
        return self._actions


def job_terms(inst: Instance, j: int, got: tuple[str, str, dict[str, int]] | None) -> tuple[float, float, float]:
    """(value, disruption, spread) of one job placed as `got` (None: not placed)."""
    info = inst.jobs[j]
    job = info.job
    if got is None:
        return (0.0, info.preempt_cost if job.current is not None else 0.0, 0.0)
    cluster, accel, nodes = got
    r = sum(nodes.values())
    v, d_moved, n_min = placed_terms(inst, j, cluster, accel, r)
    d = 0.0 if contract.action_kind(job.current, cluster, accel, nodes) is None else d_moved
    p = contract.spread(inst.spread_penalty, info.weight, info.dpr, job.speed[accel], len(nodes), n_min)
    return (v, d, p)


def net_of(inst: Instance, pk: Packing, jobs: Iterable[int]) -> float:
    """The objective's share of `jobs` in packing `pk` (value less disruption and spread): a move
    changes only the jobs it touches, so this sum before and after it is what judges the move."""
    total = 0.0
    for j in jobs:
        v, d, p = packed_terms(inst, pk, j)
        total += v - d - p
    return total


def packed_terms(inst: Instance, pk: Packing, j: int) -> tuple[float, float, float]:
    """`job_terms` of job j as `pk` places it, read off the packing's node indices rather than its
    placement by node names: the search's moves judge every move by the jobs it touched, hundreds of
    thousands of times a second, and building the names cost a third of that. Same terms, same floats
    (a node map equals the current one by index exactly when it does by name)."""
    o = pk.choice.get(j)
    if o is None:
        info = inst.jobs[j]
        return (0.0, info.preempt_cost if info.job.current is not None else 0.0, 0.0)
    return option_terms(inst, j, inst.pools[pk.opts.lists().pool[o]], pk.nodes[j])


def option_terms(inst: Instance, j: int, pool: Pool, nodes: dict[int, int]) -> tuple[float, float, float]:
    """`job_terms` of job j on `nodes` (node index -> replicas) of `pool`: what a move that would place it
    so is worth, judged before the move is made (no packing copied)."""
    info = inst.jobs[j]
    cluster, accel = pool.cluster, pool.accelerator
    v, d_moved, n_min = placed_terms(inst, j, cluster, accel, sum(nodes.values()))
    cur = info.job.current
    same = cur is not None and cur.cluster == cluster and cur.accelerator == accel and info.cur_nodes == nodes
    p = contract.spread(inst.spread_penalty, info.weight, info.dpr, info.job.speed[accel], len(nodes), n_min)
    return (v, 0.0 if same else d_moved, p)


def improves(delta: float) -> bool:
    """Whether a move's objective change is a gain and not rounding noise (the search keeps only these)."""
    return delta > 1e-9 * max(1.0, abs(delta))


def placed_terms(inst: Instance, j: int, cluster: str, accel: str, r: int) -> tuple[float, float, int]:
    """(value, disruption if the job changes, n_min) of job j on `r` replicas of (cluster, accel):
    what `job_terms` needs beyond the node map, computed once per instance (the search asks for the
    same few placements of a job thousands of times)."""
    key = (j, cluster, accel, r)
    got = inst.term_cache.get(key)
    if got is None:
        info = inst.jobs[j]
        job = info.job
        v = info.weight * inst.rate(job, cluster, accel, r)
        pause = inst.pause_to(info, inst.cluster_region[cluster]) or 0.0
        pool = inst.pool_of.get((cluster, accel))
        n_min = contract.fewest_nodes(r, inst.pools[pool].dmax, info.dpr) if pool is not None else 0
        got = inst.term_cache[key] = (v, contract.disruption(v, pause, inst.T), n_min)
    return got


def score(inst: Instance, placed: PlacedMap) -> Scored:
    """Objective, breakdown and actions of a plan: the canonical objective of placement-v1.md."""
    out = Scored(inst=inst, placed=placed)
    for info in inst.jobs:
        v, d, p = job_terms(inst, info.index, placed.get(info.index))
        out.value += v
        out.disruption += d
        out.spread += p
    return out


def plan_actions(inst: Instance, placed: PlacedMap) -> list[Action]:
    """The contract's action for every job whose state changes under `placed`."""
    out: list[Action] = []
    for info in inst.jobs:
        job = info.job
        got = placed.get(info.index)
        # trusted values: built without validation (the engine made them; verify.py checks plans)
        if got is None:
            if job.current is not None:
                out.append(Action.model_construct(job=job.id, kind="preempt", from_=job.current, to=None))
            continue
        cluster, accel, nodes = got
        kind = contract.action_kind(job.current, cluster, accel, nodes)
        if kind is not None:
            out.append(Action.model_construct(
                job=job.id, kind=kind, from_=job.current,
                to=Placement.model_construct(cluster=cluster, accelerator=accel, nodes=dict(nodes))))
    return out


class PauseTable:
    """The contract's pause for any action on one request, with its lookups built once."""

    def __init__(self, request: PlanRequest):
        self.overhead_s = request.policy.restart_overhead_s
        self.fleet = fleet_index(request.fleet)
        self.jobs = {j.id: j for j in request.jobs}

    def __call__(self, action: Action) -> float:
        job = self.jobs[action.job]
        region_of = self.fleet.region_of
        if action.kind == "preempt":
            src, dst = region_of[action.from_.cluster], None
        else:
            dst = region_of[action.to.cluster]
            src = job.checkpoint_region if action.kind == "start" else region_of[action.from_.cluster]
        pause = contract.pause_s(self.fleet, self.overhead_s, action.kind, job.checkpoint_gb, src, dst)
        if pause is None:
            raise ValueError(f"no link between {src} and {dst} for job {job.id}")
        return pause


_last_table: tuple[PlanRequest, PauseTable] | None = None


def pause_for_action(request: PlanRequest, action: Action) -> float:
    """Seconds of pause the contract charges for one action (what an executor is modelled to take).
    Executors call this once per action of a plan: the lookups of the last request are reused."""
    global _last_table
    last = _last_table
    if last is None or last[0] is not request:
        last = (request, PauseTable(request))
        _last_table = last
    return last[1](action)
