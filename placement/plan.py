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

import gc
import time
from collections.abc import Iterator
from contextlib import contextmanager

import numpy as np

from models.request import PlanRequest
from models.response import Assignment, Breakdown, PlanResponse, SolverStats
from placement.bound import Bound, improving_options, lagrangian_bound, lagrangian_value, lp_bound
from placement.candidates import Options, build_options
from placement.cpsat import solve_pool_model
from placement.greedy import greedy
from placement.instance import Instance, compile_instance, snap_down
from placement.knapsack_bound import integer_bound
from placement.lns import lns
from placement.packing import Packing
from placement.realize import realize
from placement.reasons import infeasible_reasons, unplaced_reasons
from placement.score import Scored, score

OPTIMAL_GAP = 1e-6
LP_FULL_MAX_OPTIONS = 15_000     # above this, a restricted LP (+ column generation) prices a Lagrangian bound
LP_OPTIONS_PER_JOB = 4           # most options per job in the restricted LP
LP_TARGET_COLUMNS = 40_000       # the restricted LP's size aim: fewer options per job at planet size
CPSAT_FULL_MAX_OPTIONS = 3_000   # above this, CP-SAT works on neighbourhoods only (placement.lns)


GC_FREEZE_MIN_JOBS = 2_000       # from here on the request's objects are kept out of the collector's sight


def plan(req: PlanRequest) -> PlanResponse:
    """The best plan found within `policy.time_limit_s`, with a proven bound and its gap."""
    with _collector_spared(len(req.jobs)):
        return _plan(req, use_cpsat=True)


def greedy_plan(req: PlanRequest) -> PlanResponse:
    """The greedy planner alone, priced by the cheap Lagrangian bound: the baseline to compare
    against and the engine's first plan; no LP, no CP-SAT."""
    with _collector_spared(len(req.jobs)):
        return _plan(req, use_cpsat=False)


@contextmanager
def _collector_spared(jobs: int) -> Iterator[None]:
    """Why: a planet-size request is millions of objects that live until the plan returns, and each
    full collection walks them all (measured on a loaded machine: 1.75 s of an 8.5 s greedy plan,
    0.5 s with them frozen). Everything alive when a large plan starts is moved out of the collector's
    sight (`gc.freeze`) and handed back when it ends; the plan's own garbage is still collected.
    Concurrent plans may unfreeze each other early, which costs only the saving."""
    if jobs < GC_FREEZE_MIN_JOBS:
        yield
        return
    gc.freeze()
    try:
        yield
    finally:
        gc.unfreeze()


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


def _plan(req: PlanRequest, use_cpsat: bool) -> PlanResponse:
    limit = req.policy.time_limit_s
    det = req.policy.deterministic
    clock = _Clock(limit)
    inst = compile_instance(req)
    opts = build_options(inst)
    clock.lap("compile")
    if any(i.protected and i.index in opts.no_option_reason for i in inst.jobs):
        return _infeasible(inst, opts, clock)

    candidates = _Candidates(inst)
    first = greedy(inst, opts)
    realize_s = clock.lap("greedy")
    if _protected_ok(inst, first):
        candidates.add("greedy", first)
    else:   # the greedy plan broke constraint 5: never a candidate
        rescued = _rescue_protected(inst, opts, clock.deadline)
        if rescued is None:
            return _infeasible(inst, opts, clock)
        candidates.add("cpsat", rescued)
        clock.lap("rescue")
    # what the end takes once the search stops (reasons, the response): about two scorings
    tail = 0.02 + 2 * clock.lap("score") + 3e-5 * len(inst.jobs)

    # a valid bound at once (prices zero), then the LP where it fits, else subgradient steps
    bound = Bound(lagrangian_value(inst, opts, np.zeros(len(inst.pools)), np.zeros(len(inst.quotas)), 0.0)[0],
                  "lagrangian", np.zeros(len(inst.pools)))
    lp = None
    if use_cpsat and (clock.left() > realize_s + tail + 0.1 or det):
        # the LP's share leaves room for rounding it, scoring and the reasons (about 3 greedy passes)
        lp_s = 4 * limit if det else min(0.45 * limit, clock.left() - realize_s - tail - 0.05)
        lp = _lp_stage(inst, opts, candidates.best[1], seconds=lp_s) if lp_s > 0.05 else None
        clock.lap("lp")
        if lp is not None and lp.infeasible:
            return _infeasible(inst, opts, clock)
    if lp is not None:
        if lp.value < bound.value:
            bound = lp
        else:
            bound = Bound(bound.value, bound.method, lp.prices, x=lp.x, n=lp.n, quota_prices=lp.quota_prices,
                          budget_price=lp.budget_price)
    if _proven(bound, candidates):
        pass   # the plan in hand meets the bound: nothing to search (small requests end here in about a ms)
    elif lp is not None:
        # integer knapsacks at the LP's prices: lumpy gangs cannot run in part
        ib = integer_bound(inst, opts, lp.prices, lp.quota_prices, lp.budget_price,
                           deadline=time.perf_counter() + (1e9 if det else max(0.0, min(0.1 * limit, clock.left() - realize_s - tail))))
        if ib is not None and ib.value < bound.value:
            bound = Bound(ib.value, ib.method, bound.prices, x=bound.x, n=bound.n, quota_prices=bound.quota_prices,
                          budget_price=bound.budget_price)
        clock.lap("integer_bound")
        if det or clock.left() > realize_s + tail + 0.05:
            ts = time.perf_counter()
            pk = realize(inst, opts, lp_rounding(inst, opts, lp))
            realize_s = time.perf_counter() - ts
            candidates.add("lp_rounding", pk)
            clock.lap("lp_rounding")
    elif det or clock.left() > tail + 0.05:
        best_obj = candidates.best[2].objective
        sub = lagrangian_bound(inst, opts, target=best_obj, max_iter=60 if det else 200,
                               seconds=1e9 if det else min(0.5, max(0.02, 0.05 * limit)))
        if sub.value < bound.value:
            bound = Bound(sub.value, "lagrangian", sub.prices)
        clock.lap("bound")
        if np.any(sub.prices > 0) and (det or clock.left() > realize_s + tail + 0.05):
            pk = greedy(inst, opts, sub.prices)
            candidates.add("greedy", pk)
            clock.lap("greedy_priced")
    best_name, best_pk, best_score = candidates.best

    cp_status = None
    cp_vars = 0
    pool_optimum_reached = False
    if use_cpsat and not _proven(bound, candidates):
        # what must stay for packing, scoring and the reasons once the search stops
        stop = clock.deadline - tail
        if len(opts) <= CPSAT_FULL_MAX_OPTIONS and (stop - time.perf_counter() > 0.05 or det):
            hint = {j: (o, sum(best_pk.nodes[j].values())) for j, o in best_pk.choice.items()}
            # deterministic: a budget from the request alone, never from the wall clock
            budget = 0.25 * limit if det else max(0.05, (stop - time.perf_counter()) * 0.4)
            res = solve_pool_model(inst, opts, np.arange(len(opts)), hint, budget, det)
            cp_status, cp_vars = res.status, res.variables
            if res.status in ("OPTIMAL", "FEASIBLE"):
                pk = realize(inst, opts, res.choice)
                candidates.add("cpsat", pk)
            # CP-SAT's best bound on the full pool model is valid whether or not it finished
            if res.status in ("OPTIMAL", "FEASIBLE") and res.bound is not None and res.bound < bound.value:
                bound = Bound(res.bound, "cpsat", bound.prices, x=bound.x, n=bound.n,
                              quota_prices=bound.quota_prices, budget_price=bound.budget_price)
            best_name, best_pk, best_score = candidates.best
            # the plan packs the full pool model's proven optimum, up to the model's integer rounding:
            # no neighbourhood of that model can find more, so the search would only burn the limit
            pool_optimum_reached = res.status == "OPTIMAL" and res.bound is not None and (
                res.bound - best_score.objective <= 2 * res.slack + 1e-9 * max(1.0, abs(res.bound)))
            clock.lap("cpsat")
        if bound.value - best_score.objective > OPTIMAL_GAP * max(abs(bound.value), 1e-9) and (
                not pool_optimum_reached) and (stop - time.perf_counter() > 0.05 or det):
            pk, lstats = lns(inst, opts, best_pk, stop, bound.x, det, quota_prices=bound.quota_prices)
            if lstats["improved"]:
                best_name, best_pk, best_score = "cpsat", pk, score(inst, pk.placed_map())
            if lstats["steps"]:
                cp_status = cp_status or "FEASIBLE"
            clock.phases["lns_steps"] = lstats["steps"]
            clock.phases["lns_improved"] = lstats["improved"]
            clock.phases["gang_moves"] = lstats.get("gang_moves", 0)
            clock.lap("lns")

    unplaced = unplaced_reasons(inst, opts, best_pk)
    obj = best_score.objective
    ub = max(bound.value, obj)   # the bound is proven >= every valid plan; this only guards float noise
    gap = (ub - obj) / max(abs(ub), 1e-9)
    if gap <= OPTIMAL_GAP:
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


def _lp_stage(inst: Instance, opts: Options, pk: Packing, seconds: float) -> Bound | None:
    """The LP relaxation over all options where it is small; else over each job's best few
    options plus one round of column generation, whose duals then price every option in a
    Lagrangian bound (valid whatever the prices)."""
    if len(opts) <= LP_FULL_MAX_OPTIONS:
        return lp_bound(inst, opts, time_limit_s=seconds)
    t0 = time.perf_counter()
    per_job = int(np.clip(LP_TARGET_COLUMNS // max(1, len(inst.jobs)), 2, LP_OPTIONS_PER_JOB))
    top = _top_options(inst, opts, pk, per_job)
    lp = lp_bound(inst, opts.restrict(top), time_limit_s=seconds)
    if lp is None or lp.infeasible:
        return None
    spent = time.perf_counter() - t0
    if spent < 0.4 * seconds:
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


def _proven(bound: Bound, candidates: _Candidates) -> bool:
    """The best plan so far is proven optimal (`gap <= OPTIMAL_GAP`): every later stage is skipped."""
    obj = candidates.best[2].objective
    return bound.value - obj <= OPTIMAL_GAP * max(abs(bound.value), 1e-9)


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
        r = max(int(opts.lo[o]), min(int(opts.hi[o]), int(np.floor(n[o] / x[o] + 1e-6))))
        out[j] = (o, max(int(opts.lo[o]), int(snap_down(inst.jobs[j], r))))
    return out


def _rescue_protected(inst: Instance, opts: Options, deadline: float) -> Packing | None:
    """The greedy could not keep every protected job placed: ask CP-SAT for protected jobs alone."""
    prot = [i.index for i in inst.jobs if i.protected]
    subset = np.concatenate([opts.by_job[j] for j in prot]) if prot else np.zeros(0, dtype=np.int64)
    det = inst.request.policy.deterministic
    seconds = 0.3 * inst.request.policy.time_limit_s if det else max(0.1, deadline - time.perf_counter())
    res = solve_pool_model(inst, opts, subset, {}, seconds, det)
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
