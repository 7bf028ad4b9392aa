"""A reservation for the gang job the planner's plans keep passing over, so that devices freed one at
a time are not refilled one at a time (the planner's side of EASY backfilling, non-clairvoyant).

A job whose replicas need several devices on one node (`devices_per_replica` > 1) starts only where a
node has that many free. Between epochs every freed device is refilled by the next small job at
once, so on a busy fleet no node ever drains and such a job waits for the rare moment a whole node
frees at one boundary (on Philly days 30-37, 8-GPU jobs waited 5,300 s (standard) to 21,900 s
(basic) on average with backfill, 1 % of the jobs and over half of the mean time above the floor).

`reserve_for_heads(request, head_ids, most)` picks up to `most` heads (the replay: 1): the previous
heads while they wait, then the waiting gang jobs that fit nowhere now with the largest weight
`tier_weights[tier] * priority` (earliest in the request on ties). When the head fits now, it is started there: the planner gets it
as a running job, protected (premium tier, its count fixed) so the plan cannot undo the start; when
it does not, the freest nodes of the pool it is closest to fitting in (`FreeMap.reserve`) are held
for it: their free devices go to a placeholder running job (premium, never preempted) and nothing
else starts there, so those nodes only drain. The planner plans the rest as usual; the placeholder
is taken out of its plan and the actions are recomputed against the real request, so the plan
returned is valid for the request as asked. With one head at most one job's worth of devices idles
while it drains; more heads drain more nodes at once (more gang jobs served, more devices idle).
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

from executor.schedulers.packing import FreeMap
from models import Job, Placement, PlanRequest, Replicas

PLACEHOLDER_TENANT = "reservation"


@dataclass(frozen=True)
class Reservation:
    heads: tuple[str, ...]                       # the jobs it is for, in the order they were served
    request: PlanRequest                         # what the planner is asked instead
    started: dict[str, Placement]                # heads started now where they fit
    placeholders: frozenset[str] = frozenset()   # jobs holding reserved devices (never in the plan returned)


def reserve_for_heads(request: PlanRequest, head_ids: Sequence[str], most: int = 1) -> Reservation | None:
    """The reservation for this request (up to `most` heads: the previous heads still waiting first),
    or None when no gang job waits (or their own quotas hold them)."""
    jobs = {j.id: j for j in request.jobs}
    free = FreeMap(request)
    for j in request.jobs:
        if j.current is not None and free.can_keep(j, j.current):
            free.take(j, j.current)
    quota_keys = {(q.tenant, q.tier) for q in request.quotas}
    heads: list[str] = []
    started: dict[str, Placement] = {}
    replace: dict[str, Job] = {}
    extra: list[Job] = []
    sticky = [jobs[h] for h in head_ids if h in jobs and jobs[h].current is None]
    seen: set[str] = set()
    while len(heads) < most:
        head = sticky.pop(0) if sticky else _pick(request, free, seen)
        if head is None:
            break
        seen.add(head.id)
        want = head.replicas.bottom
        if not free.quota_ok(head, want):
            continue
        p = free.place(head, want, head.checkpoint_region)
        if p is not None:
            if (head.tenant, "premium") in quota_keys:
                continue            # protecting it as premium would count it against a premium quota
            free.take(head, p)
            heads.append(head.id)
            started[head.id] = p
            replace[head.id] = head.model_copy(update={"tier": "premium", "current": p,
                                                       "replicas": Replicas(min=want, max=want)})
            continue
        before = {key: dict(pool.free) for key, pool in free.pools.items()}
        spot = free.reserve(head, want, head.checkpoint_region)
        if spot is None:
            continue
        heads.append(head.id)
        pool_free = before[(spot.cluster, spot.accelerator)]
        nodes = {n: min(pool_free[n], k * head.devices_per_replica) for n, k in spot.nodes.items()}
        nodes = {n: d for n, d in nodes.items() if d > 0}
        if not nodes:
            continue
        count = sum(nodes.values())
        pid = f"reservation-for-{head.id}"[:200]
        while pid in jobs:
            pid += "_"
        extra.append(Job(id=pid, tenant=PLACEHOLDER_TENANT, tier="premium", replicas=Replicas(min=count, max=count),
                         devices_per_replica=1, speed={spot.accelerator: 1.0}, checkpoint_gb=0.0,
                         current=Placement(cluster=spot.cluster, accelerator=spot.accelerator, nodes=nodes)))
    if not heads:
        return None
    return Reservation(tuple(heads), _with(request, replace, extra), started,
                       frozenset(j.id for j in extra))


def _pick(request: PlanRequest, free: FreeMap, taken: set[str]) -> Job | None:
    tw = request.policy.tier_weights
    waiting = [(k, j) for k, j in enumerate(request.jobs)
               if j.current is None and j.devices_per_replica > 1 and j.id not in taken]
    waiting.sort(key=lambda kj: (-getattr(tw, kj[1].tier) * kj[1].priority, kj[0]))
    for _k, j in waiting:
        if free.quota_ok(j, j.replicas.bottom) and free.place(j, j.replicas.bottom, j.checkpoint_region) is None:
            return j
    return None


def _with(request: PlanRequest, replace: dict[str, Job], extra: list[Job]) -> PlanRequest:
    jobs = [replace.get(j.id, j) for j in request.jobs] + extra
    return PlanRequest.model_construct(**{**dict(request), "jobs": jobs})
