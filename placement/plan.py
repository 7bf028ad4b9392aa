"""`plan(request) -> response`: the engine's one entry point, a pure function of the request.

Stages, each leaving a valid plan in hand before the next starts, so a deadline never
lands with nothing to show:
  compile -> options -> greedy (valid plan #1) -> bound: LP (or a restricted LP pricing a
  Lagrangian bound; subgradient steps where no LP fits) -> LP rounding -> CP-SAT: the full
  pool-level model where small, then neighbourhood search (placement.lns) -> node packing
  with repair -> the canonical scorer picks the best plan -> reasons.
The response lands at the time limit: a reserve measured on this request is set aside for the
tail (scoring, reasons, the response), and every pass that may run late (the LP rounding's
packing, the greedy at planet size) stops at the reserve with the valid plan it has.
"""

from __future__ import annotations

import time
from dataclasses import replace

import numpy as np

from models.collector import collector_paused
from models.request import PlanRequest
from models.response import Assignment, Breakdown, PlanResponse, SolverStats
from placement import backfill, cpsat
from placement.bound import (
    Bound,
    improving_options,
    lagrangian_bound,
    lagrangian_value,
    lp_bound,
    priced_values,
    slot_priced,
)
from placement.candidates import Options, build_options
from placement.colgen import ColumnGeneration, colgen_lp
from placement.compact import compact_spread
from placement.cut_beside import CutBeside, CutModel, can_run_beside, cut_lp, cut_model
from placement.greedy import greedy, option_gains
from placement.instance import Instance, compile_instance, snap_down
from placement.knapsack_bound import integer_bound
from placement.lns import lns
from placement.lp_beside import BoundBeside, cores
from placement.packing import Packing
from placement.params import DEFAULT, EngineParams
from placement.realize import realize
from placement.reasons import infeasible_reasons, unplaced_reasons
from placement.rens import rens_choice
from placement.rounding import capacity_rounding, fit_to_limits, pool_greedy
from placement.score import Scored, score
from placement.stop import StoppingCriterion, criterion, safety_s

GC_PAUSE_MIN_JOBS = 2_000        # from here on a plan runs with the cyclic collector paused (models.collector)


def plan(req: PlanRequest, params: EngineParams = DEFAULT, started: float | None = None) -> PlanResponse:
    """The best plan found within `policy.time_limit_s`, with a proven bound and its gap.

    `started` (a `time.perf_counter()` reading) is when the caller received the request: the limit
    then counts from there, parsing included, and so do `solve_s` and `stats.phases_s` (its
    `parse` phase), so the plan lands when the caller asked for it rather than a parse later.

    Precondition: `req` passed `models.validate_request` (`models.parse_request` and
    `parse_request_json` run it on JSON; the replay loop runs it on the requests it builds). The
    engine does not check again: past that door it assumes every name it meets exists and every
    running job fits where it runs, and a request that skipped it may raise anywhere."""
    with collector_paused(len(req.jobs) >= GC_PAUSE_MIN_JOBS):
        return _plan(req, use_cpsat=True, params=params, started=started)


def greedy_plan(req: PlanRequest, params: EngineParams = DEFAULT, started: float | None = None) -> PlanResponse:
    """The greedy planner alone, priced by the cheap Lagrangian bound: the baseline to compare
    against and the engine's first plan; no LP, no CP-SAT. Same precondition and `started` as `plan`."""
    with collector_paused(len(req.jobs) >= GC_PAUSE_MIN_JOBS):
        return _plan(req, use_cpsat=False, params=params, started=started)


class _Clock:
    """The run's deadline and the seconds each phase took (reported in `stats.phases_s`)."""

    def __init__(self, limit: float, started: float | None = None):
        self.t0 = self.last = time.perf_counter() if started is None else started
        self.deadline = self.t0 + limit
        self.phases: dict[str, float] = {}
        if started is not None:
            self.lap("parse")

    def lap(self, name: str) -> float:
        now = time.perf_counter()
        self.phases[name] = round(self.phases.get(name, 0.0) + now - self.last, 4)
        self.last = now
        return self.phases[name]

    def left(self) -> float:
        return self.deadline - time.perf_counter()


def _plan(req: PlanRequest, use_cpsat: bool, params: EngineParams, started: float | None = None,
          learned: dict | None = None) -> PlanResponse:
    """`learned`, where given, receives what the solve learned (the instance, the options, the plan's
    packing and the bound with its prices): `placement.replan` keeps it to re-plan the next request warm."""
    P = params
    limit = req.policy.time_limit_s
    # (not at the LP-first size: there the pool-level first plan packed fell 4-9 % short of the greedy's)
    anytime_backfill = (backfill.asks_backfill(req.policy) and not req.policy.deterministic
                        and len(req.jobs) < P.lp_first_min_jobs)
    if anytime_backfill:
        # a backfill plan answers between epochs: the optimizer on the unpinned jobs within its own short
        # limit (apart family backfills: the greedy alone 0.4-4.6 % short of this plan, its bound 24-44 % loose)
        limit = min(limit, max(P.backfill_limit_s, P.backfill_s_per_job * len(req.jobs)))
        P = replace(P, min_stage_s=min(P.min_stage_s, P.backfill_min_stage_s), tail_s=min(P.tail_s, P.backfill_tail_s))
    clock = _Clock(limit, started)   # deterministic plans only report it: their budgets are work units
    stop = criterion(req.policy, clock.deadline)
    inst = compile_instance(req)
    opts = build_options(inst)
    if backfill.is_backfill(inst):   # contract v1.1: only what is not pinned is planned (placement/backfill.py)
        opts, pinned = backfill.restrict(inst, opts)
        if not (use_cpsat and (anytime_backfill or backfill.search_worth_it(opts, pinned))
                and backfill.anything_fits(inst, opts, pinned)):
            return _backfill_greedy(inst, opts, clock, P)
    clock.lap("compile")
    if any(i.protected and i.index in opts.no_option_reason for i in inst.jobs):
        return _infeasible(inst, opts, clock)

    candidates = _Candidates(inst)
    # at planet size a greedy pass costs 5-10 s on a loaded machine, and a packing pass 1-2 s: the
    # greedy's choice is made at pool level (scalar steps, no nodes), column generation runs from it
    # for most of the limit, and one packing pass then packs the LP's rounding (the greedy's choice
    # where no LP round finished). Packing the greedy's choice first as well took the time of one or
    # two rounds of the LP, which are worth 1-4 % there; the packing pass stops at the deadline with a
    # valid plan either way
    lp_first = use_cpsat and not stop.deterministic and len(inst.jobs) >= P.lp_first_min_jobs
    lp = None
    first = None
    first_name = "greedy"
    beside = None   # column generation's remaining rounds, in a second thread (placement/lp_beside.py)
    if lp_first:
        first, first_name, lp, beside = _planet_first(inst, opts, clock, P)
        if lp is not None and lp.infeasible:
            return _infeasible(inst, opts, clock)
    if first is None or not first.protected_placed():
        lp_first = False
        lp = None
        first_name = "greedy"
        first = greedy(inst, opts)
    realize_s = clock.lap("greedy" if not lp_first else "lp_rounding")
    if first.protected_placed():
        candidates.add(first_name, first)
    else:   # the greedy plan broke constraint 5: never a candidate
        rescued = _rescue_protected(inst, opts, stop, P)
        if rescued is None:
            return _infeasible(inst, opts, clock)
        candidates.add("cpsat", rescued)
        clock.lap("rescue")
    score_s = clock.lap("score")
    # what the end takes once the search stops (a scoring, the reasons, the response, the free, the JSON):
    # `_tail`. No packing pass: the search keeps its plan packed, and the passes that run late stop at `until`
    tail = _tail(P, score_s, len(inst.jobs))
    until = clock.deadline - tail   # where the passes stop: what is left is the tail's
    if beside is not None:   # and the integer bound at the prices of the LP's last round
        until -= P.beside_bound_compiles * max(clock.phases["compile"], P.min_stage_s)
    cut = None       # the whole-node-cut integer model, in a child process on the second core until the search stops
    cut_mdl = None   # ... and its LP relaxation as the LP stage (placement/cut_beside.py)
    if (use_cpsat and not stop.deterministic and not backfill.is_backfill(inst) and len(inst.jobs) < P.lp_first_min_jobs
            and P.cut_beside_min_options < len(opts) <= cut_beside_max_options(P, limit)
            and stop.may_start(P.min_stage_s, until=until)):
        if P.cut_beside or P.lp_whole_node_cuts:
            cut_mdl = cut_model(inst, opts)
        if P.cut_beside and cores() >= 2 and can_run_beside():
            # where its solution is read once the search stops, the child stops a little before the search
            cut_until = until - (P.cut_beside_solution_lead_s if P.cut_beside_solution else 0.0)
            cut = CutBeside(inst, opts, cut_until, cut_mdl, feasibility_jump=P.cut_beside_feasibility_jump,
                            presolve=cut_beside_presolve(P, len(cut_mdl.index), cut_until - time.perf_counter()))
        clock.lap("cut_model")

    # a valid bound at once (prices zero; on a small request a few subgradient steps from there, aimed at
    # the plan in hand, which may prove it optimal), then the LP where it fits, else subgradient steps
    if use_cpsat and not lp_first and len(opts) <= P.quick_proof_max_options:
        quick = lagrangian_bound(inst, opts, target=candidates.best[2].objective, max_iter=P.quick_proof_iters,
                                 seconds=1e9, proven_gap=P.optimal_gap)
        bound = Bound(quick.value, "lagrangian", quick.prices)
        clock.lap("bound")
    else:
        bound = Bound(lagrangian_value(inst, opts, np.zeros(len(inst.pools)), np.zeros(len(inst.quotas)), 0.0)[0],
                      "lagrangian", np.zeros(len(inst.pools)))
    lp_plan: tuple[Packing, float] | None = None   # the LP rounding and its objective
    lp_plans: list[tuple[Packing, float]] = []      # other roundings of the LP
    if lp_first and lp is not None and candidates.best[0] == "lp_rounding":
        lp_plan = (candidates.best[1], candidates.best[2].objective)
    if use_cpsat and not lp_first and not _proven(bound, candidates, P.optimal_gap) and (
            stop.may_start(realize_s + tail + 2 * P.min_stage_s)):
        # the LP's share leaves room for rounding it (one packing pass) and the tail
        lp_s = stop.budget(P.lp_det_factor * limit,
                           min((P.lp_share_full if len(opts) <= P.lp_full_max_options else P.lp_share) * limit,
                               clock.left() - P.lp_tail_realizes * realize_s - tail - P.min_stage_s))
        if lp_s <= P.min_stage_s:
            lp = None
        else:
            lp = _lp_stage(inst, opts, candidates.best[1], lp_s, P, stop.deterministic,
                           cut_mdl if P.lp_whole_node_cuts else None,
                           backfill.slot_rows(inst, opts, pinned) if backfill.is_backfill(inst) else None)
        clock.lap("lp")
        if lp is not None and lp.infeasible:
            return _infeasible(inst, opts, clock)
    if lp is not None:
        if lp.value < bound.value:
            bound = lp
        else:
            bound = Bound(bound.value, bound.method, lp.prices, x=lp.x, n=lp.n, quota_prices=lp.quota_prices,
                          budget_price=lp.budget_price)
    if _proven(bound, candidates, P.optimal_gap):
        pass   # the plan in hand meets the bound: nothing to search (small requests end here in about a ms)
    elif lp is not None:
        # integer knapsacks at the LP's prices: lumpy gangs cannot run in part (where the LP's rounds go on
        # beside, at their last prices once they stop: the time it takes is kept for that)
        priced_opts, slot_const = slot_priced(opts, lp)   # (a backfill's slot rows priced too)
        ib = None if beside is not None else integer_bound(inst, priced_opts, lp.prices, lp.quota_prices,
                           lp.budget_price, deadline=time.perf_counter() + stop.budget(
                               1e9, max(0.0, min(P.integer_bound_share * limit,
                                                 clock.left() - (0.0 if lp_first else realize_s) - tail))))
        if ib is not None and ib.value + slot_const < bound.value:
            bound = replace(bound, value=ib.value + slot_const, method=ib.method)
        clock.lap("integer_bound")
        if not lp_first and stop.may_start(realize_s + tail + P.min_stage_s):
            ts = time.perf_counter()
            pk = realize(inst, opts, lp_rounding(inst, opts, lp), deadline=None if stop.deterministic else until)
            realize_s = time.perf_counter() - ts
            lp_obj = candidates.add("lp_rounding", pk)
            lp_plan = (pk, lp_obj) if lp_obj is not None else None
            if stop.may_start(realize_s + tail + P.min_stage_s):
                # the rounding trimmed the other way (jobs leave at once rather than all shrinking first):
                # which packs better differs from request to request, and the search starts from the better
                pk2 = realize(inst, opts, lp_rounding(inst, opts, lp, shrink_first=False),
                              deadline=None if stop.deterministic else until)
                obj2 = candidates.add("lp_rounding", pk2)
                if obj2 is not None:
                    lp_plans.append((pk2, obj2))
            if (P.rens_s > 0 and cut_mdl is not None and P.lp_whole_node_cuts and not stop.deterministic
                    and stop.may_start(realize_s + tail + P.min_stage_s + P.rens_s)):
                # the integer solution within the LP's integral part: where the rounding packs far below
                # the LP (medium seed 8: 16,004 of 16,407), a start the search climbs further from
                got = rens_choice(inst, opts, cut_mdl, lp, P.rens_s)
                if got:
                    pk3 = realize(inst, opts, got, deadline=until)
                    obj3 = candidates.add("rens", pk3)
                    if obj3 is not None:
                        lp_plans.append((pk3, obj3))
            clock.lap("lp_rounding")
    elif lp_first:
        pass   # no LP in time: the first plan (the greedy's choice, packed) stands
    elif stop.may_start(tail + P.min_stage_s):
        best_obj = candidates.best[2].objective
        sub = lagrangian_bound(inst, opts, target=best_obj,
                               max_iter=int(stop.budget(P.subgradient_det_iters, P.subgradient_iters)),
                               seconds=stop.budget(1e9, min(P.subgradient_max_s,
                                                            max(P.subgradient_min_s, P.subgradient_share * limit))),
                               proven_gap=P.optimal_gap)
        if sub.value < bound.value:
            bound = Bound(sub.value, "lagrangian", sub.prices)
        clock.lap("bound")
        # a greedy pass at the prices, unless the plan in hand is proven optimal already
        if np.any(sub.prices > 0) and not _proven(bound, candidates, P.optimal_gap) and (
                stop.may_start(realize_s + tail + P.min_stage_s)):
            pk = greedy(inst, opts, sub.prices)
            candidates.add("greedy", pk)
            clock.lap("greedy_priced")
    best_name, best_pk, best_score = candidates.best

    cp_status = None
    cp_vars = 0
    pool_optimum_reached = False
    if use_cpsat and not _proven(bound, candidates, P.optimal_gap):
        if len(opts) <= P.cpsat_full_max_options and stop.may_start(P.min_stage_s + cpsat.load_s(P.cpsat_load_s),
                                                                     until=until):
            cpsat.load()   # before the budget is sized from what is left
            hint = {j: (o, sum(best_pk.nodes[j].values())) for j, o in best_pk.choice.items()}
            budget = stop.budget(P.cpsat_det_share * limit,
                                 max(P.min_stage_s, stop.left(until=until) * P.cpsat_share_of_left))
            res = cpsat.solve_pool_model(inst, opts, np.arange(len(opts)), hint, budget, stop)
            cp_status, cp_vars = res.status, res.variables
            if res.status in ("OPTIMAL", "FEASIBLE"):
                pk = realize(inst, opts, res.choice)
                candidates.add("cpsat", pk)
            # CP-SAT's best bound on the full pool model is valid whether or not it finished
            if res.status in ("OPTIMAL", "FEASIBLE") and res.bound is not None and res.bound < bound.value:
                bound = replace(bound, value=res.bound, method="cpsat")
            best_name, best_pk, best_score = candidates.best
            # the plan packs the full pool model's proven optimum, up to the model's integer rounding:
            # no neighbourhood of that model can find more, so the search would only burn the limit
            pool_optimum_reached = res.status == "OPTIMAL" and res.bound is not None and (
                res.bound - best_score.objective <= 2 * res.slack + 1e-9 * max(1.0, abs(res.bound)))
            clock.lap("cpsat")
        # not for a backfill plan: it answers between epochs in milliseconds, and the next full plan
        # reconsiders everything it leaves (the exact stage cost the Philly replay about a seventh more CPU)
        if not _proven(bound, candidates, P.optimal_gap) and not backfill.is_backfill(inst) and (
                _node_pairs(inst, opts) <= P.exact_max_node_vars) and stop.may_start(P.min_stage_s, until=until):
            bound, pool_optimum_reached = _exact_stage(inst, opts, candidates, bound, stop, until, P,
                                                       pool_optimum_reached)
            best_name, best_pk, best_score = candidates.best
            clock.lap("exact")
        # the search's set-up (gains, neighbourhoods, each step's model and repack) is passes over
        # every job: at the LP-first size it needs about a packing pass, measured above, to do anything
        search_needs = realize_s if lp_first else 0.0
        # the child's solution is packed and scored once the search stops: the search leaves time for that
        search_until = until - (realize_s + score_s if cut is not None and P.cut_beside_solution else 0.0)
        if not _proven(bound, candidates, P.optimal_gap) and (
                not pool_optimum_reached) and stop.may_start(search_needs + P.min_stage_s, until=search_until):
            alts = [p for p in ([lp_plan] if lp_plan is not None else []) + lp_plans if p[0] is not best_pk]
            pk, lstats = lns(inst, opts, best_pk, search_until, bound.x, stop, P, quota_prices=bound.quota_prices,
                             lp_n=bound.n, alternatives=alts, best_objective=best_score.objective,
                             bound=bound.value,
                             outside=cut.solution if cut is not None and P.cut_beside_inject else None)
            if lstats["improved"]:
                best_name, best_pk, best_score = "cpsat", pk, score(inst, pk.placed_map())
            if lstats["steps"]:
                cp_status = cp_status or "FEASIBLE"
            clock.phases["lns_steps"] = lstats["steps"]
            clock.phases["lns_early_steps"] = lstats.get("early_steps", 0)
            clock.phases["lns_improved"] = lstats["improved"]
            clock.phases["gang_moves"] = lstats.get("gang_moves", 0)
            clock.phases["lns_from_child"] = lstats.get("outside", 0)
            clock.lap("lns")
        elif beside is not None and lp is not None:
            # planet size, the LP's rounds going on beside, and no time left for a search: the integer bound
            # at the prices of the rounds done, while they go on, with all the time there is (after them, at
            # the end, little is left for it, and a loaded machine reported the LP's bound, 2-4 % looser)
            ib = integer_bound(inst, opts, lp.prices, lp.quota_prices, lp.budget_price,
                               deadline=clock.deadline - tail)
            if ib is not None and ib.value < bound.value:
                bound = replace(bound, value=ib.value, method=ib.method)
            clock.lap("integer_bound")

    if cut is not None and P.cut_beside_solution:
        got = cut.solution()
        if got is not None and got[0] >= best_score.objective - P.cut_beside_solution_margin * abs(best_score.objective):
            pk = realize(inst, opts, got[1], deadline=until)
            if pk.protected_placed():
                sc = score(inst, pk.placed_map())
                if sc.objective > best_score.objective:
                    best_name, best_pk, best_score = "whole_node_mip", pk, sc
        clock.lap("cut_solution")
    if use_cpsat and not stop.deterministic and not backfill.is_backfill(inst) and not lp_first and (
            P.compact_spread and best_pk.choice):
        # started and moved jobs onto the fewest nodes their pool's room allows (placement/compact.py);
        # deterministic plans are left as their budgets made them (the replays' figures)
        if compact_spread(inst, opts, best_pk, until + P.compact_tails * tail) > 0:
            best_score = score(inst, best_pk.placed_map())
        clock.lap("compact")
    if beside is not None:
        more = beside.result()
        clock.phases["lp_rounds_beside"] = beside.rounds
        clock.lap("lp_beside")
        if more is not None and not more.infeasible:
            if more.value < bound.value:
                bound = Bound(more.value, more.method, more.prices, x=bound.x, n=bound.n,
                              quota_prices=more.quota_prices, budget_price=more.budget_price)
            ib = integer_bound(inst, opts, more.prices, more.quota_prices, more.budget_price,
                               deadline=clock.deadline - tail)
            if ib is not None and ib.value < bound.value:
                bound = Bound(ib.value, ib.method, more.prices, x=bound.x, n=bound.n,
                              quota_prices=more.quota_prices, budget_price=more.budget_price)
        clock.lap("integer_bound_beside")
    if cut is not None:
        got = cut.result(until + P.cut_beside_wait_tails * tail)
        if got is not None and got < bound.value:
            bound = replace(bound, value=got, method="whole_node_mip")
        clock.lap("cut_model_wait")
    unplaced = unplaced_reasons(inst, opts, best_pk)
    obj = best_score.objective
    ub = max(bound.value, obj)   # the bound is proven >= every valid plan; this only guards float noise
    gap = (ub - obj) / max(abs(ub), 1e-9)
    if gap <= P.optimal_gap:
        status = "optimal"
    elif use_cpsat and cp_status is None and best_name not in ("cpsat", "lp_rounding", "rens", "node_milp",
                                                               "whole_node_mip") and (
            not (anytime_backfill and lp is not None)):
        status = "fallback"   # neither CP-SAT nor the LP gave a plan by the deadline: a heuristic plan (a backfill's
        #                       greedy plan that its LP's rounding and insertions did not beat is not one)
    else:
        status = "feasible"
    assignments = [Assignment.model_construct(job=inst.jobs[j].job.id, cluster=c, accelerator=a, nodes=n)
                   for j, (c, a, n) in sorted(best_pk.placed_map().items())]
    clock.lap("response")
    if learned is not None:
        learned.update(inst=inst, opts=opts, packing=best_pk, bound=bound)
    # every part was built by the engine from validated input: construct without re-validating
    return PlanResponse.model_construct(
        plan_id=None, status=status, objective=obj, bound=ub, gap=gap,
        breakdown=Breakdown(value=best_score.value, disruption=best_score.disruption, spread=best_score.spread),
        solve_s=round(time.perf_counter() - clock.t0, 4), assignments=assignments, actions=best_score.actions,
        unplaced=unplaced,
        stats=SolverStats(engine=best_name, cpsat_status=cp_status, bound_method=bound.method, jobs=len(inst.jobs),
                          options=len(opts), cpsat_variables=cp_vars, phases_s=clock.phases),
    )


def cut_beside_max_options(P: EngineParams, limit: float) -> int:
    """The most options for which the whole-node-cut model runs beside the search: HiGHS' root on it takes
    longer the more options there are, and a longer limit leaves it the time (12,000 at 1 s, never below
    8,000). The caller never starts it at the LP-first size, where packing its solution would take a second
    of the end."""
    return int(max(P.cut_beside_max_options, min(P.cut_beside_max_options_cap, P.cut_beside_options_per_s * limit)))


def cut_beside_presolve(P: EngineParams, nonzeros: int, seconds: float) -> bool:
    """Whether the child presolves the whole-node-cut model of `nonzeros` nonzeros in its `seconds`: the
    presolved root ends later (about 1.3e-5 s per nonzero on this machine) with a tighter bound, and HiGHS'
    solutions come from the root's end, so a small model gets both in time; on a big one the root's bound
    alone would come too late (medium family seed 30, 43,202 nonzeros: 2.98 % reported at 1 s for 0.3 %)."""
    return P.cut_beside_presolve or nonzeros <= P.cut_beside_presolve_nnz_per_s * seconds


def _tail(P: EngineParams, score_s: float, jobs: int) -> float:
    """Seconds to keep once the search stops, for the response to be out by the limit: scoring the final
    plan, the reasons and assignments, freeing the solve's objects and the caller's JSON of the response,
    each about a scoring's work (measured at planet size: `EngineParams.tail_scorings`)."""
    return P.tail_s + P.tail_scorings * score_s + P.tail_per_job_s * jobs


def _node_pairs(inst: Instance, opts: Options) -> int:
    """(change option, node of its pool) pairs: the size of the exact node-level model's placement."""
    if not len(opts):
        return 0
    sizes = np.fromiter((len(p.nodes) for p in inst.pools), dtype=np.int64, count=len(inst.pools))
    return int(sizes[opts.pool[~opts.keep]].sum())


def _exact_stage(inst: Instance, opts: Options, candidates: _Candidates, bound: Bound, stop: StoppingCriterion,
                 until: float, P: EngineParams, pool_optimum_reached: bool) -> tuple[Bound, bool]:
    """The exact node-level model (placement/exact.py) on a tiny request whose plan the pool-level bounds
    cannot prove: its dual bound replaces theirs where tighter (valid whether or not it finished), and its
    plan, placed node by node as it stands, becomes a candidate. Returns (the bound, whether the search may
    still find more: not once the model proved its optimum)."""
    from placement.bound import _quiet_highs
    from placement.exact import node_milp

    _quiet_highs()   # HiGHS' banner, printed at its first construction in a process, silenced here as for the LP
    # deterministic: stopped by its node count, the clock only a safety net far above what that takes
    seconds = stop.budget(safety_s(inst.request.policy.time_limit_s),
                          max(P.min_stage_s, stop.left(until=until) * P.exact_share_of_left))
    # the plan in hand is the model's first solution (HiGHS then only has to beat or prove it, and skips its
    # own first-solution heuristic): on the bench's small requests that halved the stage
    best = candidates.best[1]
    start = {j: (o, inst.jobs[j].cur_nodes if opts.keep[o] else dict(best.nodes[j])) for j, o in best.choice.items()}
    res = node_milp(inst, opts, seconds=seconds, tolerance=1e-7, min_seconds=0.01,
                    max_nodes=P.exact_det_nodes if stop.deterministic else None, start=start, feasibility_jump=False)
    if res.bound is not None and res.bound < bound.value:
        bound = replace(bound, value=res.bound, method="node_milp")
    if res.placed:
        pk = Packing(inst, opts)
        ok = True
        for j, (o, nodes) in sorted(res.placed.items(), key=lambda t: not opts.keep[t[1][0]]):
            ok = pk.try_keep(j) if opts.keep[o] else pk.place_exact(o, nodes)
            if not ok:
                break
        if ok:
            candidates.add("node_milp", pk)
    return bound, pool_optimum_reached or res.status == "Optimal"


def _planet_first(inst: Instance, opts: Options, clock: _Clock, P: EngineParams
                  ) -> tuple[Packing | None, str, Bound | None, BoundBeside | None]:
    """Planet size: the greedy's choice at pool level, column generation from it (placement/colgen.py)
    until the time one packing pass, the integer bound, a scoring and the response are estimated to
    take (each measured as a multiple of this request's compile on this machine, so load scales
    them), then that pass over the LP's rounding, or over the greedy's choice where no LP round
    finished. Where the LP stopped on time, its remaining rounds go on in a second thread (returned,
    to be joined before the response). Returns (the packed plan, its stage name, the LP's bound or None,
    that thread or None)."""
    first_choice = pool_greedy(inst, opts, option_gains(inst, opts, None)[0])
    clock.lap("greedy")
    c = max(clock.phases["compile"], P.min_stage_s)
    # the packing pass stops where a scoring of its plan and the tail after it are left (`_plan` reserves
    # that tail at the scoring's measured seconds; here both are estimated from the compile's)
    score_est = P.first_score_compiles * c
    until = clock.deadline - score_est - _tail(P, score_est, len(inst.jobs))
    lp_deadline = until - (P.first_pack_compiles + P.first_bound_compiles) * c
    lp = None
    beside = None
    if lp_deadline - time.perf_counter() > min(P.lp_first_min_s, P.lp_first_share * inst.request.policy.time_limit_s):
        # from each job's keep and best options and the greedy's choice at pool level, so that its
        # first round is worth at least the greedy plan
        start = np.union1d(_top_options(inst, opts, Packing(inst, opts), 1),
                           np.fromiter((o for o, _ in first_choice.values()), dtype=np.int64))
        cg = ColumnGeneration(inst, opts, start)
        cg.run(lp_deadline, P.lp_first_max_rounds)
        lp = cg.bound()
        clock.phases["lp_rounds"] = cg.stats["rounds"]
        if P.lp_beside and lp is not None and not cg.done and cores() >= 2:
            # the rounds it had no time for, beside the packing and the search, until the search's end (which
            # then leaves time for the integer bound at their prices; placement/lp_beside.py)
            end = clock.deadline - _tail(P, score_est, len(inst.jobs))
            beside = BoundBeside(cg, end - P.beside_bound_compiles * c)
            # the stage stops when its next round would not fit (its estimate is the last round's and more):
            # that round, now beside, is waited for until the stage's deadline and packed where it finishes
            # by then (on a slow machine the stage often stopped after one round with two seconds left, and
            # its rounding sat 4-8 % below the LP's)
            fresh = beside.await_round(int(cg.stats["rounds"]), lp_deadline)
            if fresh is not None:
                x, n, pool, quota, budget = fresh
                lp = Bound(lp.value, lp.method, pool, x=x, n=n, quota_prices=quota, budget_price=budget)
                clock.phases["lp_rounds_waited"] = 1
    clock.lap("lp")
    if lp is not None and lp.infeasible:
        return None, "greedy", lp, None
    if lp is not None:
        pk = realize(inst, opts, capacity_rounding(inst, opts, lp.x, lp.n), deadline=until)
        if pk.protected_placed():
            return pk, "lp_rounding", lp, beside
    return realize(inst, opts, first_choice, deadline=until, by_value=True), "greedy", lp, beside


def _lp_stage(inst: Instance, opts: Options, pk: Packing, seconds: float, P: EngineParams,
              deterministic: bool = False, cut_mdl: CutModel | None = None,
              slots: list[tuple[int, int, int]] | None = None) -> Bound | None:
    """The LP relaxation over all options where it is small; else over each job's best few
    options plus rounds of column generation, whose duals then price every option in a
    Lagrangian bound (valid whatever the prices). Deterministic plans stop HiGHS by simplex
    iterations and run a fixed number of rounds, each LP solved afresh, so the clock never decides
    (`seconds` is then a safety net)."""
    iters = P.lp_det_iters_per_row if deterministic else None
    if cut_mdl is not None and len(opts) <= P.lp_full_max_options:
        return cut_lp(inst, opts, cut_mdl, seconds)
    if len(opts) <= P.lp_full_max_options:
        return lp_bound(inst, opts, time_limit_s=seconds, iterations_per_row=iters, slots=slots)
    t0 = time.perf_counter()
    per_job = int(np.clip(P.lp_target_columns // max(1, len(inst.jobs)), 1, P.lp_options_per_job))
    top = _top_options(inst, opts, pk, per_job)
    if not deterministic:
        # one restricted LP re-solved from its last basis as columns price in (placement/colgen.py): on the
        # family's large requests it converges to the full LP in 0.9 s, where solving each round's LP from
        # scratch (below) had not converged after 2.3 s and left the bound 1.4 % looser
        return colgen_lp(inst, opts, top, t0 + seconds)[0]
    best: Bound | None = None
    rounds = 0
    while True:
        lp = lp_bound(inst, opts.restrict(top), time_limit_s=seconds, iterations_per_row=iters)
        if lp is None or lp.infeasible:
            break
        val = lagrangian_value(inst, opts, lp.prices, lp.quota_prices, lp.budget_price)[0]
        x = np.zeros(len(opts))
        n = np.zeros(len(opts))
        x[top], n[top] = lp.x, lp.n
        # the bound is the best round's; the primal (for rounding) the latest, most complete one
        if best is None or val < best.value:
            best = Bound(val, "lagrangian", lp.prices, x=x, n=n, quota_prices=lp.quota_prices,
                         budget_price=lp.budget_price)
        else:
            best = Bound(best.value, "lagrangian", best.prices, x=x, n=n, quota_prices=best.quota_prices,
                         budget_price=best.budget_price)
        # another round of column generation only while it fits (each costs more than the last)
        rounds += 1
        if rounds > P.colgen_det_rounds:
            break
        extra = _best_improving(inst, opts, lp, top)
        if not len(extra):
            break
        top = np.union1d(top, extra)
    return best


def _best_improving(inst: Instance, opts: Options, lp: Bound, top: np.ndarray) -> np.ndarray:
    """Per job, its best option outside `top` that beats its members at the LP's prices: one
    round of column generation, one column per job (all of them make the next LP too slow)."""
    extra = improving_options(inst, opts, lp, top)
    if not len(extra):
        return extra
    val, _ = priced_values(inst, opts, lp.prices, lp.quota_prices, lp.budget_price)
    ex = extra[np.lexsort((-val[extra], opts.job[extra]))]
    first = np.ones(len(ex), dtype=bool)
    first[1:] = opts.job[ex][1:] != opts.job[ex][:-1]
    return ex[first]


class _Candidates:
    """The valid plans found so far, each scored once by the canonical scorer; `best` is the top."""

    def __init__(self, inst: Instance):
        self.inst = inst
        self.best: tuple[str, Packing, Scored] | None = None

    def add(self, name: str, pk: Packing) -> float | None:
        """Score `pk`; returns its objective (None: it breaks constraint 5 and is no candidate)."""
        if not pk.protected_placed():
            return None
        sc = score(self.inst, pk.placed_map())
        if self.best is None or sc.objective > self.best[2].objective:
            self.best = (name, pk, sc)
        return sc.objective


def keep_all(inst: Instance, opts: Options) -> Packing:
    """Every running job that may stay exactly where it is, kept (protected first), nothing else:
    valid by construction, and the plan to beat."""
    pk = Packing(inst, opts)
    for info in sorted(inst.jobs, key=lambda i: (not i.protected, i.index)):
        if info.keepable:
            pk.try_keep(info.index)
    return pk


def _proven(bound: Bound, candidates: _Candidates, optimal_gap: float) -> bool:
    """The best plan so far is proven optimal (`gap <= optimal_gap`): every later stage is skipped."""
    obj = candidates.best[2].objective
    return bound.value - obj <= optimal_gap * max(abs(bound.value), 1e-9)


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


def lp_rounding(inst: Instance, opts: Options, lp: Bound, shrink_first: bool = True) -> dict[int, tuple[int, int]]:
    """Each job takes the option the LP leans on most (at least half), with the LP's replicas
    per unit of choice; the LP is nearly integral here (fractional only where constraints bind), and
    where rounding overfills a pool or a quota the jobs worth least per device give way
    (`placement.rounding.fit_to_limits`; planet size rounds with `capacity_rounding` instead)."""
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
    return fit_to_limits(inst, opts, out, shrink_first)


def _rescue_protected(inst: Instance, opts: Options, stop: StoppingCriterion, P: EngineParams) -> Packing | None:
    """The greedy could not keep every protected job placed: ask CP-SAT for protected jobs alone."""
    prot = [i.index for i in inst.jobs if i.protected]
    subset = np.concatenate([opts.by_job[j] for j in prot]) if prot else np.zeros(0, dtype=np.int64)
    seconds = stop.budget(P.rescue_det_share * inst.request.policy.time_limit_s, max(P.rescue_min_s, stop.left()))
    res = cpsat.solve_pool_model(inst, opts, subset, {}, seconds, stop)
    if res.status not in ("OPTIMAL", "FEASIBLE"):
        return None
    pk = realize(inst, opts, res.choice)
    return pk if pk.protected_placed() else None


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
    if not pk.protected_placed():
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
