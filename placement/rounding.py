"""From the LP's primal to a pool-level choice that respects pool capacity, quotas and the budget.

Rounding each job to the option it leans on most (`plan.lp_rounding`) rounds fractional jobs up
where the LP had them in part: at planet size the pools it overfills (50 pools by 1,000 devices
on a family request) then fail at packing, and the jobs that fail are the last the packer tries,
not the least valuable, which lost about 5 % of the LP's value. Here the jobs the LP places in
full are committed first, then every job it places in part, most valuable per device first, each
at the first of its LP options (most chosen first) that still has room, elastic jobs trimmed to
the room left. What no option has room for waits (the packing's fill may still place it).

Below planet size the engine rounds each job to its LP option and then trims (`fit_to_limits`):
the jobs of an overfull pool or quota give way least value per device first (on the medium family
the packer otherwise dropped a premium job of weight 100 while basic jobs ran, 2-6 % of the objective).
"""

from __future__ import annotations

import numpy as np

from placement.candidates import Options
from placement.instance import Instance, snap_down

EPS = 1e-6


def capacity_rounding(inst: Instance, opts: Options, x: np.ndarray, n: np.ndarray) -> dict[int, tuple[int, int]]:
    """A choice job -> (option, replicas) whose devices fit every pool, quota and the budget."""
    sel = np.flatnonzero(x > EPS)
    if not len(sel):
        return {}
    # per job its LP options, most chosen first
    sel = sel[np.lexsort((sel, -x[sel], opts.job[sel]))]
    jobs_of = opts.job[sel]
    starts = np.flatnonzero(np.r_[True, jobs_of[1:] != jobs_of[:-1]])
    xj = np.add.reduceat(x[sel], starts)
    top = sel[starts]
    density = opts.coef[top] / opts.dpr[top]
    full = xj >= 1 - EPS
    prot = np.array([inst.jobs[int(j)].protected for j in jobs_of[starts]], dtype=bool)
    # protected first, then the jobs placed in full, then the rest; each group by value per device
    order = np.lexsort((jobs_of[starts], -density, ~full, ~prot))
    want = np.where(opts.keep, opts.lo, np.maximum(opts.lo, np.minimum(
        opts.hi, np.floor(n / np.maximum(x, EPS) + EPS).astype(np.int64))))
    return assign_in_order(inst, opts, sel, starts, order, want)


def pool_greedy(inst: Instance, opts: Options, gain: np.ndarray, max_options: int = 8) -> dict[int, tuple[int, int]]:
    """The greedy planner's choice at pool level, without nodes: protected jobs first, then by
    best gain per device, each at the first of its `max_options` highest-gain options with room
    (its most replicas, trimmed to the room). A pass of scalar steps (a fraction of a second at planet size, where the greedy
    with node packing takes seconds): columns that make the first restricted LP worth at least
    the greedy plan."""
    if not len(opts):
        return {}
    prot = np.array([i.protected for i in inst.jobs], dtype=bool)
    stays = np.array([i.protected and i.keepable for i in inst.jobs], dtype=bool)
    # protected jobs first, each as it runs where it may stay (else at its fewest replicas): moved or
    # grown first, they took the quota and room that protected jobs after them needed to stay placed
    ok = (gain > 0) | prot[opts.job]
    ok &= ~stays[opts.job] | opts.keep
    sel = np.flatnonzero(ok)
    if not len(sel):
        return {}
    sel = sel[np.lexsort((sel, -gain[sel], opts.job[sel]))]
    jobs_of = opts.job[sel]
    starts = np.flatnonzero(np.r_[True, jobs_of[1:] != jobs_of[:-1]])
    # each job's best few options only: once the pools fill, a job would try all of them in vain
    rank = np.arange(len(sel)) - np.repeat(starts, np.diff(np.r_[starts, len(sel)]))
    sel = sel[rank < max_options]
    jobs_of = opts.job[sel]
    starts = np.flatnonzero(np.r_[True, jobs_of[1:] != jobs_of[:-1]])
    per = gain / np.maximum(opts.hi * opts.dpr, 1)
    density = np.maximum.reduceat(per[sel], starts)
    first = prot[jobs_of[starts]]
    order = np.lexsort((jobs_of[starts], -density, ~first))
    return assign_in_order(inst, opts, sel, starts, order,
                           np.where(opts.keep | prot[opts.job], opts.lo, opts.hi))


def assign_in_order(inst: Instance, opts: Options, sel: np.ndarray, starts: np.ndarray, order: np.ndarray,
                    want: np.ndarray) -> dict[int, tuple[int, int]]:
    """Jobs in `order` (indices into `starts`), each at the first of its options (`sel[starts[k]:...]`,
    in preference order) whose pool, quota and budget have room for at least its fewest replicas,
    with `want[o]` replicas trimmed to the room (a keep option exactly as it runs)."""
    pool_left = [int(p.capacity) for p in inst.pools]
    quota_left = dict(inst.quotas)
    budget_left = inst.budget_gb
    ends = np.r_[starts[1:], len(sel)].tolist()
    starts_l = starts.tolist()
    sel_l = sel.tolist()
    pool, dpr, lo, keep = opts.pool.tolist(), opts.dpr.tolist(), opts.lo.tolist(), opts.keep.tolist()
    mig, job, want_l = opts.mig_gb.tolist(), opts.job.tolist(), want.tolist()
    # every protected job's fewest replicas at its first option are held for it before any job is
    # assigned: a protected job earlier in the order, rounded up to the LP's replicas, once took the
    # quota a later protected job needed, and the whole rounding was then no valid plan (constraint 5)
    held: dict[int, tuple[int, int, tuple[str, str], float]] = {}
    for k in order.tolist():
        o = sel_l[starts_l[k]]
        info = inst.jobs[job[o]]
        if not info.protected:
            continue
        need, p, key = lo[o] * dpr[o], pool[o], info.key
        q = quota_left.get(key)
        g = mig[o] if budget_left is not None else 0.0
        if need > pool_left[p] or (q is not None and need > q) or (g > 0 and g > budget_left + 1e-9):
            continue   # no room even for it alone: it takes its turn like any other job
        pool_left[p] -= need
        if q is not None:
            quota_left[key] = q - need
        if g > 0:
            budget_left -= g
        held[k] = (p, need, key, g)
    out: dict[int, tuple[int, int]] = {}
    for k in order.tolist():
        j = job[sel_l[starts_l[k]]]
        info = inst.jobs[j]
        key = info.key
        if k in held:   # its turn: what was held for it is its own again
            p, need, _, g = held.pop(k)
            pool_left[p] += need
            if key in quota_left:
                quota_left[key] += need
            if g > 0:
                budget_left += g
        q = quota_left.get(key)
        for o in sel_l[starts_l[k]:ends[k]]:
            d, p = dpr[o], pool[o]
            if mig[o] > 0 and budget_left is not None and mig[o] > budget_left + 1e-9:
                continue
            room = pool_left[p] // d
            if q is not None:
                room = min(room, q // d)
            r = min(want_l[o], room)
            if not keep[o]:
                r = int(snap_down(info, r))
            if r < lo[o] or r <= 0:
                continue
            out[j] = (o, r)
            pool_left[p] -= r * d
            if q is not None:
                quota_left[key] = q - r * d
            if mig[o] > 0 and budget_left is not None:
                budget_left -= mig[o]
            break
    return out


def fit_to_limits(inst: Instance, opts: Options, choice: dict[int, tuple[int, int]],
                  shrink_first: bool = True) -> dict[int, tuple[int, int]]:
    """`choice` (job -> option, replicas) with no pool's devices and no quota exceeded in total:
    the jobs of an overfull pool or quota shrink or leave, least value per device first. Protected
    jobs are never taken out (a keep stays whole; a change may shrink to its minimum). Totals only:
    the packer still meets fragmentation node by node. `shrink_first`: every job of the group shrinks
    toward its minimum before any leaves; else each in turn shrinks by the overflow or, below its
    minimum, leaves (which of the two packs better differs from request to request: the engine
    packs both)."""
    out = dict(choice)
    if not out:
        return out
    jobs = np.fromiter(out, dtype=np.int64, count=len(out))
    o = np.array([out[j][0] for j in jobs.tolist()], dtype=np.int64)
    r = np.array([out[j][1] for j in jobs.tolist()], dtype=np.int64)
    d = opts.dpr[o].astype(np.int64)
    pool_use = np.bincount(opts.pool[o], weights=r * d, minlength=len(inst.pools))
    cap = np.array([p.capacity for p in inst.pools], dtype=float)
    keys = list(inst.quotas)
    qpos = {k: i for i, k in enumerate(keys)}
    jq = np.array([qpos.get(inst.jobs[j].key, -1) for j in jobs.tolist()], dtype=np.int64)
    qcap = np.array([inst.quotas[k] for k in keys], dtype=float)
    quota_use = np.bincount(jq[jq >= 0], weights=(r * d)[jq >= 0], minlength=len(keys)) if keys else np.zeros(0)
    if not (pool_use > cap).any() and not (quota_use > qcap).any():
        return out
    density = opts.coef[o] / np.maximum(d, 1)
    protected = np.array([inst.jobs[j].protected for j in jobs.tolist()], dtype=bool)
    order = np.lexsort((jobs, density, protected))   # unprotected first, least value per device first
    groups = [("pool", int(p), np.flatnonzero(opts.pool[o] == p)) for p in np.flatnonzero(pool_use > cap)]
    groups += [("quota", int(q), np.flatnonzero(jq == q)) for q in np.flatnonzero(quota_use > qcap)]
    rank = np.empty(len(order), dtype=np.int64)
    rank[order] = np.arange(len(order))
    for kind, g, members in groups:
        members = members[np.argsort(rank[members])]
        # shrink_first: every job shrinks (toward its minimum), then, while still over, jobs leave
        for leave in ((False, True) if shrink_first else (None,)):
            for k in members.tolist():
                over = (pool_use[g] - cap[g]) if kind == "pool" else (quota_use[g] - qcap[g])
                if over <= 0:
                    break
                if r[k] == 0:
                    continue
                info = inst.jobs[int(jobs[k])]
                if opts.keep[o[k]]:
                    if leave is False or protected[k]:
                        continue   # a keep stays whole or leaves (never a protected one)
                    fewer = 0
                elif leave is None:   # shrunk by the overflow where its minimum allows, else out
                    fewer = int(snap_down(info, int(r[k]) - int(-(-over // d[k]))))
                    if fewer == 0 and protected[k]:
                        fewer = int(snap_down(info, int(opts.lo[o[k]]))) or int(r[k])
                elif not leave:
                    fewer = int(snap_down(info, max(int(opts.lo[o[k]]), int(r[k]) - int(-(-over // d[k])))))
                else:
                    fewer = int(r[k]) if protected[k] else 0
                drop = int(r[k]) - fewer
                if drop <= 0:
                    continue
                pool_use[opts.pool[o[k]]] -= drop * d[k]
                if jq[k] >= 0:
                    quota_use[jq[k]] -= drop * d[k]
                r[k] = fewer
    for k, j in enumerate(jobs.tolist()):
        if r[k] == 0:
            del out[j]
        elif r[k] != out[j][1]:
            out[j] = (int(o[k]), int(r[k]))
    return out
