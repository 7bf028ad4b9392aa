"""Integer Lagrangian bounds: the LP's prices, with pools or quotas kept as integer knapsacks.

Why: the LP relaxation lets a lumpy gang run in part (13 replicas of 8 devices at x = 0.36
fills a quota that cannot hold it whole), and on fleets with such gangs it sits 5-10 % above
the best plan. Keeping one family of capacity rows integral closes much of that, and every
multiplier vector gives a valid bound (weak duality), so the LP's duals are a good start and
any subgradient step that lowers the value is kept.

- `pool_knapsack_bound`: the one-option-per-job rows, quotas and the migration budget move
  into the objective (job prices lambda_j, quota prices, budget price); what remains splits
  into one integer knapsack per pool (options with a replica count in {0} u [lo, hi], each
  of dpr devices, within the pool's up devices). A job may then appear in several pools,
  each paying lambda_j.
- `quota_knapsack_bound`: pool capacity and the budget move into the objective; each quota
  with a positive price keeps its row: a multiple-choice knapsack over its jobs (each job one
  option and count, or none; protected jobs exactly one). Jobs outside those quotas take
  their best priced option, as in the plain Lagrangian.
Both relax node packing and drop the spread term (never negative), as the LP does.
"""

from __future__ import annotations

import math
import time
from dataclasses import dataclass

import numpy as np

from placement.bound import _keys, priced_values
from placement.candidates import Options
from placement.instance import Instance

NEG = -1e300


@dataclass
class IntegerBound:
    value: float
    method: str            # pool_knapsack | quota_knapsack
    job_prices: np.ndarray | None = None


def _job_values(inst: Instance, opts: Options, pool_price: np.ndarray, quota_price: np.ndarray,
                budget_price: float, prot: np.ndarray) -> np.ndarray:
    """Per job, its best priced option (every row priced), 0 for none, -inf for a protected job
    with no option: the plain Lagrangian's per-job term."""
    best = np.where(prot, -np.inf, 0.0)
    if len(opts):
        val, _ = priced_values(inst, opts, pool_price, quota_price, budget_price)
        np.maximum.at(best, opts.job, val)
    return best


def _job_prices(inst: Instance, opts: Options, pool_price: np.ndarray, quota_price: np.ndarray,
                budget_price: float) -> np.ndarray:
    """lambda_j: each job's best priced option (at least 0 unless protected): the job row's dual
    at an LP optimum, and a good start elsewhere."""
    prot = np.array([j.protected for j in inst.jobs], dtype=bool)
    best = _job_values(inst, opts, pool_price, quota_price, budget_price, prot)
    return np.where(np.isneginf(best), 0.0, best)


def _item_values(opts: Options, o: np.ndarray, slope: np.ndarray, fixed: np.ndarray) -> list[tuple[int, np.ndarray, np.ndarray]]:
    """Per option: (dpr, replica counts, values) of its choices with a positive value."""
    out = []
    for k, oo in enumerate(o.tolist()):
        lo, hi = int(opts.lo[oo]), int(opts.hi[oo])
        n = np.arange(lo, hi + 1)
        v = slope[k] * n + fixed[k]
        keep = v > 0
        if keep.any():
            out.append((int(opts.dpr[oo]), n[keep], v[keep]))
    return out


def _knapsack(cap: int, items: list[tuple[int, np.ndarray, np.ndarray]], must: list[bool] | None = None) -> float:
    """Multiple-choice knapsack: each item takes one of its (count, value) choices or none (none
    not allowed where `must`); weight dpr * count; the most total value within `cap`."""
    if not items:
        return 0.0
    # the weights' greatest common divisor, in one pass (per item in Python it took half the bound's time at
    # planet size: 7,000 items)
    w_all = np.concatenate([np.asarray(d * n, dtype=np.int64) for d, n, _ in items])
    g = math.gcd(int(np.gcd.reduce(w_all)) if len(w_all) else 0, int(cap)) or 1
    C = int(cap) // g
    best = np.full(C + 1, NEG)
    best[0] = 0.0
    best = np.maximum.accumulate(best)   # best[c]: most value within weight c
    for k, (d, n, v) in enumerate(items):
        w = (d * n) // g
        new = best.copy() if not (must and must[k]) else np.full(C + 1, NEG)
        for wi, vi in zip(w.tolist(), v.tolist()):
            if wi > C:
                continue
            cand = best[: C + 1 - wi] + vi
            np.maximum(new[wi:], cand, out=new[wi:])
        best = np.maximum.accumulate(new)
    return float(best[C])


def pool_knapsack_bound(inst: Instance, opts: Options, pool_price: np.ndarray, quota_price: np.ndarray | None,
                        budget_price: float, job_price: np.ndarray | None = None,
                        deadline: float | None = None) -> IntegerBound | None:
    """The Lagrangian bound with job rows, quotas and budget priced and pools as integer knapsacks.
    None when the deadline passes first (no partial value is a bound)."""
    keys, jq = _keys(inst)
    mu = np.zeros(len(keys)) if quota_price is None or len(quota_price) == 0 else np.maximum(quota_price, 0.0)
    beta = max(0.0, budget_price) if inst.budget_gb is not None else 0.0   # no budget row, no price
    lam = _job_prices(inst, opts, pool_price, mu, beta) if job_price is None else job_price
    prot = np.array([j.protected for j in inst.jobs], dtype=bool)
    lam = np.where(prot, lam, np.maximum(lam, 0.0))
    pc = np.array([j.preempt_cost for j in inst.jobs])
    total = float(lam.sum() - pc.sum() + beta * (inst.budget_gb or 0.0))
    if keys:
        total += float(mu @ np.array([inst.quotas[k] for k in keys], dtype=float))
    if not len(opts):
        return IntegerBound(total, "pool_knapsack", lam)
    qj = jq[opts.job]
    qp = np.where(qj >= 0, mu[np.maximum(qj, 0)], 0.0) if len(mu) else np.zeros(len(opts))
    slope = opts.coef - qp * opts.dpr
    fixed = pc[opts.job] - lam[opts.job] - beta * opts.mig_gb
    best_v = np.maximum(slope * opts.hi, slope * opts.lo) + fixed
    live = np.flatnonzero(best_v > 1e-12)
    order = live[np.argsort(opts.pool[live], kind="stable")]
    pools = opts.pool[order]
    cuts = np.flatnonzero(np.diff(pools)) + 1
    for grp in np.split(order, cuts) if len(order) else []:
        if deadline is not None and time.perf_counter() > deadline:
            return None
        p = int(opts.pool[grp[0]])
        items = _item_values(opts, grp, slope[grp], fixed[grp])
        total += _knapsack(inst.pools[p].capacity, items)
    return IntegerBound(total, "pool_knapsack", lam)


def quota_knapsack_bound(inst: Instance, opts: Options, pool_price: np.ndarray, quota_price: np.ndarray | None,
                         budget_price: float, deadline: float | None = None,
                         max_knapsacks: int | None = None) -> IntegerBound | None:
    """The Lagrangian bound with pools and budget priced, and each priced quota an integer
    multiple-choice knapsack over its jobs. Anytime: a quota whose knapsack is not solved by `deadline`
    (or beyond the first `max_knapsacks`) takes the lesser of its row priced, as in the plain Lagrangian,
    and its row dropped, so the value is a bound whenever it stops (None only where a protected job
    cannot run). Returning nothing at the deadline left a loaded planet plan on the LP's bound, 2 % looser."""
    keys, jq = _keys(inst)
    mu = np.zeros(len(keys)) if quota_price is None or len(quota_price) == 0 else np.maximum(quota_price, 0.0)
    beta = max(0.0, budget_price) if inst.budget_gb is not None else 0.0   # no budget row, no price
    pi = np.maximum(pool_price, 0.0)
    cap = np.array([p.capacity for p in inst.pools], dtype=float)
    pc = np.array([j.preempt_cost for j in inst.jobs])
    prot = np.array([j.protected for j in inst.jobs], dtype=bool)
    total = float(pi @ cap - pc.sum() + beta * (inst.budget_gb or 0.0))
    knap = mu > 0                       # quotas kept as rows; the others are free at price 0
    # per job its best option with no quota priced (`free`) and with every quota priced (`relaxed`)
    free = _job_values(inst, opts, pi, np.zeros(len(keys)), beta, prot)
    if np.isneginf(free).any():
        return None   # a protected job with no option
    in_knap = np.zeros(len(inst.jobs), dtype=bool)
    if keys:
        in_knap = (jq >= 0) & knap[np.maximum(jq, 0)]
    total += float(free[~in_knap].sum())
    q_short: np.ndarray | None = None   # per quota, its bound short of the knapsack: made at the first one needed

    def short_of_knapsack() -> np.ndarray:
        """Each priced quota's two bounds short of its knapsack, the row priced (the Lagrangian's term) and
        the row dropped: the lesser (a pass over the options, 20 ms at planet size, spent only where a
        knapsack is left unsolved)."""
        qj = np.maximum(jq, 0)
        relaxed = _job_values(inst, opts, pi, mu, beta, prot)
        q_relaxed = mu * np.array([inst.quotas[k] for k in keys], dtype=float) + np.bincount(
            qj[in_knap], weights=relaxed[in_knap], minlength=len(keys))
        q_free = np.bincount(qj[in_knap], weights=free[in_knap], minlength=len(keys))
        return np.minimum(q_relaxed, q_free)
    slope = opts.coef - pi[opts.pool] * opts.dpr
    fixed = pc[opts.job] - beta * opts.mig_gb
    # every (option, count) of the jobs in priced quotas, as flat arrays
    oq = np.flatnonzero(in_knap[opts.job])
    span = (opts.hi[oq] - opts.lo[oq] + 1).astype(np.int64)
    o_rep = np.repeat(oq, span)
    r_rep = opts.lo[o_rep] + (np.arange(len(o_rep)) - np.repeat(np.cumsum(span) - span, span))
    v_rep = slope[o_rep] * r_rep + fixed[o_rep]
    j_rep = opts.job[o_rep]
    w_rep = opts.dpr[o_rep] * r_rep
    keep = (v_rep > 0) | prot[j_rep]
    j_rep, w_rep, v_rep = j_rep[keep], w_rep[keep], v_rep[keep]
    # per (job, devices) the best value: one integer key sorted (the rows come nearly in its order, so a
    # stable sort is a few passes: 10 ms at planet size, where sorting by three keys took 78 ms)
    span_w = int(w_rep.max()) + 1 if len(w_rep) else 1
    key = j_rep.astype(np.int64) * span_w + w_rep
    order = np.argsort(key, kind="stable")
    key, v_rep = key[order], v_rep[order]
    first = np.flatnonzero(np.r_[True, key[1:] != key[:-1]]) if len(key) else np.zeros(0, dtype=np.int64)
    v_rep = np.maximum.reduceat(v_rep, first) if len(first) else v_rep
    j_rep, w_rep = key[first] // span_w, key[first] % span_w
    starts = np.searchsorted(j_rep, np.arange(len(inst.jobs) + 1))
    # each quota's jobs in index order, grouped once (a pass over every job per quota took a tenth of the
    # bound's time at planet size: 469 quotas x 20,000 jobs)
    by_q = np.argsort(jq, kind="stable")
    q_start = np.searchsorted(jq[by_q], np.arange(len(keys) + 1))
    todo = np.flatnonzero(knap)
    # the largest priced rows first, price x devices (planet seeds 9 and 2: the first 200 of 660 knapsacks
    # close 90 % and 83 % of the gap between the bound of none and of all; in index order, 41 % and 35 %)
    todo = todo[np.argsort(-(mu[todo] * np.array([inst.quotas[keys[q]] for q in todo.tolist()], dtype=float)),
                           kind="stable")]
    for done, q in enumerate(todo.tolist()):
        if (deadline is not None and time.perf_counter() > deadline) or (
                max_knapsacks is not None and done >= max_knapsacks):
            if q_short is None:
                q_short = short_of_knapsack()
            total += float(q_short[q])
            continue
        items, must = [], []
        for j in by_q[q_start[q]:q_start[q + 1]].tolist():
            a, b = starts[j], starts[j + 1]
            if b > a:
                items.append((1, w_rep[a:b], v_rep[a:b]))
                must.append(bool(prot[j]))
            elif prot[j] and len(opts.by_job[j]):
                return None
        if items:
            k = _knapsack(int(inst.quotas[keys[q]]), items, must)
            if k <= NEG / 2:
                return None   # the protected jobs alone overflow the quota: infeasible, not a bound
            total += k
    return IntegerBound(total, "quota_knapsack")


def integer_bound(inst: Instance, opts: Options, pool_price: np.ndarray, quota_price: np.ndarray | None,
                  budget_price: float, deadline: float) -> IntegerBound | None:
    """The integer Lagrangian bound worth computing at the LP's prices: as many of its knapsacks as
    finish by `deadline`, the largest priced rows first, the rest bounded without one.
    (At an LP optimum the pool knapsacks gain nothing: items at zero reduced cost fill each priced
    pool exactly, so only the quota knapsacks run here.)"""
    if time.perf_counter() > deadline:
        return None   # not even its set-up (50-100 ms at planet size) fits: the bound in hand stands
    return quota_knapsack_bound(inst, opts, pool_price, quota_price, budget_price, deadline=deadline)
