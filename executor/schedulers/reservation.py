"""A reservation for the gang job the planner's plans keep passing over, so that devices freed one at
a time are not refilled one at a time (the planner's side of EASY backfilling, non-clairvoyant).

A job whose replicas need several devices on one node (`devices_per_replica` > 1) starts only where a
node has that many free. Between epochs every freed device is refilled by the next small job at
once, so on a busy fleet no node ever drains and such a job waits for the rare moment a whole node
frees at one boundary (on Philly days 30-37, 8-GPU jobs waited 5,300 s (standard) to 21,900 s
(basic) on average with backfill, 1 % of the jobs and over half of the mean time above the floor).

`reserve_for_head(request, head_id)` picks one head: the previous head while it waits, else the
waiting gang job that fits nowhere now with the largest weight `tier_weights[tier] * priority`
(earliest in the request on ties). When the head fits now, it is started there: the planner gets it
as a running job, protected (premium tier, its count fixed) so the plan cannot undo the start; when
it does not, the freest nodes of the pool it is closest to fitting in (`FreeMap.reserve`) are held
for it: their free devices go to a placeholder running job (premium, never preempted) and nothing
else starts there, so those nodes only drain. The planner plans the rest as usual; the placeholder
is taken out of its plan and the actions are recomputed against the real request, so the plan
returned is valid for the request as asked. One head at a time, so at most one job's worth of
devices idles while it drains.
"""

from __future__ import annotations

from dataclasses import dataclass

from executor.schedulers.packing import FreeMap
from models import Job, Placement, PlanRequest, Replicas

PLACEHOLDER_TENANT = "reservation"


@dataclass(frozen=True)
class Reservation:
    head: str                           # the job it is for
    request: PlanRequest                # what the planner is asked instead
    started: Placement | None = None    # the head, started now where it fits
    placeholder: str | None = None      # the job holding the reserved devices (not in the plan returned)


def reserve_for_head(request: PlanRequest, head_id: str | None) -> Reservation | None:
    """The reservation for this request, or None when no gang job waits (or its own quota holds it)."""
    jobs = {j.id: j for j in request.jobs}
    free = FreeMap(request)
    for j in request.jobs:
        if j.current is not None and free.can_keep(j, j.current):
            free.take(j, j.current)
    head = jobs.get(head_id) if head_id is not None else None
    if head is None or head.current is not None:
        head = _pick(request, free)
    if head is None:
        return None
    want = head.replicas.bottom
    if not free.quota_ok(head, want):
        return None
    quota_keys = {(q.tenant, q.tier) for q in request.quotas}
    p = free.place(head, want, head.checkpoint_region)
    if p is not None:
        if (head.tenant, "premium") in quota_keys:
            return None             # protecting it as premium would count it against a premium quota
        held = head.model_copy(update={"tier": "premium", "current": p,
                                       "replicas": Replicas(min=want, max=want)})
        return Reservation(head.id, _with(request, {head.id: held}), started=p)
    before = {key: dict(pool.free) for key, pool in free.pools.items()}
    spot = free.reserve(head, want, head.checkpoint_region)
    if spot is None:
        return None
    pool_free = before[(spot.cluster, spot.accelerator)]
    nodes = {n: min(pool_free[n], k * head.devices_per_replica) for n, k in spot.nodes.items()}
    nodes = {n: d for n, d in nodes.items() if d > 0}
    if not nodes:
        return Reservation(head.id, request)
    count = sum(nodes.values())
    pid = f"reservation-for-{head.id}"[:200]
    while pid in jobs:
        pid += "_"
    holder = Job(id=pid, tenant=PLACEHOLDER_TENANT, tier="premium", replicas=Replicas(min=count, max=count),
                 devices_per_replica=1, speed={spot.accelerator: 1.0}, checkpoint_gb=0.0,
                 current=Placement(cluster=spot.cluster, accelerator=spot.accelerator, nodes=nodes))
    return Reservation(head.id, _with(request, {}, extra=holder), placeholder=pid)


def _pick(request: PlanRequest, free: FreeMap) -> Job | None:
    tw = request.policy.tier_weights
    waiting = [(k, j) for k, j in enumerate(request.jobs) if j.current is None and j.devices_per_replica > 1]
    waiting.sort(key=lambda kj: (-getattr(tw, kj[1].tier) * kj[1].priority, kj[0]))
    for _k, j in waiting:
        if free.quota_ok(j, j.replicas.bottom) and free.place(j, j.replicas.bottom, j.checkpoint_region) is None:
            return j
    return None


def _with(request: PlanRequest, replace: dict[str, Job], extra: Job | None = None) -> PlanRequest:
    jobs = [replace.get(j.id, j) for j in request.jobs]
    if extra is not None:
        jobs.append(extra)
    return PlanRequest.model_construct(**{**dict(request), "jobs": jobs})
