"""The Lagrangian bound of `placement.bound` for small requests, in plain Python.

An evaluation over a dozen options is some thirty numpy calls of a few microseconds each; on the
contract's six-job example the subgradient's two evaluations were a fifth of the engine's time. The
same arithmetic over lists takes a tenth of that. It is the same function of the same prices (sums
may be taken in another order, so values agree to rounding): `tests/placement/test_scalar_paths.py`
holds the two forms to each other.
"""

from __future__ import annotations

import math
import time

import numpy as np

from placement.bound import Bound, _job_arrays, _keys, descent_over, descent_progress, step_size
from placement.candidates import Options
from placement.instance import Instance


def _tables(inst: Instance) -> tuple[list[float], list[bool], list[float], list[int], list[float]]:
    """(preemption costs, protected flags, pool capacities, each job's quota row, quota capacities) as
    lists, once per instance. Read, never change."""
    got = inst.derived.get("bound_lists")
    if got is None:
        keys, jq = _keys(inst)
        pc, prot, cap = _job_arrays(inst)
        got = inst.derived["bound_lists"] = (pc.tolist(), prot.tolist(), cap.tolist(), jq.tolist(),
                                             [float(inst.quotas[k]) for k in keys])
    return got


def _value(inst: Instance, opts: Options, pi: list[float], mu: list[float],
           lam: float) -> tuple[float, list[float], list[float], float]:
    """`bound.lagrangian_value` over lists: (value, pool devices used, quota devices used, GB moved)."""
    pc, prot, cap, jq, qcap = _tables(inst)
    L = opts.lists()
    mig = L.mig_gb
    total = sum(p * c for p, c in zip(pi, cap))
    if qcap:
        total += sum(m * q for m, q in zip(mu, qcap))
    if inst.budget_gb is not None:
        total += lam * inst.budget_gb
    else:
        lam = 0.0   # no budget row: pricing one that does not exist would bound below the optimum
    n_jobs = len(inst.jobs)
    top = [-math.inf] * n_jobs
    arg = [-1] * n_jobs
    reps_of = [0] * len(L.job)
    for o, j in enumerate(L.job):
        q = jq[j]
        price = pi[L.pool[o]] + (mu[q] if q >= 0 and mu else 0.0)
        red = L.coef[o] - price * L.dpr[o]
        reps = L.hi[o] if red > 0 else L.lo[o]
        reps_of[o] = reps
        val = red * reps + pc[j] - lam * mig[o]
        if val > top[j]:
            top[j] = val
            arg[j] = o
    used_pool = [0.0] * len(cap)
    used_q = [0.0] * len(qcap)
    moved = 0.0
    best_sum = 0.0
    for j in range(n_jobs):
        base = -math.inf if prot[j] else 0.0
        if top[j] > base:
            best_sum += top[j]
            o = arg[j]
            dev = reps_of[o] * L.dpr[o]
            used_pool[L.pool[o]] += dev
            if jq[j] >= 0:
                used_q[jq[j]] += dev
            moved += mig[o]
        elif base == -math.inf:
            return math.inf, [0.0] * len(cap), [0.0] * len(qcap), 0.0
    return total + (best_sum - sum(pc)), used_pool, used_q, moved


def lagrangian_value_small(inst: Instance, opts: Options, pool_price: np.ndarray, quota_price: np.ndarray,
                           budget_price: float) -> tuple[float, np.ndarray, np.ndarray, float]:
    """`bound.lagrangian_value` of a small request."""
    mu = quota_price.tolist() if quota_price is not None and len(quota_price) else []
    val, used, used_q, moved = _value(inst, opts, pool_price.tolist(), mu, budget_price)
    return val, np.array(used), np.array(used_q), moved


def lagrangian_bound_small(inst: Instance, opts: Options, start_prices: np.ndarray | None = None,
                           target: float | None = None, seconds: float = 0.3, max_iter: int = 200,
                           start_quota: np.ndarray | None = None, start_budget: float = 0.0,
                           proven_gap: float | None = None) -> Bound:
    """`bound.lagrangian_bound` of a small request: the same descent, step for step."""
    _, _, cap, _, qcap = _tables(inst)
    pi = [0.0] * len(cap) if start_prices is None else [max(float(p), 0.0) for p in start_prices.tolist()]
    mu = [0.0] * len(qcap) if start_quota is None else [max(float(m), 0.0) for m in start_quota.tolist()]
    lam = max(0.0, start_budget)
    budget = inst.budget_gb
    best_val, best_pi = math.inf, list(pi)
    deadline = time.perf_counter() + seconds
    theta = 1.0
    stall = 0
    for _ in range(max_iter):
        val, used, used_q, moved = _value(inst, opts, pi, mu, lam)
        improved, stall, theta = descent_progress(val, best_val, stall, theta)
        if improved:
            best_val, best_pi = val, list(pi)
        if descent_over(val, best_val, theta, deadline, target, proven_gap):
            break
        # only components that can move (price > 0 or constraint violated) count
        g_pool = [c - u if p > 0 or c - u < 0 else 0.0 for p, c, u in zip(pi, cap, used)]
        g_q = [c - u if m > 0 or c - u < 0 else 0.0 for m, c, u in zip(mu, qcap, used_q)]
        g_b = (budget - moved) if budget is not None else 0.0
        if not (lam > 0 or g_b < 0):
            g_b = 0.0
        norm = sum(g * g for g in g_pool) + sum(g * g for g in g_q) + g_b * g_b
        if norm <= 0:
            break   # the relaxed choice is feasible and complementary: this bound is the optimum
        step = step_size(val, target, theta, norm)
        pi = [max(0.0, p - step * g) for p, g in zip(pi, g_pool)]
        mu = [max(0.0, m - step * g) for m, g in zip(mu, g_q)]
        lam = max(0.0, lam - step * g_b)
    return Bound(best_val, "lagrangian", np.array(best_pi, dtype=float), infeasible=not math.isfinite(best_val))
