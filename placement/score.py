"""The contract's arithmetic, written once: objective, breakdown and actions from assignments.

Every plan the engine returns is scored here, whichever stage produced it, so what the
response reports is exactly what placement-v1.md computes from its assignments.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field

from models.request import Job, Placement, PlanRequest
from models.response import Action
from placement.instance import Instance

# job index -> (cluster, accelerator, {node name: replicas})
PlacedMap = dict[int, tuple[str, str, dict[str, int]]]


@dataclass
class Scored:
    value: float = 0.0
    disruption: float = 0.0
    spread: float = 0.0
    actions: list[Action] = field(default_factory=list)

    @property
    def objective(self) -> float:
        return self.value - self.disruption - self.spread


def action_kind(job: Job, cluster: str, accel: str, nodes: dict[str, int]) -> str | None:
    """The contract's action kind for moving `job` to this placement; None if nothing changes."""
    cur = job.current
    if cur is None:
        return "start"
    if cur.cluster == cluster and cur.accelerator == accel:
        if cur.nodes == nodes:
            return None
        return "resize" if sum(cur.nodes.values()) != sum(nodes.values()) else "move"
    return "migrate"


def job_terms(inst: Instance, j: int, got: tuple[str, str, dict[str, int]] | None) -> tuple[float, float, float]:
    """(value, disruption, spread) of one job placed as `got` (None: not placed)."""
    info = inst.jobs[j]
    job = info.job
    if got is None:
        return (0.0, info.preempt_cost if job.current is not None else 0.0, 0.0)
    cluster, accel, nodes = got
    r = sum(nodes.values())
    v = info.weight * inst.rate(job, cluster, accel, r)
    d = 0.0
    if action_kind(job, cluster, accel, nodes) is not None:
        pause = inst.pause_to(info, inst.cluster_region[cluster]) or 0.0
        d = v * min(pause, inst.T) / inst.T
    p = 0.0
    pool = inst.pool_of.get((cluster, accel))
    per = inst.pools[pool].dmax // info.dpr if pool is not None else 0
    if per > 0:
        p = inst.spread_penalty * info.weight * info.dpr * job.speed[accel] * (len(nodes) - math.ceil(r / per))
    return (v, d, p)


def score(inst: Instance, placed: PlacedMap) -> Scored:
    """Objective, breakdown and actions of a plan: the canonical objective of placement-v1.md."""
    out = Scored()
    for info in inst.jobs:
        job = info.job
        got = placed.get(info.index)
        v, d, p = job_terms(inst, info.index, got)
        out.value += v
        out.disruption += d
        out.spread += p
        # trusted values: built without validation (the engine made them; verify.py checks plans)
        if got is None:
            if job.current is not None:
                out.actions.append(Action.model_construct(job=job.id, kind="preempt", from_=job.current, to=None))
            continue
        cluster, accel, nodes = got
        kind = action_kind(job, cluster, accel, nodes)
        if kind is not None:
            out.actions.append(Action.model_construct(
                job=job.id, kind=kind, from_=job.current,
                to=Placement.model_construct(cluster=cluster, accelerator=accel, nodes=dict(nodes))))
    return out


class PauseTable:
    """The contract's pause for any action on one request, with its lookups built once."""

    def __init__(self, request: PlanRequest):
        pol = request.policy
        fleet = request.fleet
        self.overhead_s = pol.restart_overhead_s
        self.region_of = {c.name: c.region for c in fleet.clusters}
        self.storage = {r.name: r.storage_gbps for r in fleet.regions}
        self.links: dict[tuple[str, str], float] = {}
        for link in fleet.links:
            self.links[(link.a, link.b)] = self.links[(link.b, link.a)] = link.gbps
        self.jobs = {j.id: j for j in request.jobs}

    def __call__(self, action: Action) -> float:
        job = self.jobs[action.job]
        ck = job.checkpoint_gb

        def xfer(a: str, b: str) -> float:
            if a == b:
                return 0.0
            if (a, b) not in self.links:
                raise ValueError(f"no link between {a} and {b} for job {job.id}")
            return ck / self.links[(a, b)]

        O = self.overhead_s
        if action.kind == "preempt":
            return O + ck / self.storage[self.region_of[action.from_.cluster]]
        g = self.region_of[action.to.cluster]
        if action.kind == "start":
            g0 = job.checkpoint_region
            return O if g0 is None else O + xfer(g0, g) + ck / self.storage[g]
        g0 = self.region_of[action.from_.cluster]
        return O + ck / self.storage[g0] + xfer(g0, g) + ck / self.storage[g]


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
