"""The CP-SAT step model written in whole-array passes is the model the expression API writes: the same
variables, constraints, objective and hints, field for field, on neighbourhoods of family plans."""

from __future__ import annotations

from collections import defaultdict

import numpy as np
from ortools.sat.python import cp_model

from datasets.requests import generate_family
from placement.candidates import build_options
from placement.cpsat.constraints import add_constraints
from placement.cpsat.objective import set_objective
from placement.cpsat.solve import _add_hints
from placement.cpsat.variables import make_variables, replicas_expr
from placement.greedy import greedy
from placement.instance import compile_instance
from tests.support.requests import parsed


def _by_expressions(model, inst, opts, v, used_pool, used_quota, used_gb, jobs_in_model, hint):
    """Constraints, objective and hints as sums of terms through the expression API, one call per term."""
    by_job = defaultdict(list)
    for o in v.options.tolist():
        by_job[int(opts.job[o])].append(o)
    for j, olist in by_job.items():
        lits = [v.x[o] for o in olist]
        if inst.jobs[j].protected:
            model.add_exactly_one(lits)
        elif len(lits) > 1:
            model.add_at_most_one(lits)
    for o, n in v.n.items():
        model.add(n >= int(opts.lo[o])).only_enforce_if(v.x[o])
        model.add(n <= int(opts.hi[o]) * v.x[o])
    pool_terms, quota_terms = defaultdict(list), defaultdict(list)
    for o in v.options.tolist():
        term = int(opts.dpr[o]) * replicas_expr(opts, v, o)
        pool_terms[int(opts.pool[o])].append(term)
        key = inst.jobs[int(opts.job[o])].key
        if key in inst.quotas:
            quota_terms[key].append(term)
    for p, terms in pool_terms.items():
        model.add(sum(terms) <= int(inst.pools[p].capacity - used_pool[p]))
    for key, terms in quota_terms.items():
        model.add(sum(terms) <= int(inst.quotas[key] - used_quota.get(key, 0)))
    if inst.budget_gb is not None:
        mig = [(o, opts.mig_gb[o]) for o in v.options.tolist() if opts.mig_gb[o] > 0]
        if mig:
            cap = int(np.floor((inst.budget_gb - used_gb) * 1000 + 1e-6))
            model.add(sum(int(np.ceil(gb * 1000 - 1e-6)) * v.x[o] for o, gb in mig) <= cap)
    pc = np.array([j.preempt_cost for j in inst.jobs])
    scale = set_objective(cp_model.CpModel(), inst, opts, make_variables(cp_model.CpModel(), opts, v.options),
                          jobs_in_model).scale
    terms = []
    for o in v.options.tolist():
        j = int(opts.job[o])
        if opts.keep[o]:
            terms.append(round((opts.coef[o] * opts.lo[o] + pc[j]) * scale) * v.x[o])
        else:
            terms.append(round(opts.coef[o] * scale) * v.n[o])
            if pc[j] > 0:
                terms.append(round(pc[j] * scale) * v.x[o])
    model.maximize(sum(terms))
    for o in v.options.tolist():
        h = hint.get(int(opts.job[o]))
        chosen = h is not None and h[0] == o
        model.add_hint(v.x[o], chosen)
        if o in v.n:
            model.add_hint(v.n[o], h[1] if chosen else 0)


def test_the_step_model_is_the_one_the_expression_api_writes_on_family_neighbourhoods():
    for seed in (11, 29):
        inst = compile_instance(parsed(generate_family("medium", seed)))
        opts = build_options(inst)
        pk = greedy(inst, opts)
        inc = {j: (o, sum(pk.nodes[j].values())) for j, o in pk.choice.items()}
        for pools in ({0, 1}, {2, 5}, set(range(len(inst.pools)))):
            free = sorted({int(j) for j in opts.job[np.isin(opts.pool, list(pools))].tolist()})[:150]
            subset = np.concatenate([opts.by_job[j] for j in free])
            fixed = {j: c for j, c in inc.items() if j not in set(free)}
            used_pool = np.zeros(len(inst.pools), dtype=np.int64)
            used_quota: dict = {}
            used_gb = 0.0
            for j, (o, r) in fixed.items():
                used_pool[int(opts.pool[o])] += int(opts.dpr[o]) * r
                used_quota[inst.jobs[j].key] = used_quota.get(inst.jobs[j].key, 0) + int(opts.dpr[o]) * r
                used_gb += float(opts.mig_gb[o])
            allowed = [i.allowed for i in inst.jobs]
            a, b = cp_model.CpModel(), cp_model.CpModel()
            va, vb = make_variables(a, opts, subset, allowed), make_variables(b, opts, subset, allowed)
            add_constraints(a, inst, opts, va, used_pool, used_quota, used_gb)
            set_objective(a, inst, opts, va, free)
            _add_hints(a, opts, va, subset, inc)
            _by_expressions(b, inst, opts, vb, used_pool, used_quota, used_gb, free, inc)
            assert len(a.proto.constraints) > len(subset) and len(a.proto.solution_hint.vars) > len(subset)
            assert str(a.proto) == str(b.proto)
