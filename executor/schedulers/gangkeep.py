"""At a full plan, a running gang job keeps its node rather than hand it to a waiting gang job.

A job whose replicas need a whole node (`devices_per_replica` > 1) restarts only where a node drains
again. When a full plan preempts one to start another gang job on its devices, the swap moves the
wait from one gang job to the other (both need a whole node, and the one preempted now waits behind
every head of higher priority for a node to drain) and pays two pauses. The planner cannot see this:
it prices a preemption by the contract's pause alone, as if the job restarted on the next free
devices. On Philly days 60-67 (backfill on) five basic 8-GPU jobs, each days into its run, waited
3,300-6,700 s each after such swaps, more than the new gang jobs gained.

`keep_running_gangs` undoes those swaps in a plan: the gang jobs it starts on the nodes of running
gang jobs it preempts are left waiting (for a node to drain, as without the swap), and the running
ones keep their placement where it still fits. Small jobs are not affected: they restart on any
free device.
"""

from __future__ import annotations

from collections.abc import Mapping

from executor.schedulers.packing import FreeMap
from models import Placement, PlanRequest


def keep_running_gangs(request: PlanRequest, placed: Mapping[str, Placement]) -> dict[str, Placement] | None:
    """`placed` (a full plan's placements for `request`) with every waiting gang job started on the
    nodes of a running gang job it displaces left out and that running job kept where it runs; None
    when the plan makes no such swap (or undoing it would leave the devices idle)."""
    if request.policy.mode == "backfill":
        return None
    down = set(request.fleet.down_nodes)
    protect = not request.policy.premium_preemptible
    victims = [j for j in request.jobs
               if j.current is not None and j.devices_per_replica > 1 and j.id not in placed
               and not (protect and j.tier == "premium") and not any(n in down for n in j.current.nodes)]
    if not victims:
        return None
    vnodes = {n for v in victims for n in v.current.nodes}
    jobs = {j.id: j for j in request.jobs}
    drop = {jid for jid, p in placed.items()
            if jobs[jid].current is None and jobs[jid].devices_per_replica > 1
            and any(n in vnodes for n in p.nodes)}
    if not drop:
        return None
    out = {jid: p for jid, p in placed.items() if jid not in drop}
    free = FreeMap(request)
    for jid, p in out.items():
        free.take(jobs[jid], p)
    dropped_nodes = {n for jid in drop for n in placed[jid].nodes}
    kept = 0
    for v in victims:
        if any(n in dropped_nodes for n in v.current.nodes) and free.can_keep(v, v.current):
            free.take(v, v.current)
            out[v.id] = v.current
            kept += 1
    if not kept:
        return None
    order = {jid: k for k, jid in enumerate(jobs)}
    for jid in sorted(drop, key=order.__getitem__):
        if free.can_keep(jobs[jid], placed[jid]):     # its devices were not a kept job's after all
            free.take(jobs[jid], placed[jid])
            out[jid] = placed[jid]
    return out
