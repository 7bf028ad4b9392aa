"""The greedy planner: always a valid plan, fast at any size; the CP-SAT hint and its fallback.

Jobs go in order of value per device (protected premium jobs first), each to the option
that gains most, packed onto the fewest nodes. With prices per device (duals of the LP or
the Lagrangian bound) the gains are *reduced* gains, which steers jobs away from pools
that others need more: a market-clearing greedy rather than a first-come one.
"""

from __future__ import annotations

from collections.abc import Callable

import numpy as np

from placement.bound import priced_values
from placement.candidates import Options
from placement.instance import Instance, snap_down
from placement.packing import Packing, fill_order
from placement.stop import PassDeadline


def option_gains(inst: Instance, opts: Options, prices: np.ndarray | None) -> tuple[np.ndarray, np.ndarray]:
    """Per option: (reduced gain of the job choosing it, replicas that gain assumes), at device
    prices per pool (None: at face value); the Lagrangian subproblem's values without quota or
    budget prices."""
    if len(opts) == 0:
        return np.zeros(0), np.zeros(0, dtype=np.int64)
    gain, reps = priced_values(inst, opts, prices if prices is not None else np.zeros(len(inst.pools)), None, 0.0)
    gain.flags.writeable = False   # read as a list by `_place_best` (`_gain_list`), so never changed in place
    return gain, reps


def greedy(inst: Instance, opts: Options, prices: np.ndarray | None = None,
           deadline: float | None = None) -> Packing:
    """A valid plan: keeps protected jobs, then fills by reduced value density, then grows.
    Past `deadline` (a perf_counter reading) it places nothing more but protected jobs."""
    stop = PassDeadline(deadline)
    pk, gain, others = protected_first(inst, opts, prices)
    # room only shrinks from here on: a job that fits nowhere now never will, and is not tried
    for j in fill_order(pk, others):
        if stop.passed():
            break
        _place_best(pk, j, gain, require_positive=prices is not None)
    # running jobs that found no place give their room back; then fill and grow at face value
    for j in list(pk.reserved):
        pk.release(j)
    if stop.passed():
        return pk
    if prices is not None:
        gain0, _ = option_gains(inst, opts, None)
        rest = others[[j not in pk.choice for j in others.tolist()]] if len(others) else others
        for j in fill_order(pk, rest):
            if stop.passed():
                return pk
            _place_best(pk, j, gain0, require_positive=False)
    grow_all(pk, stop.passed)
    return pk


def protected_first(inst: Instance, opts: Options, prices: np.ndarray | None) -> tuple[Packing, np.ndarray, np.ndarray]:
    """Every greedy fill's start, the epoch plan's and the backfill's: running jobs' room reserved,
    protected jobs kept (or placed where they gain most); returns the packing, the options' gains
    and the other jobs in `density_order`, which the caller fills its own way."""
    pk = Packing(inst, opts)
    gain, reps = option_gains(inst, opts, prices)
    pk.reserve_running([i.index for i in inst.jobs if i.keepable])
    protected, others = density_order(inst, opts, gain, reps)
    for j in protected:
        if not pk.try_keep(j):
            _place_best(pk, j, gain, require_positive=False)
    return pk, gain, others


def density_order(inst: Instance, opts: Options, gain: np.ndarray, reps: np.ndarray) -> tuple[list[int], np.ndarray]:
    """The protected jobs, and the others by their best option's value per device (ties by index):
    the order every greedy fill takes, the epoch plan's and the backfill's alike."""
    best_density = np.full(len(inst.jobs), -np.inf)
    if len(opts):
        np.maximum.at(best_density, opts.job, gain / np.maximum(reps * opts.dpr, 1))
    protected = [i.index for i in inst.jobs if i.protected]
    others = np.array([i.index for i in inst.jobs if not i.protected], dtype=np.int64)
    return protected, others[np.lexsort((others, -best_density[others]))]


def _place_best(pk: Packing, j: int, gain: np.ndarray, require_positive: bool) -> bool:
    """Place job j where it gains most given the room left: each option is valued at the replicas
    its pool can still give (within the quota), first in free room, then also in room held by
    running jobs not yet decided (which rank below j), and tried best first.

    Both passes are valued in one vectorised step (candidates 0..n-1 in free room, n..2n-1 with
    soft room too) and tried in the order (value desc, free room first, option order): at planet
    size this runs for 20,000 jobs, so its numpy calls are few and its Python loop short."""
    if j in pk.choice:
        return True
    opts = pk.opts
    olist = opts.by_job[j]
    if len(olist) == 0:
        return False
    if len(olist) <= SMALL_OPTIONS:
        # (the search's moves place evicted jobs again tens of thousands of times a second: lists, no numpy)
        gl = _gain_list(pk.inst, gain)
        small = _by_job_lists(opts)[j]
        if require_positive:
            small = [o for o in small if gl[o] > 0]
            if not small:
                return False
        n = len(small)
        order, reps = _ranked_small(pk, j, pk.inst.jobs[j], small, gl)
        keep = opts.lists().keep
        for c in order:
            o = small[c % n]
            if keep[o]:
                if pk.try_keep(j):
                    return True
            elif pk.try_option(o, target=reps[c], use_soft=c >= n):
                return True
        return False
    if require_positive:
        olist = olist[gain[olist] > 0]
        if len(olist) == 0:
            return False
    info = pk.inst.jobs[j]
    n = len(olist)
    keep = opts.keep[olist]
    pools = opts.pool[olist]
    d = opts.dpr[olist]
    lo, hi = opts.lo[olist], opts.hi[olist]
    pc = info.preempt_cost
    # per replica: the option's gain spread over the replicas it assumed (so prices carry through)
    g = gain[olist] - pc
    per = g / np.maximum(np.where(g > 0, hi, lo), 1)
    free = pk.pool_free[pools]
    hard = free - pk.pool_soft[pools]
    if j in pk.reserved and info.cur_pool is not None:   # a running job may reuse its own room
        hard = hard + np.where(pools == info.cur_pool, info.r0 * info.dpr, 0)
    room = np.concatenate((hard, free))
    d2 = np.concatenate((d, d))
    reps = np.minimum(np.concatenate((hi, hi)), room // d2)
    qroom = pk.quota_room(j)
    if qroom is not None:
        reps = np.minimum(reps, qroom // d2)
    if info.allowed is not None:   # v1.1: only the listed counts
        reps = snap_down(info, reps)
    keep2 = np.concatenate((keep, keep))
    lo2 = np.concatenate((lo, lo))
    reps = np.where(keep2, lo2, reps)
    cand = np.flatnonzero(keep2 | (reps >= lo2))
    if len(cand) == 0:
        return False
    val = np.concatenate((per, per))[cand] * reps[cand] + pc
    order = cand[np.lexsort((cand % n, cand >= n, -val))]
    for c in order.tolist():
        k = c % n
        if keep[k]:
            if pk.try_keep(j):
                return True
        elif pk.try_option(int(olist[k]), target=int(reps[c]), use_soft=c >= n):
            return True
    return False


SMALL_OPTIONS = 16   # a job with at most this many options is ranked in plain Python (`_ranked_small`)

def _gain_list(inst: Instance, gain: np.ndarray) -> list[float] | np.ndarray:
    """`gain` as a Python list (a list read costs a fraction of a numpy scalar read), converted once per
    array and request (the last two kept in `inst.derived`): only an array that cannot change
    (`option_gains` returns its gains read-only); any other is read as it is."""
    got = inst.derived.get("gain_lists", ())
    for arr, lst in got:
        if arr is gain:
            return lst
    if gain.flags.writeable:
        return gain
    lst = gain.tolist()
    inst.derived["gain_lists"] = ((gain, lst), *got[:1])
    return lst


def _by_job_lists(opts: Options) -> list[list[int]]:
    """`opts.by_job` as Python lists, built once per options table (its columns never change)."""
    got = opts.__dict__.get("_by_job_lists")
    if got is None:
        got = opts.__dict__["_by_job_lists"] = [b.tolist() for b in opts.by_job]
    return got


def _ranked_small(pk: Packing, j: int, info, olist: list[int], gain) -> tuple[list[int], list[int]]:
    """`_place_best`'s ranking for a job of a few options, in scalar arithmetic: the same candidates
    (0..n-1 in free room, n..2n-1 with soft room too), the same replicas and the same order, computed
    with the same float operations, without the two dozen numpy calls on arrays of a few elements that
    made the greedy a third of a small request's plan. `gain`: a list or an array, read by option.
    Returns (candidates best first, replicas per candidate)."""
    ol = pk.opts.lists()
    lo_l, hi_l, dpr_l, pool_l, keep_l = ol.lo, ol.hi, ol.dpr, ol.pool, ol.keep
    n = len(olist)
    pc = info.preempt_cost
    pool_free, pool_soft = pk.pool_free, pk.pool_soft
    own = info.r0 * info.dpr if (j in pk.reserved and info.cur_pool is not None) else 0
    cur_pool = info.cur_pool
    qroom = pk.quota_room(j)
    qroom = None if qroom is None else int(qroom)
    allowed = info.allowed is not None
    reps = [0] * (2 * n)
    keyed = []
    for k, o in enumerate(olist):
        g = float(gain[o]) - pc
        lo, hi = lo_l[o], hi_l[o]
        per = g / max(hi if g > 0 else lo, 1)
        if keep_l[o]:
            reps[k] = reps[k + n] = lo
            keyed.append((-(per * lo + pc), False, k, k))
            keyed.append((-(per * lo + pc), True, k, k + n))
            continue
        d, p = dpr_l[o], pool_l[o]
        free = int(pool_free[p])
        hard = free - int(pool_soft[p]) + (own if p == cur_pool else 0)
        r1 = min(hi, hard // d)
        r2 = min(hi, free // d)
        if qroom is not None:
            r1 = min(r1, qroom // d)
            r2 = min(r2, qroom // d)
        if allowed:
            r1 = int(snap_down(info, r1))
            r2 = int(snap_down(info, r2))
        reps[k], reps[k + n] = r1, r2
        if r1 >= lo:
            keyed.append((-(per * r1 + pc), False, k, k))
        if r2 >= lo:
            keyed.append((-(per * r2 + pc), True, k, k + n))
    keyed.sort()
    return [t[3] for t in keyed], reps


def grow_all(pk: Packing, stopped: Callable[[], bool] | None = None) -> None:
    """Give leftover room to changing jobs below their maximum, best value per device first
    (until `stopped()` says so, where given)."""
    opts = pk.opts
    cands = [(j, o) for j, o in pk.choice.items() if not opts.keep[o] and sum(pk.nodes[j].values()) < opts.hi[o]]
    cands.sort(key=lambda t: (-opts.coef[t[1]] / opts.dpr[t[1]], t[0]))
    for j, o in cands:
        if stopped is not None and stopped():
            return
        if opts.coef[o] > 0:
            pk.grow(j, int(opts.hi[o]))
