"""A plan the optimizer would return anyway, found without it: every job at its best possible value.

When no job has to give way, the canonical objective's optimum is known without search: each job
placed at `max` replicas (its largest `allowed` count) on its fastest accelerator, inside its data
region (when it has one), on the fewest nodes possible (no spread), running jobs left exactly where
they are (no disruption), and preempted jobs restarted in their checkpoint's region (the least pause
a start can pay). Such a plan reaches every job's largest value, pays only the start pauses no plan
can avoid, and no spread, so no valid plan scores higher. `optimal_starts(request)` returns that
plan, or None whenever any condition fails (someone does not fit, an elastic job runs below `max`,
a job runs slower or remote than it could, ...); the planner then runs as usual.
"""

from __future__ import annotations

from executor.actions import response_from_placements
from executor.schedulers.packing import FreeMap
from models import Job, Placement, PlanRequest, PlanResponse
from models.fleet_index import fleet_index
from placement.contract import fewest_nodes


def optimal_starts(request: PlanRequest) -> PlanResponse | None:
    if _overfull(request):
        return None
    free = FreeMap(request)
    dmax = free.pool_dmax
    region_of = free.region_of
    placed: dict[str, Placement] = {}
    waiting: list[Job] = []
    for job in request.jobs:
        cur = job.current
        if cur is None:
            waiting.append(job)
            continue
        if not (_best(job, cur, region_of, dmax) and free.can_keep(job, cur)):
            return None
        free.take(job, cur)
        placed[job.id] = cur
    for job in waiting:
        home = job.checkpoint_region
        p = free.place(job, job.replicas.top, home)
        if p is None or not _best(job, p, region_of, dmax) or (home is not None and region_of[p.cluster] != home):
            return None
        free.take(job, p)
        placed[job.id] = p
    return response_from_placements(request, placed, engine="fastpath")


def _overfull(request: PlanRequest) -> bool:
    """Whether the waiting jobs at their `max` need more devices than the up nodes have beside the
    running jobs: then some job cannot get its best and `optimal_starts` answers None, which this
    says in one pass over the jobs (the usual case on a contended fleet) instead of a packing."""
    fx = fleet_index(request.fleet)
    room = sum(d for d, up in zip(fx.devices, fx.up) if up)
    for job in request.jobs:
        cur = job.current
        room -= job.devices_per_replica * (job.replicas.top if cur is None else sum(cur.nodes.values()))
    return room < 0


def _best(job: Job, p: Placement, region_of: dict[str, str], dmax: dict[tuple[str, str], int]) -> bool:
    """At max replicas, on the job's fastest type, local to its data, on the fewest nodes."""
    if p.replicas != job.replicas.top or job.speed[p.accelerator] < max(job.speed.values()):
        return False
    if job.data_region is not None and region_of[p.cluster] != job.data_region:
        return False
    n_min = fewest_nodes(p.replicas, dmax.get((p.cluster, p.accelerator), 0), job.devices_per_replica)
    return n_min > 0 and len(p.nodes) == n_min

