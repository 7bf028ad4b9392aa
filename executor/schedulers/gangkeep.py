"""At a full plan, a running gang job keeps its node rather than hand it to another gang job of its tier.

A job whose replicas need a whole node (`devices_per_replica` > 1) restarts only where a node drains
again. When a full plan preempts one so that another gang job of its tier (or a lower one) can start,
grow or move onto its node, the swap moves the wait from one gang job to the other (the new one
would have waited for the reservation to drain a node; the one preempted now waits for such a drain
itself, behind every head of higher priority) and pays two pauses. The planner cannot see this: it
prices a preemption by the contract's pause alone, as if the job restarted on the next free
devices. On Philly days 60-67 (backfill on) five basic 8-GPU jobs, each days into its run, waited
3,300-6,700 s each after such swaps, more than the gang jobs that took their nodes gained (cpsat
1.6 s above las in mean JCT).

`keep_running_gangs` undoes those swaps in a plan: every such running gang job keeps its placement,
the jobs the plan moves onto its devices go back where they run, and those it starts or grows there
keep waiting or their size (only jobs of the kept job's tier or lower: a job of a higher tier is
never held back, and where one would have to be, the plan stands); then each change the plan made
that still fits is put back. Small jobs are not affected: they restart on any free device.

Two options (measured on Philly, docs/notes/work-conserving-replay.md "Fairness swaps and restored
preemptions"; `restore` is in the loop's rule, `cpsat.event_options`, the yield is not): with `yield_after_s` a running gang job yields to a gang job of its tier that has waited
that long since it last stopped and less than its own current run (`reservation._yielding`), and with
`restore` a running job the plan preempted for a change undone here keeps running where its devices
stayed free (without it, undoing a growth can leave the node of a job it displaced idle).
"""

from __future__ import annotations

from collections.abc import Mapping

from models import Job, Placement, PlanRequest
from models.fleet_index import fleet_index


def keep_running_gangs(request: PlanRequest, placed: Mapping[str, Placement],
                       waited_s: Mapping[str, float] | None = None, ran_s: Mapping[str, float] | None = None,
                       yield_after_s: float | None = None, yield_ratio: float = 1.0,
                       restore: bool = False) -> dict[str, Placement] | None:
    """`placed` (a full plan's placements for `request`) with the running gang jobs it preempts for
    other gang jobs kept where they run; None when the plan makes no such swap."""
    if request.policy.mode == "backfill":
        return None
    down = set(request.fleet.down_nodes)
    protect = not request.policy.premium_preemptible
    jobs = {j.id: j for j in request.jobs}
    victims = [j for j in request.jobs
               if j.current is not None and j.devices_per_replica > 1 and j.id not in placed
               and not (protect and j.tier == "premium") and not any(n in down for n in j.current.nodes)]
    if not victims:
        return None
    tw = request.policy.tier_weights
    weight = {jid: getattr(tw, j.tier) for jid, j in jobs.items()}
    gained = {jid: _gained(jobs[jid], p) for jid, p in placed.items()}
    size = _sizes(request)
    # node -> the lowest tier weight of a gang job gaining devices there
    gang_gains: dict[str, float] = {}
    for jid, g in gained.items():
        if jobs[jid].devices_per_replica > 1:
            for n in g:
                gang_gains[n] = min(gang_gains.get(n, weight[jid]), weight[jid])
    kept = [v for v in victims if any(gang_gains.get(n, float("inf")) <= weight[v.id] for n in v.current.nodes)]
    if kept and yield_after_s is not None and waited_s is not None and ran_s is not None:
        # a victim yields when every gang job gaining on its nodes has waited `yield_after_s` and less
        # than it has run (the reservation's rule, `reservation._yielding`; a running job that grows
        # there has not waited, so it never makes one yield)
        gainers: dict[str, list[str]] = {}
        for jid, g in gained.items():
            if jobs[jid].devices_per_replica > 1:
                for n in g:
                    gainers.setdefault(n, []).append(jid)

        def yields(v: Job) -> bool:
            gs = [g for n in v.current.nodes for g in gainers.get(n, ())]
            r = ran_s.get(v.id, 0.0)
            waits = [waited_s.get(g, 0.0) for g in gs]
            return bool(gs) and r >= yield_after_s and all(yield_after_s <= w and r > yield_ratio * w for w in waits)

        kept = [v for v in kept if not yields(v)]
    if not kept:
        return None
    ceiling: dict[str, float] = {}      # node -> the highest tier weight of a job kept there: none above it is undone
    for v in kept:
        for n in v.current.nodes:
            ceiling[n] = max(ceiling.get(n, weight[v.id]), weight[v.id])
    rank = {j.id: k for k, j in enumerate(request.jobs)}
    out = dict(placed)
    for v in kept:
        out[v.id] = v.current
    undone: list[str] = []
    while True:
        over = _overfull(size, jobs, out)
        if not over:
            break
        # on the first overfull node, undo the change of a job that gained devices there (gang jobs first)
        n = over[0]
        # (a job the plan only moves goes back where it runs, whatever its tier; one it starts or grows
        # keeps waiting or its size only when its tier is no higher than the kept job's)
        top = ceiling.get(n, -1.0)
        cands = [jid for jid, p in out.items() if n in p.nodes and n in gained.get(jid, ()) and jid not in undone
                 and (weight[jid] <= top or (_stays(jobs[jid], down) and p.replicas == jobs[jid].current.replicas))]
        if not cands:
            return None
        jid = min(cands, key=lambda j: (jobs[j].devices_per_replica == 1, rank[j]))
        undone.append(jid)
        if _stays(jobs[jid], down):
            out[jid] = jobs[jid].current
            for m in jobs[jid].current.nodes:     # what it displaces there yields as to the kept job
                ceiling[m] = max(ceiling.get(m, top), top)
        else:
            del out[jid]
    if not _quota_ok(request, jobs, out):
        return None
    for jid in sorted(undone, key=rank.__getitem__):   # the plan's own change where it still fits
        trial = {**out, jid: placed[jid]}
        if not _overfull(size, jobs, trial) and _quota_ok(request, jobs, trial):
            out = trial
    if restore:
        # a running job the plan preempted for a change undone above keeps running where its devices
        # are still free: otherwise the plan would preempt it for nothing, leaving its devices idle
        for j in request.jobs:
            if j.id not in out and _stays(j, down):
                trial = {**out, j.id: j.current}
                if not _overfull(size, jobs, trial) and _quota_ok(request, jobs, trial):
                    out = trial
    return out


def _stays(job: Job, down: set[str]) -> bool:
    """Whether `job` runs now on nodes that are up (undoing its change keeps it there)."""
    return job.current is not None and not any(n in down for n in job.current.nodes)


def _gained(job: Job, p: Placement) -> set[str]:
    """The nodes where `p` gives `job` more devices than it holds now."""
    cur = job.current
    if cur is None or (cur.cluster, cur.accelerator) != (p.cluster, p.accelerator):
        return set(p.nodes)
    return {n for n, k in p.nodes.items() if k > cur.nodes.get(n, 0)}


def _overfull(size: Mapping[str, int], jobs: Mapping[str, Job], placed: Mapping[str, Placement]) -> list[str]:
    """The nodes (fleet order) where `placed` uses more devices than the node has (`size`)."""
    used: dict[str, int] = {}
    for jid, p in placed.items():
        for n, k in p.nodes.items():
            used[n] = used.get(n, 0) + k * jobs[jid].devices_per_replica
    return [n for n in size if used.get(n, 0) > size[n]]


def _sizes(request: PlanRequest) -> dict[str, int]:
    fx = fleet_index(request.fleet)
    return {name: fx.devices[i] for i, name in enumerate(fx.names)}


def _quota_ok(request: PlanRequest, jobs: Mapping[str, Job], placed: Mapping[str, Placement]) -> bool:
    left = {(q.tenant, q.tier): q.devices for q in request.quotas}
    for jid, p in placed.items():
        key = (jobs[jid].tenant, jobs[jid].tier)
        if key in left:
            left[key] -= p.replicas * jobs[jid].devices_per_replica
    return all(v >= 0 for v in left.values())
