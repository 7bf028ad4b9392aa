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

With `preempt_margin` (the loop's rule with backfill on, `cpsat.event_options`), at a full plan (a
backfill plan never moves a running job) a head that fits nowhere first looks for the nodes cheapest
to clear: on each node the running jobs of least value per device (tier weight x priority, premium
ones only where the policy lets them go) until the head's replica fits, then the pool of least value
lost. When the head's value less its start pause beats `preempt_margin` times the value lost with
the victims' pauses, those jobs are preempted (waiting jobs in the planner's request, which may
restart them elsewhere) and the head starts there at once, protected as above. This is the
planner's own trade, which it cannot see while a placeholder holds the cheapest node's free devices;
such starts do not count against `most`.

With `held_s` (each job's time held devices so far, the scheduler's `LoopState.run_s`; never its
duration) two refinements, the replay's and the live loop's rule with backfill on: `drain_by_held`
drains the nodes expected to free soonest instead of the freest (on each node its occupants leave
youngest first and the node is free once the oldest of those that must leave has gone: under
heavy-tailed durations the job that has run longest is likeliest to run longest still, and a node
held behind a days-old job idles for days), and `clear_factor` lets a head clear only occupants that
have held devices more than `clear_factor` times as long as it has (least attained service first,
with hysteresis: without it a preempted long gang job, aging while it waits, clears the node of
another long one an hour or two later, and the two swap back and forth, each swap paying two pauses).
With `keep_gangs` (the same rule as the plan filter `gangkeep.py`) a head never clears a gang job of
its tier or higher: it waits for its reserved node to drain instead. With `yield_after_s` (not the
loop's rule) both rules stop sparing an occupant of the head's tier or lower once the head has waited
that long since it last stopped and the occupant's current run is longer than `yield_ratio` times that
wait (`_yielding`).

With `defrag` (and `preempt_margin`: full plans only; the loop's rule with backfill on,
`cpsat.event_options`) a head that fits nowhere while no smaller waiting job could use the free devices first
tries moves: smaller running jobs leave one node for free devices elsewhere in its pool, nobody is
preempted (`_defrag`). Such starts do not count against `most` either.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass

from executor.schedulers.packing import FreeMap
from models import Job, Placement, PlanRequest, Replicas
from models.fleet_index import fleet_index
from placement.contract import charged_s, locality, pause_s

PLACEHOLDER_TENANT = "reservation"


@dataclass(frozen=True)
class Reservation:
    heads: tuple[str, ...]                       # the jobs it is for, in the order they were served
    request: PlanRequest                         # what the planner is asked instead
    started: dict[str, Placement]                # heads started now where they fit
    placeholders: frozenset[str] = frozenset()   # jobs holding reserved devices (never in the plan returned)


def reserve_for_heads(request: PlanRequest, head_ids: Sequence[str], most: int = 1,
                      preempt_margin: float | None = None, held_s: Mapping[str, float] | None = None,
                      drain_by_held: bool = False, clear_factor: float | None = None,
                      keep_gangs: bool = False, defrag: bool = False, waited_s: Mapping[str, float] | None = None,
                      ran_s: Mapping[str, float] | None = None,
                      yield_after_s: float | None = None, yield_ratio: float = 1.0) -> Reservation | None:
    """The reservation for this request (up to `most` heads held draining: the previous heads still
    waiting first), or None when no gang job waits (or their own quotas hold them). With
    `preempt_margin` (a full plan only: a backfill plan never moves a running job) a head that fits
    nowhere starts now where preempting the occupants is worth it (`_clearing`), with `defrag`
    first where moving smaller jobs is (`_defrag`); such starts do not count against `most`."""
    jobs = {j.id: j for j in request.jobs}
    free = FreeMap(request)
    occupants: dict[str, list[Job]] = {}
    for j in request.jobs:
        if j.current is not None and free.can_keep(j, j.current):
            free.take(j, j.current)
            for n in j.current.nodes:
                occupants.setdefault(n, []).append(j)
    if request.policy.mode == "backfill":
        preempt_margin = None
    preempted = 0          # heads started by preempting occupants (beyond `most`)
    quota_keys = {(q.tenant, q.tier) for q in request.quotas}
    heads: list[str] = []
    started: dict[str, Placement] = {}
    replace: dict[str, Job] = {}
    extra: list[Job] = []
    sticky = [jobs[h] for h in head_ids if h in jobs and jobs[h].current is None]
    seen: set[str] = set()
    while len(heads) - preempted < most:
        head = sticky.pop(0) if sticky else _pick(request, free, seen)
        if head is None:
            break
        seen.add(head.id)
        want = head.replicas.bottom
        if not free.quota_ok(head, want):
            continue
        p = free.place(head, want, head.checkpoint_region)
        if p is None and preempt_margin is not None and defrag and (head.tenant, "premium") not in quota_keys \
                and not _smaller_could_start(request, free, head):
            p = _defrag_for(request, free, occupants, head, want, preempt_margin, replace)
            if p is not None:
                preempted += 1
        if p is None and preempt_margin is not None and (head.tenant, "premium") not in quota_keys:
            spared: frozenset[str] = frozenset()
            if held_s is not None and clear_factor is not None:
                floor_s = clear_factor * held_s.get(head.id, 0.0)
                spared = frozenset(o.id for on_node in occupants.values() for o in on_node
                                   if held_s.get(o.id, 0.0) <= floor_s)
            if keep_gangs:      # a gang job of the head's tier or higher keeps its node (`gangkeep.py`)
                tw = request.policy.tier_weights
                spared |= frozenset(o.id for on_node in occupants.values() for o in on_node
                                    if o.devices_per_replica > 1
                                    and getattr(tw, o.tier) >= getattr(tw, head.tier))
            if spared and yield_after_s is not None and waited_s is not None and ran_s is not None:
                spared -= _yielding(request, occupants, head, waited_s, ran_s, yield_after_s, yield_ratio)
            cleared = _clearing(request, free, occupants, head, want, preempt_margin, spared)
            if cleared is not None:
                p, victims = cleared
                preempted += 1
                for v in victims:
                    _release(free, occupants, v)
                    replace[v.id] = v.model_copy(update={"current": None,
                                                         "checkpoint_region": free.region_of[v.current.cluster]})
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
        drain = _drain_estimate(free, occupants, held_s) if held_s is not None and drain_by_held else None
        spot = free.reserve(head, want, head.checkpoint_region, drain)
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


def _yielding(request: PlanRequest, occupants: dict[str, list[Job]], head: Job, waited_s: Mapping[str, float],
              ran_s: Mapping[str, float], after_s: float, ratio: float = 1.0) -> frozenset[str]:
    """The occupants the anti-swap rules no longer spare for `head`: once it has waited `after_s`, those of
    its tier or lower whose current run is longer than its current wait. Hysteresis: right after a swap
    the job that yielded has waited exactly as long as the one that took its node has run, so the two
    never swap back; a job that has run for hours yields to one that has waited hours since it started."""
    w = waited_s.get(head.id, 0.0)
    if w < after_s:
        return frozenset()
    tw = request.policy.tier_weights
    top = getattr(tw, head.tier)
    return frozenset(o.id for on_node in occupants.values() for o in on_node
                     if getattr(tw, o.tier) <= top and ran_s.get(o.id, 0.0) >= after_s
                     and ran_s.get(o.id, 0.0) > ratio * w)


def _value(request: PlanRequest, job: Job, p: Placement, region_of: dict[str, str]) -> float:
    """What `job` on `p` adds to the contract's objective per second: weight x devices x speed x locality."""
    pol = request.policy
    loc = locality(job.data_region, region_of[p.cluster], pol.remote_data_penalty)
    return getattr(pol.tier_weights, job.tier) * job.priority * job.devices_per_replica * p.replicas \
        * job.speed[p.accelerator] * loc


def _clearing(request: PlanRequest, free: FreeMap, occupants: dict[str, list[Job]], head: Job, want: int,
              margin: float, spared: frozenset[str] = frozenset()) -> tuple[Placement, list[Job]] | None:
    """Where `head` (`want` replicas, fitting nowhere) could start now by preempting running jobs, and
    whom: in each pool it may use, the nodes cheapest to clear (the occupants of least value per
    device first; premium ones only where the policy lets them go), the pool of least total value
    lost. None unless the head's value, less its start pause, beats `margin` times the value lost
    with the victims' pauses (the planner's own trade, which the placeholder of a draining node
    hides from it: without this a gang job on a full fleet waits for a node to drain by itself).
    The jobs in `spared` are never cleared."""
    pol = request.policy
    share = charged_s(pol.restart_overhead_s, request.epoch_s) / request.epoch_s
    protect = not pol.premium_preemptible
    dpr = head.devices_per_replica
    home = head.checkpoint_region
    best: tuple[float, Placement, list[Job]] | None = None
    for (cluster, acc), pool in free.pools.items():
        if acc not in head.speed or (head.regions is not None and pool.region not in head.regions):
            continue
        if home is not None and home != pool.region and frozenset((home, pool.region)) not in free.links:
            continue
        options = []
        for n, have in pool.free.items():
            k = pool.size[n] // dpr
            if k == 0:
                continue
            need = k * dpr - have
            cost, victims = 0.0, []
            if need > 0:
                cands = sorted((o for o in occupants.get(n, ()) if not (protect and o.tier == "premium")
                                and o.id not in spared),
                               key=lambda o: _value(request, o, o.current, free.region_of)
                               / (o.current.replicas * o.devices_per_replica))
                for o in cands:
                    if need <= 0:
                        break
                    need -= o.current.nodes[n] * o.devices_per_replica
                    cost += _value(request, o, o.current, free.region_of)
                    victims.append(o)
                if need > 0:
                    continue
            options.append((cost, n, k, victims))
        options.sort(key=lambda c: c[0])
        nodes: dict[str, int] = {}
        chosen: dict[str, Job] = {}
        left = want
        for _cost, n, k, victims in options:
            nodes[n] = min(k, left)
            left -= nodes[n]
            for v in victims:
                chosen[v.id] = v
            if left == 0:
                break
        if left:
            continue
        lost = sum(_value(request, v, v.current, free.region_of) for v in chosen.values())
        p = Placement(cluster=cluster, accelerator=acc, nodes=nodes)
        gain = _value(request, head, p, free.region_of) * (1.0 - share)
        if gain > margin * lost * (1.0 + share) and (best is None or lost < best[0]):
            best = (lost, p, list(chosen.values()))
    return None if best is None else (best[1], best[2])


def _smaller_could_start(request: PlanRequest, free: FreeMap, head: Job) -> bool:
    """Whether a waiting job with fewer devices per replica than `head` fits now on the free devices:
    then the scattered free devices are not idle (the plan starts it there), and moving running jobs
    to gather them for the head would only take them from it."""
    return any(j.current is None and j.id != head.id and j.devices_per_replica < head.devices_per_replica
               and free.place(j, j.replicas.bottom, j.checkpoint_region) is not None for j in request.jobs)


def _defrag_for(request: PlanRequest, free: FreeMap, occupants: dict[str, list[Job]], head: Job, want: int,
                margin: float, replace: dict[str, Job]) -> Placement | None:
    """`_defrag` applied: the moved jobs' devices change hands in `free` and `occupants`, and each
    moved job goes to the planner as running where it moves (`replace`); the head's placement is
    returned (not taken yet), or None, with nothing changed, when no move pays."""
    got = _defrag(request, free, occupants, head, want, margin)
    if got is None:
        return None
    p, moves = got
    for o, dest in moves:
        _release(free, occupants, o)
        free.take(o, dest)
        for n in dest.nodes:
            occupants.setdefault(n, []).append(o)
        moved = o.model_copy(update={"current": dest})
        replace[o.id] = moved
        for n in dest.nodes:      # the occupant lists hold the job as the planner now sees it
            occupants[n] = [moved if x.id == o.id else x for x in occupants[n]]
    return p


def _defrag(request: PlanRequest, free: FreeMap, occupants: dict[str, list[Job]], head: Job, want: int,
            margin: float) -> tuple[Placement, list[tuple[Job, Placement]]] | None:
    """Where `head` (`want` replicas, fitting nowhere) could start now by moving smaller running jobs
    off a node into devices free elsewhere in the same pool (nobody preempted), and which moves: in
    each pool it may use, node by node the one whose vacating costs least (its movable occupants of
    least value first, each replica to the fullest other node that holds it), the pool of least cost.
    None unless the head's value, less its start pause, beats `margin` times the moved jobs' value
    lost to their move pauses. Movable: running jobs with fewer devices per replica than the head's
    (so a gang job never moves for its like), never premium ones (a pause counts against their SLA).
    Free devices scattered over nodes keep gang jobs waiting while the fleet has room (Philly, backfill
    on, `bench/gang_wait.py`: 35.5 s of the basic 8-GPU jobs' 61.5 s of waiting in the mean above the
    floor on days 30-37, 59.3 of 305.8 on days 20-27)."""
    share = charged_s(request.policy.restart_overhead_s, request.epoch_s) / request.epoch_s
    dpr = head.devices_per_replica
    home = head.checkpoint_region
    best: tuple[float, Placement, list[tuple[Job, Placement]]] | None = None
    for (cluster, acc), pool in free.pools.items():
        if acc not in head.speed or (head.regions is not None and pool.region not in head.regions):
            continue
        if home is not None and home != pool.region and frozenset((home, pool.region)) not in free.links:
            continue
        if sum(pool.free.values()) < want * dpr:
            continue
        scratch = dict(pool.free)
        where: dict[str, dict[str, int]] = {}      # job -> its replicas per node, as moved so far
        moves: dict[str, Job] = {}
        nodes: dict[str, int] = {}
        cost = 0.0
        left = want
        while left:
            pick = _cheapest_node(request, pool, scratch, occupants, head, left, nodes, where)
            if pick is None:
                break
            n, k, c, plan = pick
            nodes[n] = k
            left -= k
            cost += c
            for o, dest in plan:
                moves[o.id] = o
                cur = where.setdefault(o.id, dict(o.current.nodes))
                cur.pop(n)
                for m, r in dest.items():
                    cur[m] = cur.get(m, 0) + r
                    scratch[m] -= r * o.devices_per_replica
                scratch[n] += o.current.nodes[n] * o.devices_per_replica
            scratch[n] -= k * dpr
        if left:
            continue
        p = Placement(cluster=cluster, accelerator=acc, nodes=nodes)
        gain = _value(request, head, p, free.region_of) * (1.0 - share)
        if gain > margin * cost and (best is None or cost < best[0]):
            best = (cost, p, [(o, Placement(cluster=cluster, accelerator=acc, nodes=where[o.id])) for o in moves.values()])
    return None if best is None else (best[1], best[2])


def _cheapest_node(request: PlanRequest, pool, scratch: dict[str, int], occupants: dict[str, list[Job]], head: Job,
                   left: int, taken: dict[str, int], where: dict[str, dict[str, int]]
                   ) -> tuple[str, int, float, list[tuple[Job, dict[str, int]]]] | None:
    """The node (not in `taken`) where up to `left` replicas of `head` fit after the fewest-cost moves
    of its smaller occupants into `scratch`'s free devices on other nodes (the fullest that holds
    each replica first), with the replicas it holds, the moves' cost and the moves; None if none."""
    dpr = head.devices_per_replica
    fx = fleet_index(request.fleet)
    region_of = {pool.cluster: pool.region}
    epoch = request.epoch_s
    best = None
    for n, have in scratch.items():
        if n in taken:
            continue
        k = min(pool.size[n] // dpr, left)
        if k == 0:
            continue
        need = k * dpr - have
        if need <= 0:
            return n, k, 0.0, []
        cands = [o for o in occupants.get(n, ()) if o.tier != "premium" and o.devices_per_replica < dpr
                 and o.id not in where and o.current.cluster == pool.cluster
                 and o.current.accelerator == pool.accelerator]
        if sum(o.current.nodes[n] * o.devices_per_replica for o in cands) < need:
            continue
        cands.sort(key=lambda o: (_value(request, o, o.current, region_of)
                                  / (o.current.replicas * o.devices_per_replica), o.id))
        room = {m: f for m, f in scratch.items() if m != n and m not in taken}
        plan: list[tuple[Job, dict[str, int]]] = []
        cost = 0.0
        for o in cands:
            if need <= 0:
                break
            r = o.current.nodes[n]
            dest: dict[str, int] = {}
            for _ in range(r):
                fits = [m for m, f in room.items() if f >= o.devices_per_replica]
                if not fits:
                    break
                m = min(fits, key=lambda m: (room[m], m))
                room[m] -= o.devices_per_replica
                dest[m] = dest.get(m, 0) + 1
            if sum(dest.values()) < r:
                for m, q in dest.items():
                    room[m] += q * o.devices_per_replica
                continue
            plan.append((o, dest))
            need -= r * o.devices_per_replica
            pause = pause_s(fx, request.policy.restart_overhead_s, "move", o.checkpoint_gb, pool.region, pool.region)
            cost += _value(request, o, o.current, region_of) * charged_s(pause, epoch) / epoch
        if need > 0:
            continue
        if best is None or cost < best[2]:
            best = (n, k, cost, plan)
    return best


def _drain_estimate(free: FreeMap, occupants: dict[str, list[Job]],
                    held_s: Mapping[str, float]) -> Callable[[str, int], float]:
    """How long node `n` would take to have `need` devices free, as far as a non-clairvoyant scheduler
    can tell: its occupants leave youngest first (under heavy-tailed durations the job that has run
    longest is likeliest to run longest still), and the node is free once the oldest of the ones
    that must leave has gone; a job's attained time held stands for its remaining time. 0 when the
    node already has the devices; infinite when its occupants could never free them."""
    def drain_s(n: str, need: int) -> float:
        pool = free.node_pool[n]
        have = pool.free[n]
        if have >= need:
            return 0.0
        for o in sorted(occupants.get(n, ()), key=lambda o: (held_s.get(o.id, 0.0), o.id)):
            have += o.current.nodes[n] * o.devices_per_replica
            if have >= need:
                return held_s.get(o.id, 0.0)
        return math.inf
    return drain_s


def _release(free: FreeMap, occupants: dict[str, list[Job]], job: Job) -> None:
    """`job` (running) is preempted: its devices and quota come back to the map."""
    p = job.current
    pool = free.pools[(p.cluster, p.accelerator)]
    for n, k in p.nodes.items():
        pool.set_free(n, pool.free[n] + k * job.devices_per_replica)
        occupants[n] = [o for o in occupants[n] if o.id != job.id]
    key = (job.tenant, job.tier)
    if key in free.quota_left:
        free.quota_left[key] += p.replicas * job.devices_per_replica


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
