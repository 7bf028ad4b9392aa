"""Build, warm-start and solve the pool-level CP-SAT model within a deadline."""

from __future__ import annotations

import time
from dataclasses import dataclass, field

import numpy as np
from ortools.sat.python import cp_model

from placement.candidates import Options
from placement.cpsat.constraints import add_constraints, add_packing_cuts
from placement.cpsat.objective import set_objective
from placement.cpsat.variables import Variables, make_variables
from placement.instance import Instance
from placement.stop import StoppingCriterion


@dataclass
class CpsatResult:
    status: str                                   # OPTIMAL, FEASIBLE, UNKNOWN, INFEASIBLE, MODEL_INVALID
    choice: dict[int, tuple[int, int]] = field(default_factory=dict)   # job -> (option, replicas)
    objective: float | None = None                # real value of the model's solution (jobs in model)
    bound: float | None = None                    # real upper bound for the jobs in the model
    slack: float = 0.0                            # most the integer rounding can misstate a solution's value
    variables: int = 0
    wall_s: float = 0.0


def solve_pool_model(inst: Instance, opts: Options, subset: np.ndarray, hint: dict[int, tuple[int, int]],
                     seconds: float, stop: StoppingCriterion, fixed_jobs: dict[int, tuple[int, int]] | None = None,
                     workers: int = 2, kept_room: np.ndarray | None = None) -> CpsatResult:
    """Solve over the options in `subset` (jobs in `fixed_jobs` are held at their (option, replicas)).

    `hint` maps job -> (option, replicas), typically the greedy plan: a complete, feasible start.
    `kept_room` (devices per node left by the jobs that keep their placement) adds packing cuts."""
    t0 = time.perf_counter()
    fixed_jobs = fixed_jobs or {}
    used_pool = np.zeros(len(inst.pools), dtype=np.int64)
    used_quota: dict[tuple[str, str], int] = {}
    used_gb = 0.0
    for j, (o, r) in fixed_jobs.items():
        d = int(opts.dpr[o]) * r
        used_pool[int(opts.pool[o])] += d
        key = inst.jobs[j].key
        used_quota[key] = used_quota.get(key, 0) + d
        used_gb += float(opts.mig_gb[o])
    model = cp_model.CpModel()
    v = make_variables(model, opts, subset, [i.allowed for i in inst.jobs])
    add_constraints(model, inst, opts, v, used_pool, used_quota, used_gb)
    if kept_room is not None:   # neighbourhood models: answers that pack onto nodes
        fixed_big: dict[tuple[int, int], int] = {}
        for j, (o, r) in fixed_jobs.items():
            if not opts.keep[o]:
                key = (int(opts.pool[o]), int(opts.dpr[o]))
                fixed_big[key] = fixed_big.get(key, 0) + r
        add_packing_cuts(model, inst, opts, v, kept_room, fixed_big)
    jobs_in_model = sorted({int(j) for j in opts.job[subset].tolist()} - set(fixed_jobs))
    # a protected job whose every option was pruned from the subset keeps the model honest
    in_model = set(jobs_in_model)
    for j in range(len(inst.jobs)):
        if inst.jobs[j].protected and j not in fixed_jobs and j not in in_model:
            return CpsatResult("INFEASIBLE", wall_s=time.perf_counter() - t0)
    obj = set_objective(model, inst, opts, v, jobs_in_model)
    _add_hints(model, opts, v, subset, hint)

    solver = cp_model.CpSolver()
    prm = solver.parameters
    for name, value in stop.cpsat_parameters(seconds, workers).items():
        setattr(prm, name, value)
    prm.relative_gap_limit = 1e-6
    prm.symmetry_level = 0
    prm.cp_model_probing_level = 0 if len(subset) > 20000 else 1
    prm.max_presolve_iterations = 2
    prm.log_search_progress = False
    status = solver.solve(model)
    name = solver.status_name(status)
    res = CpsatResult(name, variables=len(v.x) + len(v.n), wall_s=time.perf_counter() - t0)
    if status in (cp_model.OPTIMAL, cp_model.FEASIBLE):
        for o in subset.tolist():
            if solver.boolean_value(v.x[o]):
                r = int(solver.value(v.n[o])) if o in v.n else int(opts.lo[o])
                res.choice[int(opts.job[o])] = (o, r)
        res.objective = solver.objective_value / obj.scale + obj.const
        res.bound = solver.best_objective_bound / obj.scale + obj.slack + obj.const
        res.slack = obj.slack
    return res


def _add_hints(model: cp_model.CpModel, opts: Options, v: Variables, subset: np.ndarray,
               hint: dict[int, tuple[int, int]]) -> None:
    """Each option's literal (and count) hinted at `hint`, written in one pass: what `model.add_hint` per
    variable writes, which took a fifth of a neighbourhood step's model build (medium family)."""
    idx: list[int] = []
    vals: list[int] = []
    for o, j in zip(subset.tolist(), opts.job[subset].tolist()):
        h = hint.get(j)
        chosen = h is not None and h[0] == o
        idx.append(v.x[o].index)
        vals.append(int(chosen))
        n = v.n.get(o)
        if n is not None:
            idx.append(n.index)
            vals.append(int(h[1]) if chosen else 0)
    proto = model.proto
    proto.solution_hint.vars.extend(idx)
    proto.solution_hint.values.extend(vals)
