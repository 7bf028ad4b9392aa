"""A plan the optimizer would return anyway, found without it: every job at its best possible value.

When no job has to give way, the canonical objective's optimum is known without search: each job
placed at `max` replicas (its largest `allowed` count) on its fastest accelerator, inside its data
region (when it has one), on the fewest nodes possible (no spread), running jobs left exactly where
they are (no disruption), and preempted jobs restarted in their checkpoint's region (the least pause
a start can pay). Such a plan reaches every job's largest value, pays only the start pauses no plan
can avoid, and no spread, so no valid plan scores higher. `optimal_starts(request)` returns that
plan, or None whenever any condition fails (someone does not fit, an elastic job runs below `max`,
a job runs slower or remote than it could, ...); the planner then runs as usual.

A backfill request (contract v1.1, `policy.mode: "backfill"`) asks less: every running job that
qualifies keeps its placement whatever it is worth, so only the waiting jobs must reach their best,
and a waiting job that does not fit even at its fewest replicas on the devices the running jobs
leave free cannot be placed by any backfill plan (nothing running may move), so it is left out.
This answers most of a replay's backfill plans (arrivals onto a part-empty fleet, a gang job
waiting for a node to drain beside small ones that fit) in a millisecond, where the engine
compiles every waiting job first.
"""

from __future__ import annotations

from executor.actions import response_from_placements
from executor.schedulers.packing import FreeMap
from models import Job, Placement, PlanRequest, PlanResponse
from models.fleet_index import fleet_index
from placement.contract import fewest_nodes


def optimal_starts(request: PlanRequest) -> PlanResponse | None:
    backfill = request.policy.mode == "backfill"
    if not backfill and _overfull(request):
        return None
    free = FreeMap(request)
    dmax = free.pool_dmax
    region_of = free.region_of
    placed: dict[str, Placement] = {}
    waiting: list[Job] = []
    reasons: dict[str, tuple[str, str]] = {}
    if backfill:
        if not _pin_running(request.jobs, free):
            return None
        placed = {j.id: j.current for j in request.jobs if j.current is not None}
        waiting = _startable([j for j in request.jobs if j.current is None], free, reasons)
        if _short_of_room(free, waiting):
            return None
    else:
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
    return response_from_placements(request, placed, reasons, engine="fastpath")


def _pin_running(jobs: list[Job], free: FreeMap) -> bool:
    """Take every running job's devices and quota from `free`, where a backfill plan must keep each
    one where it runs (the contract's rule: its nodes up and in its pool, its count allowed, its
    region allowed, its quota not overrun by the running jobs together); False, `free` then
    undefined, when one does not qualify (the engine plans it as usual: the fast path declines).
    One pass over the jobs and one update per node, not a packing step per job: a replay asks
    thousands of these."""
    used: dict[str, int] = {}
    quota_use: dict[tuple[str, str], int] = {}
    node_pool = free.node_pool
    for job in jobs:
        cur = job.current
        if cur is None:
            continue
        pool = free.pools.get((cur.cluster, cur.accelerator))
        dpr = job.devices_per_replica
        r = 0
        for n, k in cur.nodes.items():
            if node_pool.get(n) is not pool:      # down, missing, or not of that cluster and type
                return False
            used[n] = used.get(n, 0) + k * dpr
            r += k
        if not job.replicas.grants(r):
            return False
        if job.regions is not None and free.region_of[cur.cluster] not in job.regions:
            return False
        key = (job.tenant, job.tier)
        if key in free.quota_left:
            quota_use[key] = quota_use.get(key, 0) + r * dpr
    for key, u in quota_use.items():
        if u > free.quota_left[key]:
            return False
        free.quota_left[key] -= u
    for n, u in used.items():
        pool = node_pool[n]
        if u > pool.free[n]:
            return False
        pool.set_free(n, pool.free[n] - u)
    return True


def _startable(waiting: list[Job], free: FreeMap, reasons: dict[str, tuple[str, str]]) -> list[Job]:
    """The waiting jobs some backfill plan could start: those whose fewest replicas fit, alone, on the
    devices the running jobs leave free (quota, regions and checkpoint links respected); the others
    get their reason in `reasons`."""
    out = []
    for job in waiting:
        if free.place(job, job.replicas.bottom, job.checkpoint_region) is None:
            need = job.replicas.bottom * job.devices_per_replica
            why = (f"fastpath: no free room for its fewest replicas ({need} devices) beside the running "
                   "jobs, which a backfill plan keeps")
            reasons[job.id] = ("no_capacity", why)
        else:
            out.append(job)
    return out


def _short_of_room(free: FreeMap, waiting: list[Job]) -> bool:
    """Whether `waiting` at their `max` need more devices than are free: then some job cannot get
    its best (one pass, before any packing)."""
    room = sum(sum(pool.free.values()) for pool in free.pools.values())
    return sum(j.devices_per_replica * j.replicas.top for j in waiting) > room


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
