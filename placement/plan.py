"""`plan(request) -> response`: the engine's one entry point, a pure function of the request.

Stages, each leaving a valid plan in hand before the next starts, so a deadline never
lands with nothing to show:
  compile -> options -> greedy (valid plan #1) -> bound: LP (or a restricted LP pricing a
  Lagrangian bound; subgradient steps where no LP fits) -> LP rounding -> CP-SAT: the full
  pool-level model where small, then neighbourhood search (placement.lns) -> node packing
  with repair -> the canonical scorer picks the best plan -> reasons.
The response time is the time limit plus a small tail (packing, scoring, reasons) for which
a reserve measured on this request is set aside before CP-SAT starts.
"""

from __future__ import annotations

import time

import numpy as np

from models.request import PlanRequest
from models.response import Assignment, Breakdown, PlanResponse, SolverStats
from placement import backfill
from placement.bound import Bound, improving_options, lagrangian_bound, lagrangian_value, lp_bound
from placement.candidates import Options, build_options
from placement.cpsat import solve_pool_model
from placement.greedy import greedy
from placement.instance import Instance, compile_instance
from placement.lns import lns
from placement.packing import Packing
from placement.params import DEFAULT, EngineParams
from placement.realize import realize
from placement.reasons import infeasible_reasons, unplaced_reasons
from placement.score import Scored, score
from placement.stop import StoppingCriterion, criterion


def plan(req: PlanRequest, params: EngineParams = DEFAULT) -> PlanResponse:
    """The best plan found within `policy.time_limit_s`, with a proven bound and its gap.

    Precondition: `req` passed `models.validate_request` (`models.parse_request` and
    `parse_request_json` run it on JSON; the replay loop runs it on the requests it builds). The
    engine does not check again: past that door it assumes every name it meets exists and every
    running job fits where it runs, and a request that skipped it may raise anywhere."""
    return _plan(req, use_cpsat=True, params=params)


def greedy_plan(req: PlanRequest, params: EngineParams = DEFAULT) -> PlanResponse:
    """The greedy planner alone, priced by the cheap Lagrangian bound: the baseline to compare
    against and the engine's first plan; no LP, no CP-SAT. Same precondition as `plan`."""
    return _plan(req, use_cpsat=False, params=params)


class _Clock:
    """The run's deadline and the seconds each phase took (reported in `stats.phases_s`)."""

    def __init__(self, limit: float):
        self.t0 = self.last = time.perf_counter()
        self.deadline = self.t0 + limit
        self.phases: dict[str, float] = {}

    def lap(self, name: str) -> float:
        now = time.perf_counter()
        self.phases[name] = round(self.phases.get(name, 0.0) + now - self.last, 4)
        self.last = now
        return self.phases[name]

    def left(self) -> float:
        return self.deadline - time.perf_counter()


def _plan(req: PlanRequest, use_cpsat: bool, params: EngineParams) -> PlanResponse:
    P = params
    limit = req.policy.time_limit_s
    clock = _Clock(limit)
    stop = criterion(req.policy, clock.deadline)
    inst = compile_instance(req)
    opts = build_options(inst)
    if backfill.is_backfill(inst):   # contract v1.1: only what is not pinned is planned (placement/backfill.py)
        opts, pinned = backfill.restrict(inst, opts)
        if not (use_cpsat and backfill.search_worth_it(opts, pinned) and backfill.anything_fits(inst, opts, pinned)):
            return _backfill_greedy(inst, opts, clock, P)
    clock.lap("compile")
    if any(i.protected and i.index in opts.no_option_reason for i in inst.jobs):
        return _infeasible(inst, opts, clock)

    candidates = _Candidates(inst)
    first = greedy(inst, opts)
    realize_s = clock.lap("greedy")
    if _protected_ok(inst, first):
        candidates.add("greedy", first)
    else:   # the greedy plan broke constraint 5: never a candidate
        rescued = _rescue_protected(inst, opts, stop, P)
        if rescued is None:
            return _infeasible(inst, opts, clock)
        candidates.add("cpsat", rescued)
        clock.lap("rescue")
    clock.lap("score")

    # a valid bound at once (prices zero), then the LP where it fits, else subgradient steps
    bound = Bound(lagrangian_value(inst, opts, np.zeros(len(inst.pools)), np.zeros(len(inst.quotas)), 0.0)[0],
                  "lagrangian", np.zeros(len(inst.pools)))
    lp = None
    if use_cpsat and stop.may_start(P.lp_start_share * limit):
        # the LP's share leaves room for rounding it, scoring and the reasons (about 3 greedy passes)
        lp_s = stop.budget(P.lp_det_factor * limit,
                           min(P.lp_share * limit, clock.left() - P.lp_tail_realizes * realize_s - P.min_stage_s))
        lp = _lp_stage(inst, opts, candidates.best[1], lp_s, P) if lp_s > P.min_stage_s else None
        clock.lap("lp")
        if lp is not None and lp.infeasible:
            return _infeasible(inst, opts, clock)
    if lp is not None:
        if lp.value < bound.value:
            bound = lp
        else:
            bound = Bound(bound.value, bound.method, lp.prices, x=lp.x, n=lp.n)
        ts = time.perf_counter()
        pk = realize(inst, opts, lp_rounding(inst, opts, lp))
        realize_s = time.perf_counter() - ts
        candidates.add("lp_rounding", pk)
        clock.lap("lp_rounding")
    elif stop.may_start(P.lp_tail_realizes * realize_s + P.min_stage_s):
        best_obj = candidates.best[2].objective
        sub = lagrangian_bound(inst, opts, target=best_obj,
                               max_iter=int(stop.budget(P.subgradient_det_iters, P.subgradient_iters)),
                               seconds=stop.budget(1e9, min(P.subgradient_max_s,
                                                            max(P.subgradient_min_s, P.subgradient_share * limit))))
        if sub.value < bound.value:
            bound = Bound(sub.value, "lagrangian", sub.prices)
        clock.lap("bound")
        if np.any(sub.prices > 0) and stop.may_start(P.lp_tail_realizes * realize_s + P.min_stage_s):
            pk = greedy(inst, opts, sub.prices)
            candidates.add("greedy", pk)
            clock.lap("greedy_priced")
    best_name, best_pk, best_score = candidates.best

    cp_status = None
    cp_vars = 0
    if use_cpsat:
        # what must stay for packing, scoring and the reasons once the search stops
        until = clock.deadline - (P.tail_s + P.tail_realizes * realize_s + P.tail_per_job_s * len(inst.jobs))
        if len(opts) <= P.cpsat_full_max_options and stop.may_start(P.min_stage_s, until=until):
            hint = {j: (o, sum(best_pk.nodes[j].values())) for j, o in best_pk.choice.items()}
            budget = stop.budget(P.cpsat_det_share * limit,
                                 max(P.min_stage_s, stop.left(until=until) * P.cpsat_share_of_left))
            res = solve_pool_model(inst, opts, np.arange(len(opts)), hint, budget, stop)
            cp_status, cp_vars = res.status, res.variables
            if res.status in ("OPTIMAL", "FEASIBLE"):
                pk = realize(inst, opts, res.choice)
                candidates.add("cpsat", pk)
            if res.status == "OPTIMAL" and res.bound is not None and res.bound < bound.value:
                bound = Bound(res.bound, "cpsat", bound.prices, x=bound.x, n=bound.n)
            best_name, best_pk, best_score = candidates.best
            clock.lap("cpsat")
        if bound.value - best_score.objective > P.optimal_gap * max(abs(bound.value), 1e-9) and \
                stop.may_start(P.min_stage_s, until=until):
            pk, lstats = lns(inst, opts, best_pk, until, bound.x, stop, P)
            if lstats["improved"]:
                best_name, best_pk, best_score = "cpsat", pk, score(inst, pk.placed_map())
            if lstats["steps"]:
                cp_status = cp_status or "FEASIBLE"
            clock.phases["lns_steps"] = lstats["steps"]
            clock.phases["lns_improved"] = lstats["improved"]
            clock.lap("lns")

    unplaced = unplaced_reasons(inst, opts, best_pk)
    obj = best_score.objective
    ub = max(bound.value, obj)   # the bound is proven >= every valid plan; this only guards float noise
    gap = (ub - obj) / max(abs(ub), 1e-9)
    if gap <= P.optimal_gap:
        status = "optimal"
    elif use_cpsat and cp_status is None and best_name != "cpsat":
        status = "fallback"   # the optimizer had nothing by the deadline: a heuristic plan
    else:
        status = "feasible"
    assignments = [Assignment.model_construct(job=inst.jobs[j].job.id, cluster=c, accelerator=a, nodes=n)
                   for j, (c, a, n) in sorted(best_pk.placed_map().items())]
    clock.lap("response")
    # every part was built by the engine from validated input: construct without re-validating
    return PlanResponse.model_construct(
        plan_id=None, status=status, objective=obj, bound=ub, gap=gap,
        breakdown=Breakdown(value=best_score.value, disruption=best_score.disruption, spread=best_score.spread),
        solve_s=round(time.perf_counter() - clock.t0, 4), assignments=assignments, actions=best_score.actions,
        unplaced=unplaced,
        stats=SolverStats(engine=best_name, cpsat_status=cp_status, bound_method=bound.method, jobs=len(inst.jobs),
                          options=len(opts), cpsat_variables=cp_vars, phases_s=clock.phases),
    )


def _lp_stage(inst: Instance, opts: Options, pk: Packing, seconds: float, P: EngineParams) -> Bound | None:
    """The LP relaxation over all options where it is small; else over each job's best few
    options plus one round of column generation, whose duals then price every option in a
    Lagrangian bound (valid whatever the prices)."""
    if len(opts) <= P.lp_full_max_options:
        return lp_bound(inst, opts, time_limit_s=seconds)
    t0 = time.perf_counter()
    per_job = int(np.clip(P.lp_target_columns // max(1, len(inst.jobs)), 2, P.lp_options_per_job))
    top = _top_options(inst, opts, pk, per_job)
    lp = lp_bound(inst, opts.restrict(top), time_limit_s=seconds)
    if lp is None or lp.infeasible:
        return None
    spent = time.perf_counter() - t0
    if spent < P.colgen_share * seconds:
        extra = improving_options(inst, opts, lp, top)
        if len(extra):
            top2 = np.union1d(top, extra)
            lp2 = lp_bound(inst, opts.restrict(top2), time_limit_s=seconds - spent)
            if lp2 is not None and not lp2.infeasible:
                top, lp = top2, lp2
    val = lagrangian_value(inst, opts, lp.prices, lp.quota_prices, lp.budget_price)[0]
    x = np.zeros(len(opts))
    n = np.zeros(len(opts))
    x[top], n[top] = lp.x, lp.n
    return Bound(val, "lagrangian", lp.prices, x=x, n=n, quota_prices=lp.quota_prices, budget_price=lp.budget_price)


class _Candidates:
    """The valid plans found so far, each scored once by the canonical scorer; `best` is the top."""

    def __init__(self, inst: Instance):
        self.inst = inst
        self.best: tuple[str, Packing, Scored] | None = None

    def add(self, name: str, pk: Packing) -> None:
        if not _protected_ok(self.inst, pk):
            return
        sc = score(self.inst, pk.placed_map())
        if self.best is None or sc.objective > self.best[2].objective:
            self.best = (name, pk, sc)


def _protected_ok(inst: Instance, pk: Packing) -> bool:
    return all(i.index in pk.choice for i in inst.jobs if i.protected)


def _top_options(inst: Instance, opts: Options, pk: Packing, k: int) -> np.ndarray:
    """Each job's keep option, its option in the plan so far and its k best by value per replica:
    the columns of the restricted LP at sizes where the full LP does not fit."""
    chosen = np.zeros(len(opts), dtype=bool)
    chosen[opts.keep] = True
    chosen[list(pk.choice.values())] = True
    for olist in opts.by_job:
        if len(olist) > k:
            chosen[olist[np.argsort(-opts.coef[olist], kind="stable")[:k]]] = True
        else:
            chosen[olist] = True
    return np.flatnonzero(chosen)


def lp_rounding(inst: Instance, opts: Options, lp: Bound) -> dict[int, tuple[int, int]]:
    """Each job takes the option the LP leans on most (at least half), with the LP's replicas
    per unit of choice; the LP is nearly integral here (fractional only where constraints bind)."""
    out: dict[int, tuple[int, int]] = {}
    x, n = lp.x, lp.n
    for j in range(len(inst.jobs)):
        olist = opts.by_job[j]
        if len(olist) == 0:
            continue
        o = int(olist[int(np.argmax(x[olist]))])
        if x[o] < 0.5 - 1e-9:
            continue
        r = int(np.floor(n[o] / x[o] + 1e-6))
        out[j] = (o, max(int(opts.lo[o]), min(int(opts.hi[o]), r)))
    return out


def _rescue_protected(inst: Instance, opts: Options, stop: StoppingCriterion, P: EngineParams) -> Packing | None:
    """The greedy could not keep every protected job placed: ask CP-SAT for protected jobs alone."""
    prot = [i.index for i in inst.jobs if i.protected]
    subset = np.concatenate([opts.by_job[j] for j in prot]) if prot else np.zeros(0, dtype=np.int64)
    seconds = stop.budget(P.rescue_det_share * inst.request.policy.time_limit_s, max(P.rescue_min_s, stop.left()))
    res = solve_pool_model(inst, opts, subset, {}, seconds, stop)
    if res.status not in ("OPTIMAL", "FEASIBLE"):
        return None
    pk = realize(inst, opts, res.choice)
    return pk if _protected_ok(inst, pk) else None


def _infeasible(inst: Instance, opts: Options, clock: _Clock) -> PlanResponse:
    return PlanResponse(status="infeasible", objective=None, bound=None, gap=None, breakdown=None,
                        solve_s=round(time.perf_counter() - clock.t0, 4), assignments=[], actions=[],
                        unplaced=infeasible_reasons(inst, opts),
                        stats=SolverStats(engine="none", bound_method="none", jobs=len(inst.jobs), options=len(opts),
                                          phases_s=clock.phases))


def _backfill_greedy(inst: Instance, opts: Options, clock: _Clock, P: EngineParams) -> PlanResponse:
    """A backfill plan in one greedy pass: where no unpinned job fits the free room (the pinned jobs
    alone, and what must fail over), or where too many are unpinned for a search within milliseconds.
    The greedy keeps the pinned jobs first; the bound is the cheap Lagrangian one (prices zero)."""
    pk, skipped = backfill.greedy_backfill(inst, opts)
    if not _protected_ok(inst, pk):
        return _infeasible(inst, opts, clock)
    sc = score(inst, pk.placed_map())
    ub = max(lagrangian_value(inst, opts, np.zeros(len(inst.pools)), np.zeros(len(inst.quotas)), 0.0)[0],
             sc.objective)
    gap = (ub - sc.objective) / max(abs(ub), 1e-9)
    clock.lap("backfill")
    assignments = [Assignment.model_construct(job=inst.jobs[j].job.id, cluster=c, accelerator=a, nodes=n)
                   for j, (c, a, n) in sorted(pk.placed_map().items())]
    return PlanResponse.model_construct(
        plan_id=None, status="optimal" if gap <= P.optimal_gap else "feasible", objective=sc.objective,
        bound=ub, gap=gap, breakdown=Breakdown(value=sc.value, disruption=sc.disruption, spread=sc.spread),
        solve_s=round(time.perf_counter() - clock.t0, 4), assignments=assignments, actions=sc.actions,
        unplaced=backfill.backfill_reasons(inst, opts, pk, skipped),
        stats=SolverStats(engine="greedy", cpsat_status=None, bound_method="lagrangian", jobs=len(inst.jobs),
                          options=len(opts), cpsat_variables=0, phases_s=clock.phases))
