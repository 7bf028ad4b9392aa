"""Hard constraints of contract v1 at pool level (node packing is the second stage)."""

from __future__ import annotations

from collections import defaultdict

import numpy as np
from ortools.sat.python import cp_model

from placement.candidates import Options
from placement.cpsat.variables import Variables
from placement.instance import Instance


def add_constraints(model: cp_model.CpModel, inst: Instance, opts: Options, v: Variables,
                    used_pool: np.ndarray, used_quota: dict[tuple[str, str], int], used_gb: float) -> None:
    """`used_*` is what jobs outside the model (fixed beforehand) already take."""
    sub = v.options.tolist()
    ol = opts.lists()
    by_job: dict[int, list[int]] = defaultdict(list)
    for o in sub:
        by_job[ol.job[o]].append(o)
    for j, olist in by_job.items():
        lits = [v.x[o] for o in olist]
        if inst.jobs[j].protected:
            model.add_exactly_one(lits)
        elif len(lits) > 1:
            model.add_at_most_one(lits)
    # replica range when chosen
    for o, n in v.n.items():
        model.add(n >= ol.lo[o]).only_enforce_if(v.x[o])
        model.add(n <= ol.hi[o] * v.x[o])
    # capacity per pool and quota per (tenant, tier): each a weighted sum built at once (the same constraint
    # as the sum of the terms, without an expression object per term)
    pool_terms: dict[int, tuple[list, list[int]]] = defaultdict(lambda: ([], []))
    quota_terms: dict[tuple[str, str], tuple[list, list[int]]] = defaultdict(lambda: ([], []))
    for o in sub:
        n = v.n.get(o)
        var, c = (n, ol.dpr[o]) if n is not None else (v.x[o], ol.dpr[o] * ol.lo[o])
        vs, cs = pool_terms[ol.pool[o]]
        vs.append(var)
        cs.append(c)
        key = inst.jobs[ol.job[o]].key
        if key in inst.quotas:
            vs, cs = quota_terms[key]
            vs.append(var)
            cs.append(c)
    for p, (vs, cs) in pool_terms.items():
        model.add(cp_model.LinearExpr.weighted_sum(vs, cs) <= int(inst.pools[p].capacity - used_pool[p]))
    for key, (vs, cs) in quota_terms.items():
        model.add(cp_model.LinearExpr.weighted_sum(vs, cs) <= int(inst.quotas[key] - used_quota.get(key, 0)))
    # migration budget, in integer milli-GB rounded so that the model never admits more than allowed
    if inst.budget_gb is not None:
        mig = [(o, opts.mig_gb[o]) for o in v.options.tolist() if opts.mig_gb[o] > 0]
        if mig:
            cap = int(np.floor((inst.budget_gb - used_gb) * 1000 + 1e-6))
            model.add(sum(int(np.ceil(gb * 1000 - 1e-6)) * v.x[o] for o, gb in mig) <= cap)


def add_packing_cuts(model: cp_model.CpModel, inst: Instance, opts: Options, v: Variables, room: np.ndarray,
                     fixed_big: dict[tuple[int, int], int]) -> None:
    """Make pool-level answers pack: in each pool, replicas of `d` devices or more fit at most
    sum over nodes of floor(room / d), where `room` is each node's devices after the jobs that stay
    where they are. `fixed_big[(pool, d)]` counts such replicas of jobs held outside the model.
    A restriction for neighbourhood models (a kept job that leaves frees room it is not credited
    for), never added to a model whose bound is reported."""
    by_pool: dict[int, list[int]] = defaultdict(list)
    for o in v.n:
        by_pool[int(opts.pool[o])].append(o)
    for p, olist in by_pool.items():
        nodes = inst.pools[p].nodes
        dprs = sorted({int(opts.dpr[o]) for o in olist if opts.dpr[o] > 1})
        for d in dprs:
            cap = int((np.maximum(room[nodes], 0) // d).sum())
            rhs = cap - sum(k for (pp, dd), k in fixed_big.items() if pp == p and dd >= d)
            terms = [v.n[o] for o in olist if opts.dpr[o] >= d]
            if terms:
                model.add(sum(terms) <= max(rhs, 0))
