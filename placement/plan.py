"""`plan(request) -> response`: the engine's one entry point, a pure function of the request.

Stages, each leaving a valid plan in hand before the next starts, so a deadline never
lands with nothing to show:
  compile -> options -> greedy (valid plan #1) -> bound + prices (Lagrangian; LP where it
  fits) -> price-guided greedy -> CP-SAT at pool level, warm-started from the best plan so
  far -> node packing with repair -> the canonical scorer picks the best plan -> reasons.
The response time is the time limit plus a fixed-size tail (packing, scoring, reasons)
that is reserved before CP-SAT starts.
"""

from __future__ import annotations

import time

import numpy as np

from models.request import PlanRequest
from models.response import Assignment, Breakdown, PlanResponse, SolverStats
from placement.bound import Bound, lagrangian_bound, lp_bound
from placement.candidates import Options, build_options
from placement.cpsat import solve_pool_model
from placement.greedy import _place_best, greedy, grow_all, option_gains
from placement.instance import Instance, compile_instance
from placement.packing import Packing
from placement.reasons import infeasible_reasons, unplaced_reasons
from placement.score import score

OPTIMAL_GAP = 1e-6
LP_MAX_OPTIONS = 60_000          # above this, the Lagrangian bound stands in for the LP
CPSAT_FULL_MAX_OPTIONS = 40_000  # above this, CP-SAT sees a restricted option set


def plan(req: PlanRequest) -> PlanResponse:
    """The best plan found within `policy.time_limit_s`, with a proven bound and its gap."""
    return _plan(req, use_cpsat=True)


def greedy_plan(req: PlanRequest) -> PlanResponse:
    """The greedy planner alone (with the cheap bound): the baseline and the fallback."""
    return _plan(req, use_cpsat=False)


def _plan(req: PlanRequest, use_cpsat: bool) -> PlanResponse:
    t0 = time.perf_counter()
    limit = req.policy.time_limit_s
    deadline = t0 + limit
    phases: dict[str, float] = {}

    def lap(name: str, since: float) -> float:
        now = time.perf_counter()
        phases[name] = round(phases.get(name, 0.0) + now - since, 4)
        return now

    inst = compile_instance(req)
    opts = build_options(inst)
    t = lap("compile", t0)

    if any(i.protected and i.index in opts.no_option_reason for i in inst.jobs):
        return _infeasible(inst, opts, t0, phases)

    candidates: list[tuple[str, Packing]] = []
    pk0 = greedy(inst, opts)
    candidates.append(("greedy", pk0))
    t = lap("greedy", t)
    if not _protected_ok(inst, pk0):
        pk_fix = _rescue_protected(inst, opts, deadline)
        if pk_fix is None:
            return _infeasible(inst, opts, t0, phases)
        candidates.append(("cpsat", pk_fix))
    best_name, best_pk, best_score = _best(inst, candidates)

    # bound and prices: the Lagrangian always (cheap), the LP where it fits
    lag_s = min(0.5, max(0.02, 0.05 * limit))
    bound = lagrangian_bound(inst, opts, target=best_score.objective, seconds=lag_s)
    t = lap("bound", t)
    remaining = deadline - time.perf_counter()
    if len(opts) <= LP_MAX_OPTIONS and remaining > 0.3 * limit:
        lp = lp_bound(inst, opts, time_limit_s=min(0.35 * limit, remaining - 0.1))
        if lp is not None:
            if lp.infeasible:
                return _infeasible(inst, opts, t0, phases)
            bound = Bound(min(bound.value, lp.value), "lp" if lp.value <= bound.value else bound.method, lp.prices)
        t = lap("lp", t)
    if np.any(bound.prices > 0):
        pk1 = greedy(inst, opts, bound.prices)
        if _protected_ok(inst, pk1):
            candidates.append(("greedy", pk1))
        t = lap("greedy_priced", t)
    best_name, best_pk, best_score = _best(inst, candidates)

    cp_status = None
    cp_vars = 0
    engine = best_name
    if use_cpsat:
        reserve = 0.03 + 4e-5 * len(inst.jobs) + 2e-6 * len(opts)
        seconds = deadline - time.perf_counter() - reserve
        if seconds > 0.02 or req.policy.deterministic:
            subset = _cpsat_subset(inst, opts, best_pk, bound.prices)
            hint = {j: (o, sum(best_pk.nodes[j].values())) for j, o in best_pk.choice.items()}
            res = solve_pool_model(inst, opts, subset, hint, max(seconds, 0.02), req.policy.deterministic)
            cp_status, cp_vars = res.status, res.variables
            t = lap("cpsat", t)
            if res.choice or res.status in ("OPTIMAL", "FEASIBLE"):
                pk2 = realize(inst, opts, res.choice)
                if _protected_ok(inst, pk2):
                    candidates.append(("cpsat", pk2))
                t = lap("pack", t)
            if res.status == "OPTIMAL" and len(subset) == len(opts) and res.bound is not None:
                if res.bound < bound.value:
                    bound = Bound(res.bound, "cpsat", bound.prices)
        best_name, best_pk, best_score = _best(inst, candidates)
        engine = best_name
        if cp_status not in ("OPTIMAL", "FEASIBLE") and engine != "cpsat":
            engine = "greedy"

    placed = best_pk.placed_map()
    unplaced = unplaced_reasons(inst, opts, best_pk)
    t = lap("reasons", t)
    obj = best_score.objective
    ub = max(bound.value, obj)   # the bound is proven >= every valid plan; guard float noise
    gap = (ub - obj) / max(abs(ub), 1e-9)
    if gap <= OPTIMAL_GAP:
        status = "optimal"
    elif use_cpsat and cp_status not in ("OPTIMAL", "FEASIBLE"):
        status = "fallback"
    else:
        status = "feasible"
    assignments = [Assignment(job=inst.jobs[j].job.id, cluster=c, accelerator=a, nodes=n)
                   for j, (c, a, n) in sorted(placed.items())]
    return PlanResponse(
        status=status, objective=obj, bound=ub, gap=gap,
        breakdown=Breakdown(value=best_score.value, disruption=best_score.disruption, spread=best_score.spread),
        solve_s=round(time.perf_counter() - t0, 4), assignments=assignments, actions=best_score.actions,
        unplaced=unplaced,
        stats=SolverStats(engine=engine, cpsat_status=cp_status, bound_method=bound.method, jobs=len(inst.jobs),
                          options=len(opts), cpsat_variables=cp_vars, phases_s=phases),
    )


def _best(inst: Instance, candidates: list[tuple[str, Packing]]):
    scored = [(name, pk, score(inst, pk.placed_map())) for name, pk in candidates]
    return max(scored, key=lambda t: t[2].objective)


def _protected_ok(inst: Instance, pk: Packing) -> bool:
    return all(i.index in pk.choice for i in inst.jobs if i.protected)


def realize(inst: Instance, opts: Options, choice: dict[int, tuple[int, int]]) -> Packing:
    """Pack a pool-level solution onto nodes: keeps first (their nodes are fixed), then changes
    largest replicas first; what does not pack is repaired greedily, then leftovers are filled."""
    pk = Packing(inst, opts)
    keeps = [j for j, (o, _) in choice.items() if opts.keep[o]]
    changes = [(j, o, r) for j, (o, r) in choice.items() if not opts.keep[o]]
    for j in sorted(keeps, key=lambda j: (not inst.jobs[j].protected, j)):
        pk.try_keep(j)
    changes.sort(key=lambda t: (not inst.jobs[t[0]].protected, -int(opts.dpr[t[1]]), -t[2] * int(opts.dpr[t[1]]), t[0]))
    failed = []
    for j, o, r in changes:
        if not pk.try_option(o, target=r, use_soft=False):
            failed.append(j)
    gain, _ = option_gains(inst, opts, None)
    for j in failed:
        _place_best(pk, j, gain, require_positive=False)
    rest = [i.index for i in inst.jobs if i.index not in pk.choice]
    dens = {j: max((gain[o] / max(opts.hi[o] * opts.dpr[o], 1) for o in opts.by_job[j]), default=-1.0) for j in rest}
    for j in sorted(rest, key=lambda j: (-dens[j], j)):
        _place_best(pk, j, gain, require_positive=False)
    grow_all(pk)
    return pk


def _cpsat_subset(inst: Instance, opts: Options, pk: Packing, prices: np.ndarray) -> np.ndarray:
    """All options when the model is small; otherwise each job's keep option, its option in the
    current best plan, and its best few by reduced gain."""
    if len(opts) <= CPSAT_FULL_MAX_OPTIONS:
        return np.arange(len(opts))
    gain, _ = option_gains(inst, opts, prices)
    per_job = max(2, int(CPSAT_FULL_MAX_OPTIONS / max(1, len(inst.jobs))))
    keep = set(np.flatnonzero(opts.keep).tolist()) | set(pk.choice.values())
    for j in range(len(inst.jobs)):
        olist = opts.by_job[j]
        if len(olist) > per_job:
            keep.update(olist[np.argsort(-gain[olist], kind="stable")[:per_job]].tolist())
        else:
            keep.update(olist.tolist())
    return np.array(sorted(keep), dtype=np.int64)


def _rescue_protected(inst: Instance, opts: Options, deadline: float) -> Packing | None:
    """The greedy could not keep every protected job placed: ask CP-SAT for protected jobs alone."""
    prot = [i.index for i in inst.jobs if i.protected]
    subset = np.concatenate([opts.by_job[j] for j in prot]) if prot else np.zeros(0, dtype=np.int64)
    seconds = max(0.1, deadline - time.perf_counter())
    res = solve_pool_model(inst, opts, subset, {}, seconds, inst.request.policy.deterministic)
    if res.status not in ("OPTIMAL", "FEASIBLE"):
        return None
    pk = realize(inst, opts, res.choice)
    return pk if _protected_ok(inst, pk) else None


def _infeasible(inst: Instance, opts: Options, t0: float, phases: dict[str, float]) -> PlanResponse:
    return PlanResponse(status="infeasible", objective=None, bound=None, gap=None, breakdown=None,
                        solve_s=round(time.perf_counter() - t0, 4), assignments=[], actions=[],
                        unplaced=infeasible_reasons(inst, opts),
                        stats=SolverStats(engine="none", bound_method="none", jobs=len(inst.jobs), options=len(opts),
                                          phases_s=phases))
