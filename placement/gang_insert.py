"""Lumpy gangs first into whole nodes: a constructive move the search tries before its models.

Why: a gang of 8-device replicas needs whole nodes, and in a fragmented pool every node holds
some small running job. The move clears the nodes cheapest to clear (free ones first, then
those whose occupants are worth least; never a protected job's), puts the gang there, places
the evicted jobs again wherever they fit best, and fills what is left. It costs milliseconds,
so the search tries it on every lumpy gang short of what the LP gives it, and keeps it only
when the canonical objective improves.
"""

from __future__ import annotations

import numpy as np

from placement.candidates import Options
from placement.greedy import _place_best
from placement.instance import Instance, snap_down
from placement.packing import Packing
from placement.score import job_terms, placed_terms


def insert_gang(inst: Instance, opts: Options, base: Packing, j: int, o: int, target: int,
                gain: np.ndarray) -> tuple[Packing, set[int]] | None:
    """`base` with job j placed by option o on `target` replicas (fewer if the pool cannot clear
    that many, never below the option's minimum), occupants evicted and placed again; None when
    it does not fit; with the plan, the jobs it touched. The caller compares objectives."""
    info = inst.jobs[j]
    d = info.dpr
    pool = inst.pools[int(opts.pool[o])]
    pk = base.copy()
    pk.release(j)
    pk.unplace(j)
    target = int(min(target, opts.hi[o]))
    room = pk.quota_room(j)
    if room is not None:
        target = min(target, room // d)
    if info.allowed is not None:   # contract v1.1: aim at a listed count
        target = int(snap_down(info, target))
    if target < opts.lo[o] or not pk.budget_ok(o):
        return None
    opool = opts.pool.tolist()
    occupants: dict[int, list[int]] = {}
    for k, ok in pk.choice.items():
        if opool[ok] == pool.index:
            for n in pk.nodes[k]:
                occupants.setdefault(n, []).append(k)
    worth: dict[int, float] = {}    # each occupant's value where it runs (`job_terms`' first term)
    for ks in occupants.values():
        for k in ks:
            if k not in worth:
                worth[k] = placed_terms(inst, k, pool.cluster, pool.accelerator, sum(pk.nodes[k].values()))[0]

    def clear_cost(n: int) -> float:
        ks = occupants.get(n, [])
        if any(inst.jobs[k].protected for k in ks):
            return float("inf")
        return sum(worth[k] for k in ks)

    nodes = [n for n in pool.nodes if inst.node_devices[n] >= d]
    cost = {n: clear_cost(n) for n in nodes}     # occupants stay fixed below: each node's cost, once
    nodes.sort(key=lambda n: (pk.free[n] // d == 0, cost[n] / max(1, inst.node_devices[n] // d), n))
    placement: dict[int, int] = {}
    evicted: set[int] = set()
    got = 0
    for n in nodes:
        if got >= target:
            break
        if pk.free[n] < d:
            if cost[n] == float("inf"):
                continue
            for k in occupants.get(n, []):
                if k not in evicted and k in pk.choice:
                    evicted.add(k)
                    pk.release(k)
                    pk.unplace(k)
        c = min(int(pk.free[n] // d), target - got)
        if c > 0:
            placement[n] = c
            got += c
            pk.free[n] -= c * d       # held until the commit below
    for n, c in placement.items():
        pk.free[n] += c * d
    if info.allowed is not None and snap_down(info, got) < got:   # fewer cleared: down to a listed count
        excess = got - int(snap_down(info, got))
        got -= excess
        for n in reversed(list(placement)):
            take = min(excess, placement[n])
            placement[n] -= take
            excess -= take
            if placement[n] == 0:
                del placement[n]
            if excess == 0:
                break
    if got < opts.lo[o]:
        return None
    pk._commit(j, o, placement)
    for k in sorted(evicted, key=lambda k: (not inst.jobs[k].protected, k)):
        _place_best(pk, k, gain, require_positive=False)
    if any(inst.jobs[k].protected and k not in pk.choice for k in evicted):
        return None
    for k in sorted(evicted | {j}):   # room left on the cleared nodes goes to the jobs just moved
        ok = pk.choice.get(k)
        if ok is not None and not opts.keep[ok] and opts.coef[ok] > 0:
            pk.grow(k, int(opts.hi[ok]))
    return pk, evicted | {j}


def gang_moves(inst: Instance, opts: Options, best: Packing, lp_x: np.ndarray | None, lp_n: np.ndarray | None,
               gain: np.ndarray, deadline: float, min_dpr: int = 4) -> tuple[Packing, int, float]:
    """Try `insert_gang` on each lumpy gang short of its LP share (or unplaced), most value
    missing first; keep each that improves. Returns the plan, how many moves were kept and what
    they gained."""
    import time

    wants = []
    for info in inst.jobs:
        olist = opts.by_job[info.index]
        if info.dpr < min_dpr or len(olist) == 0:
            continue
        r = sum(best.nodes[info.index].values()) if info.index in best.choice else 0
        if lp_x is not None and lp_x[olist].max() > 1e-6:
            k = int(np.argmax(lp_x[olist]))
            o = int(olist[k])
            goal = int(opts.hi[o])
        else:
            o = int(olist[int(np.argmax(opts.coef[olist] * opts.hi[olist]))])
            goal = int(opts.hi[o])
        if goal > r and opts.coef[o] > 0:
            wants.append((-float(opts.coef[o]) * (goal - r), info.index, o, goal))
    kept = 0
    gained = 0.0
    for _, j, o, goal in sorted(wants):
        if time.perf_counter() > deadline:
            break
        for target in dict.fromkeys((goal, int(opts.lo[o]) + (goal - int(opts.lo[o])) // 2, int(opts.lo[o]))):
            moved = insert_gang(inst, opts, best, j, o, target, gain)
            if moved is None:
                continue
            pk, changed = moved
            delta = sum(_net(inst, pk, k) - _net(inst, best, k) for k in changed)
            if delta > 1e-9 * max(1.0, abs(delta)):
                best = pk
                kept += 1
                gained += delta
                break
    return best, kept, gained


def _net(inst: Instance, pk: Packing, j: int) -> float:
    v, d, s = job_terms(inst, j, pk.placement_of(j))
    return v - d - s
