"""From the LP's primal to a pool-level choice that respects pool capacity, quotas and the budget.

Rounding each job to the option it leans on most (`plan.lp_rounding`) rounds fractional jobs up
where the LP had them in part: at planet size the pools it overfills (50 pools by 1,000 devices
on a family request) then fail at packing, and the jobs that fail are the last the packer tries,
not the least valuable, which lost about 5 % of the LP's value. Here the jobs the LP places in
full are committed first, then every job it places in part, most valuable per device first, each
at the first of its LP options (most chosen first) that still has room, elastic jobs trimmed to
the room left. What no option has room for waits (the packing's fill may still place it).
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
    out: dict[int, tuple[int, int]] = {}
    for k in order.tolist():
        j = job[sel_l[starts_l[k]]]
        info = inst.jobs[j]
        key = info.key
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
