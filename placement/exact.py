"""The exact node-level model of contract v1 as a MILP (PuLP, solved by HiGHS): the truth the
engine's pool-level bounds relax.

Why: the pool-level bounds (LP, knapsacks, CP-SAT's) ignore that replicas land on nodes; where a
fleet is lumpy (8-device gangs on nodes that running jobs fragment) no node-level plan may come
within a point of them. This model places replicas on nodes, so its dual bound, even when the
solver stops on its time limit, is an upper bound over every valid plan at least as tight as the
pool-level ones it contains. It is a proof for the benchmark (`bench/plan_scale.py --family
--exact S`), a cross-check for the tests on small requests, and on the planning path only for a
tiny request the pool-level bounds leave open (`placement.plan`, at most
`EngineParams.exact_max_node_vars` option-node pairs: a tenth of a second to a second there,
where the search would run the whole limit): at medium size it takes minutes.

Variables: per option `x` (chosen); per change option and up node `y` (replicas there), `u`
(the node is used) and `m` (n_min of the spread term, ceil(r / per) by maximisation). A keep
option holds its current node map exactly.

    .venv/bin/python -m placement.exact REQUEST.json [--time-limit 60] [--no-spread] [--whole-node-cuts]
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from dataclasses import dataclass, field

import numpy as np
import pulp

from placement.candidates import Options, build_options
from placement.instance import Instance, compile_instance


@dataclass
class ExactResult:
    status: str                      # HiGHS' model status (Optimal, Time limit reached, Infeasible, ...)
    bound: float | None              # upper bound on the canonical objective of every valid plan
    objective: float | None          # the model's value of its best plan (None: none found)
    placed: dict[int, tuple[int, dict[int, int]]] = field(default_factory=dict)   # job -> (option, {node: replicas})
    variables: int = 0
    wall_s: float = 0.0


def _shared_rows(prob: pulp.LpProblem, inst: Instance, opts: Options, x: list, capacity: list[tuple[list, int]],
                 quota_terms: dict, mig_terms: list) -> None:
    """The rows the node-level and the whole-node-cut models share, in one order, so they cannot drift:
    one option per job at most (exactly one for a protected job), each capacity row (a node's or a
    pool's devices), each (tenant, tier) quota, the MIG memory budget."""
    for j in inst.jobs:
        olist = opts.by_job[j.index]
        if len(olist):
            row = pulp.lpSum(x[o] for o in olist)
            prob += (row == 1) if j.protected else (row <= 1)
    for terms, cap in capacity:
        prob += pulp.lpSum(terms) <= cap
    for key, terms in quota_terms.items():
        prob += pulp.lpSum(terms) <= int(inst.quotas[key])
    if inst.budget_gb is not None and mig_terms:
        prob += pulp.lpSum(mig_terms) <= float(inst.budget_gb)


def node_milp(inst: Instance, opts: Options | None = None, seconds: float = 60.0, spread: bool = True,
              threads: int = 1, tolerance: float = 1e-6, min_seconds: float = 1.0,
              max_nodes: int | None = None, start: dict[int, tuple[int, dict[int, int]]] | None = None,
              feasibility_jump: bool = True) -> ExactResult:
    """Solve the node-level model within `seconds` (at least `min_seconds`); its bound is valid whether
    or not it finished. Without `spread` the (never negative) spread term is dropped: a looser bound, a
    smaller model. `tolerance` is the relative hair added to HiGHS' dual bound (its feasibility
    tolerances); `max_nodes` caps the branch-and-bound nodes, a limit that depends on the request alone
    (deterministic plans: `seconds` is then a safety net). `start` (job -> (option, {node: replicas}), a
    valid plan) is handed to HiGHS as its first solution, so its search only has to beat or prove it;
    without `feasibility_jump` HiGHS skips that first-solution heuristic (on the engine's tiny requests,
    which come with a start, it was a third of the solve)."""
    t0 = time.perf_counter()
    opts = build_options(inst) if opts is None else opts
    pc = np.array([j.preempt_cost for j in inst.jobs])
    const = -float(pc.sum())
    if any(j.protected and len(opts.by_job[j.index]) == 0 for j in inst.jobs):
        return ExactResult("Infeasible", None, None, wall_s=time.perf_counter() - t0)
    prob = pulp.LpProblem("meridian_node_level", pulp.LpMaximize)
    x = [_var(prob, f"x{o}", 0, 1, pulp.LpBinary) for o in range(len(opts))]
    y: dict[int, dict[int, pulp.LpVariable]] = {}
    side: dict[str, dict] = {"z": {}, "u": {}, "m": {}}   # the variables that follow from x and y (`_set_start`)
    node_terms: dict[int, list] = {}
    objective = []
    quota_terms: dict[tuple[str, str], list] = {}
    mig_terms = []
    for o in range(len(opts)):
        info = inst.jobs[int(opts.job[o])]
        d = info.dpr
        pool = inst.pools[int(opts.pool[o])]
        if opts.keep[o]:
            r0 = info.r0
            for n, k in info.cur_nodes.items():
                node_terms.setdefault(n, []).append((d * k) * x[o])
            fixed_spread = 0.0
            if spread:
                per = pool.dmax // d
                fixed_spread = _spread_coef(inst, info, pool.accelerator) * (len(info.cur_nodes) - -(-r0 // per))
            objective.append((float(opts.coef[o]) * r0 + pc[info.index] - fixed_spread) * x[o])
            devices = d * r0 * x[o]
        else:
            nodes = [n for n in pool.nodes if inst.node_devices[n] >= d]
            y[o] = {n: _var(prob, f"y{o}_{n}", 0, int(min(opts.hi[o], inst.node_devices[n] // d)), pulp.LpInteger)
                    for n in nodes}
            count = pulp.lpSum(y[o].values())
            prob += count >= int(opts.lo[o]) * x[o]
            prob += count <= int(opts.hi[o]) * x[o]
            if info.allowed is not None:   # contract v1.1: the count is one of the listed ones
                counts = [int(a) for a in info.allowed if opts.lo[o] <= a <= opts.hi[o]]
                z = [_var(prob, f"z{o}_{a}", 0, 1, pulp.LpBinary) for a in counts]
                side["z"][o] = list(zip(counts, z))
                prob += pulp.lpSum(z) == x[o]
                prob += count == pulp.lpSum(a * v for a, v in zip(counts, z))
            for n, v in y[o].items():
                node_terms.setdefault(n, []).append(d * v)
            objective.append(float(opts.coef[o]) * count + float(pc[info.index]) * x[o])
            if spread:
                per = pool.dmax // d
                s = _spread_coef(inst, info, pool.accelerator)
                if s > 0 and per > 0:
                    u = {n: _var(prob, f"u{o}_{n}", 0, 1, pulp.LpBinary) for n in y[o]}
                    side["u"][o] = u
                    for n, v in y[o].items():
                        prob += v <= int(inst.node_devices[n] // d) * u[n]
                    m = _var(prob, f"m{o}", 0, int(-(-int(opts.hi[o]) // per)), pulp.LpInteger)
                    side["m"][o] = (m, per)
                    prob += per * m <= count + (per - 1) * x[o]
                    objective.append(-s * (pulp.lpSum(u.values()) - m))
            devices = d * count
        if info.key in inst.quotas:
            quota_terms.setdefault(info.key, []).append(devices)
        if opts.mig_gb[o] > 0:
            mig_terms.append(float(opts.mig_gb[o]) * x[o])
    _shared_rows(prob, inst, opts, x, [(terms, int(inst.node_devices[n])) for n, terms in node_terms.items()],
                 quota_terms, mig_terms)
    prob += pulp.lpSum(objective) + const
    n_vars = len(prob.variables())
    extra = {} if max_nodes is None else {"mip_max_nodes": int(max_nodes)}
    if not feasibility_jump:
        extra["mip_heuristic_run_feasibility_jump"] = False
    warm = start is not None and _set_start(prob, x, y, side, start)
    h = _solve(prob, threads, extra, warm,
               lambda: max(min_seconds, float(seconds) - (time.perf_counter() - t0)))
    status = h.modelStatusToString(h.getModelStatus())
    info_h = h.getInfo()
    if status == "Infeasible":
        return ExactResult(status, None, None, variables=n_vars, wall_s=time.perf_counter() - t0)
    # PuLP hands HiGHS the negated objective without its constant: undo both, plus a hair of tolerance
    dual = -float(info_h.mip_dual_bound) + float(prob.objective.constant)
    bound = dual + tolerance * max(1.0, abs(dual)) if np.isfinite(dual) else None
    res = ExactResult(status, bound, None, variables=n_vars, wall_s=time.perf_counter() - t0)
    if info_h.primal_solution_status >= 1 and np.isfinite(info_h.objective_function_value):
        res.objective = float(pulp.value(prob.objective))
        for o in range(len(opts)):
            if (x[o].value() or 0) > 0.5:
                j = int(opts.job[o])
                if opts.keep[o]:
                    res.placed[j] = (o, dict(inst.jobs[j].cur_nodes))
                else:
                    res.placed[j] = (o, {n: round(v.value()) for n, v in y[o].items() if (v.value() or 0) > 0.5})
    res.wall_s = time.perf_counter() - t0
    return res


def whole_node_bound(inst: Instance, opts: Options | None = None, seconds: float = 60.0,
                     threads: int = 1) -> ExactResult:
    """The pool-level integer model (the checker's `--mip`: replicas pooled per (cluster, accelerator),
    spread dropped) with one cut per pool: the replicas that need a whole node (devices per replica
    equal to the pool's largest node) plus the largest nodes a chosen keep option sits on are at most
    the pool's largest nodes. Why: a keep holds its node map exactly, so the node it sits on can take
    no whole-node replica; the pooled model ignores that and, on fleets where small running jobs sit
    on every node, offers a gang nodes it can never have (medium family seed 29: a rigid gang of 56
    devices in a pool of twelve 8-device nodes, eight of them holding jobs worth keeping; the pooled
    bound 1.5 % above every plan found, 0.7 % with the cut). Valid whether or not it finished (its
    dual bound); never on the planning path."""
    t0 = time.perf_counter()
    opts = build_options(inst) if opts is None else opts
    pc = np.array([j.preempt_cost for j in inst.jobs])
    if any(j.protected and len(opts.by_job[j.index]) == 0 for j in inst.jobs):
        return ExactResult("Infeasible", None, None, wall_s=time.perf_counter() - t0)
    prob = pulp.LpProblem("meridian_whole_node_cuts", pulp.LpMaximize)
    x = [_var(prob, f"x{o}", 0, 1, pulp.LpBinary) for o in range(len(opts))]
    objective, pool_terms, quota_terms, mig_terms = [], {}, {}, []
    whole: dict[int, list] = {}          # pool -> replicas that take a whole largest node
    keeps_on: dict[int, list[int]] = {}  # largest node -> keep options sitting on it
    for o in range(len(opts)):
        info = inst.jobs[int(opts.job[o])]
        pool = inst.pools[int(opts.pool[o])]
        if opts.keep[o]:
            objective.append((float(opts.coef[o]) * info.r0 + pc[info.index]) * x[o])
            devices = info.dpr * info.r0 * x[o]
            for n in info.cur_nodes:
                if int(inst.node_devices[n]) == pool.dmax:
                    keeps_on.setdefault(n, []).append(o)
        else:
            n_o = _var(prob, f"n{o}", 0, int(opts.hi[o]), pulp.LpInteger)
            prob += n_o >= int(opts.lo[o]) * x[o]
            prob += n_o <= int(opts.hi[o]) * x[o]
            objective.append(float(opts.coef[o]) * n_o + float(pc[info.index]) * x[o])
            devices = info.dpr * n_o
            if info.dpr == pool.dmax:
                whole.setdefault(pool.index, []).append(n_o)
        pool_terms.setdefault(pool.index, []).append(devices)
        if info.key in inst.quotas:
            quota_terms.setdefault(info.key, []).append(devices)
        if opts.mig_gb[o] > 0:
            mig_terms.append(float(opts.mig_gb[o]) * x[o])
    _shared_rows(prob, inst, opts, x, [(terms, int(inst.pools[p].capacity)) for p, terms in pool_terms.items()],
                 quota_terms, mig_terms)
    for p, reps in whole.items():
        big = [n for n in inst.pools[p].nodes if int(inst.node_devices[n]) == inst.pools[p].dmax]
        held = []
        for n in big:
            if n in keeps_on:    # z_n >= every keep on n: the node holds a kept job
                z = _var(prob, f"z{n}", 0, 1, pulp.LpBinary)
                for o in keeps_on[n]:
                    prob += z >= x[o]
                held.append(z)
        prob += pulp.lpSum(reps) + pulp.lpSum(held) <= len(big)
    prob += pulp.lpSum(objective) - float(pc.sum())
    n_vars = len(prob.variables())
    prob.solve(pulp.HiGHS(msg=False, timeLimit=max(1.0, float(seconds) - (time.perf_counter() - t0)),
                          threads=threads, gapRel=1e-7))
    h = prob.solverModel
    if h.modelStatusToString(h.getModelStatus()) == "Not Set":   # see node_milp
        prob.solve(pulp.HiGHS(msg=False, timeLimit=max(1.0, float(seconds) - (time.perf_counter() - t0)),
                              gapRel=1e-7))
        h = prob.solverModel
    status = h.modelStatusToString(h.getModelStatus())
    if status == "Infeasible":
        return ExactResult(status, None, None, variables=n_vars, wall_s=time.perf_counter() - t0)
    dual = -float(h.getInfo().mip_dual_bound) + float(prob.objective.constant)
    bound = dual + 1e-6 * max(1.0, abs(dual)) if np.isfinite(dual) else None
    obj = float(pulp.value(prob.objective)) if h.getInfo().primal_solution_status >= 1 else None
    return ExactResult(status, bound, obj, variables=n_vars, wall_s=time.perf_counter() - t0)


def _set_start(prob: pulp.LpProblem, x: list, y: dict, side: dict, start: dict[int, tuple[int, dict[int, int]]]
               ) -> bool:
    """The plan `start`'s value of every variable of `prob` as PuLP's initial values: x and y from the plan,
    and from them the listed count's binary, each node's spread flag and the fewest nodes (`side`: per
    option, its (count, binary) pairs under "z", its {node: flag} under "u", its (variable, replicas per
    node) under "m"). False, and the model solved without it, where the plan names a node the model has no
    variable for (a node too small for the job's replicas: no valid plan does)."""
    if any(n not in y[o] for o, nodes in start.values() if o in y for n in nodes):
        return False
    for v in prob.variables():
        v.setInitialValue(0)
    for o, nodes in start.values():
        x[o].setInitialValue(1)
        if o not in y:
            continue
        count = sum(nodes.values())
        for n, k in nodes.items():
            y[o][n].setInitialValue(k)
        for a, z in side.get("z", {}).get(o, ()):
            z.setInitialValue(1 if a == count else 0)
        for n, u in side.get("u", {}).get(o, {}).items():
            u.setInitialValue(1 if nodes.get(n, 0) > 0 else 0)
        if o in side.get("m", {}):
            m, per = side["m"][o]
            m.setInitialValue(-(-count // per))
    return True


class _HiGHS(pulp.HiGHS):
    """PuLP's HiGHS interface with two additions: the variables' initial values handed to HiGHS as its first
    solution where `start` (PuLP's own `warmStart` reaches only the HiGHS command line), and HiGHS' "solution
    limit" status (its node limit, reached with a solution in hand) read as a time limit is: PuLP's status
    table lacks it and raised a KeyError."""

    def __init__(self, start: bool = False, **kwargs) -> None:
        super().__init__(**kwargs)
        self.start = start

    def callSolver(self, lp: pulp.LpProblem) -> None:
        import highspy

        if self.start:
            h = lp.solverModel
            values = [0.0] * h.getNumCol()
            for v in lp.variables():
                values[v.index] = float(v.varValue or 0.0)
            sol = highspy.HighsSolution()
            sol.col_value = values
            sol.value_valid = True
            h.setSolution(sol)
        super().callSolver(lp)

    def findSolutionValues(self, lp: pulp.LpProblem) -> tuple[int, int]:
        import highspy

        h = lp.solverModel
        if h.getModelStatus() != highspy.HighsModelStatus.kSolutionLimit:
            return super().findSolutionValues(lp)
        if h.getInfo().primal_solution_status < 1:
            return pulp.LpStatusNotSolved, pulp.LpSolutionNoSolutionFound
        col_values = list(h.getSolution().col_value)
        for v in lp.variables():
            v.varValue = col_values[v.index]
        return pulp.LpStatusOptimal, pulp.LpSolutionIntegerFeasible

def _solve(prob: pulp.LpProblem, threads: int, extra: dict, warm: bool, seconds) -> object:
    """`prob` solved by HiGHS through PuLP (`seconds()`: the time left; `warm`: the variables' initial
    values are a solution to start from); its HiGHS instance. Where HiGHS' one thread pool per process was
    sized by an earlier run with other `threads` (placement.bound._run), it is solved again on the pool as
    it is."""
    start = {v.name: v.varValue for v in prob.variables()} if warm else None
    prob.solve(_HiGHS(start=warm, msg=False, timeLimit=seconds(), threads=threads, gapRel=1e-7, **extra))
    h = prob.solverModel
    if h.modelStatusToString(h.getModelStatus()) == "Not Set":
        if warm:   # the failed run wrote its (empty) solution over the start
            for v in prob.variables():
                v.setInitialValue(start[v.name])
        prob.solve(_HiGHS(start=warm, msg=False, timeLimit=seconds(), gapRel=1e-7, **extra))
        h = prob.solverModel
    if warm and not _columns_are_the_solution(prob, h):
        # HiGHS 1.16 hands back the start's columns where its presolve solved the model, beside the objective
        # of the optimum it found: solved again without the start, the columns are the optimum's
        return _solve(prob, threads, extra, False, seconds)
    return h


def _columns_are_the_solution(prob: pulp.LpProblem, h) -> bool:
    """Whether the columns HiGHS returned score the objective it reports (PuLP passes it the negated
    objective without its constant); true where it returned no solution."""
    info = h.getInfo()
    if info.primal_solution_status < 1 or not np.isfinite(info.objective_function_value):
        return True
    reported = -float(info.objective_function_value) + float(prob.objective.constant)
    got = float(pulp.value(prob.objective))
    return abs(got - reported) <= 1e-6 * max(1.0, abs(reported))

def _var(prob: pulp.LpProblem, name: str, lo: int, hi: int, cat: str) -> pulp.LpVariable:
    """A variable of `prob` (PuLP 3.3+ attaches it at creation; older releases on first use)."""
    add = getattr(prob, "add_variable", None)
    return add(name, lo, hi, cat=cat) if add is not None else pulp.LpVariable(name, lo, hi, cat=cat)


def _spread_coef(inst: Instance, info, accel: str) -> float:
    """Spread penalty per node beyond the fewest: spread_penalty * w * dpr * speed (no locality)."""
    return inst.spread_penalty * info.weight * info.dpr * info.job.speed[accel]


def placed_map(inst: Instance, opts: Options, res: ExactResult) -> dict[int, tuple[str, str, dict[str, int]]]:
    """The model's plan in the scorer's form (job -> cluster, accelerator, node names)."""
    out = {}
    for j, (o, nodes) in res.placed.items():
        p = inst.pools[int(opts.pool[o])]
        out[j] = (p.cluster, p.accelerator, {inst.node_names[n]: k for n, k in sorted(nodes.items())})
    return out


def main(argv: list[str] | None = None) -> int:
    from models import parse_request_json
    from placement.score import score

    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("request")
    ap.add_argument("--time-limit", type=float, default=60.0)
    ap.add_argument("--no-spread", action="store_true", help="drop the spread term (a smaller model, looser bound)")
    ap.add_argument("--whole-node-cuts", action="store_true",
                    help="the pool-level integer model with whole-node cuts instead (whole_node_bound: seconds, not hours)")
    a = ap.parse_args(argv)
    with open(a.request, "rb") as f:
        req = parse_request_json(f.read())
    inst = compile_instance(req)
    if a.whole_node_cuts:
        res = whole_node_bound(inst, seconds=a.time_limit)
        print(json.dumps({"status": res.status, "bound": res.bound, "model_objective": res.objective,
                          "variables": res.variables, "wall_s": round(res.wall_s, 2), "method": "whole_node_cuts"}))
        return 0
    res = node_milp(inst, seconds=a.time_limit, spread=not a.no_spread)
    out = {"status": res.status, "bound": res.bound, "model_objective": res.objective, "variables": res.variables,
           "wall_s": round(res.wall_s, 2), "spread": not a.no_spread}
    if res.objective is not None:
        opts = build_options(inst)
        out["objective"] = score(inst, placed_map(inst, opts, res)).objective
    print(json.dumps(out))
    return 0


if __name__ == "__main__":
    sys.exit(main())
