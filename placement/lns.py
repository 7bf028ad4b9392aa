"""Large-neighbourhood search with CP-SAT: small exact models around the incumbent plan.

One CP-SAT model over every job stalls on this problem (design.md: 10 % below the LP bound
after 10 s at 2,000 jobs). The LP is nearly integral, though, so the incumbent differs from
the relaxation in few jobs. Each step frees a neighbourhood (the jobs where the LP and the
incumbent disagree, then the jobs of a few pools at a time), holds every other job where the
incumbent has it, solves the small model exactly, packs the result onto nodes and keeps it
when the canonical score improves. Neighbourhoods come from a seeded generator, and under
`placement.stop.WorkUnits` each step has a deterministic budget, so the same request repeats exactly.
"""

from __future__ import annotations

import itertools
import random
import time
from collections.abc import Callable, Iterator

import numpy as np

from placement import cpsat
from placement.candidates import Options
from placement.gang_insert import gang_moves, keep_moves, option_moves
from placement.greedy import option_gains
from placement.instance import Instance
from placement.mip_step import relaxation_disagreements, solve_neighbourhood, step_options
from placement.node_lns import node_step
from placement.packing import Packing
from placement.params import DEFAULT, EngineParams
from placement.realize import realize, realize_delta
from placement.score import improves, net_of, score
from placement.stop import StoppingCriterion


def incumbent_choice(pk: Packing) -> dict[int, tuple[int, int]]:
    return {j: (o, sum(pk.nodes[j].values())) for j, o in pk.choice.items()}


def _kept_room(inst: Instance, opts: Options, pk: Packing, free: set[int] | None = None) -> np.ndarray:
    """Devices per node left once the jobs that keep their exact placement (and are not freed)
    are counted."""
    room = np.where(inst.node_up, inst.node_devices, 0).astype(np.int64)
    for j, o in pk.choice.items():
        if opts.keep[o] and (free is None or j not in free):
            info = inst.jobs[j]
            for n, k in pk.nodes[j].items():
                room[n] -= k * info.dpr
    return room


Outside = Callable[[], tuple[float, dict[int, tuple[int, int]]] | None]   # a plan found beside the search


def lns(inst: Instance, opts: Options, best: Packing, deadline: float, lp_x: np.ndarray | None,
        stop: StoppingCriterion, params: EngineParams = DEFAULT, quota_prices: np.ndarray | None = None,
        lp_n: np.ndarray | None = None, alternatives: list[tuple[Packing, float]] | None = None,
        best_objective: float = 0.0, bound: float | None = None,
        outside: Outside | None = None) -> tuple[Packing, dict[str, int]]:
    """Improve `best` until `stop` says so (at `deadline`, or after a step count when it counts
    work); returns the best plan and counters (steps, improvements, steps CP-SAT solved to optimality).
    `quota_prices` (the LP's) point at binding quotas; `lp_n` (the LP's replicas) at jobs it grows;
    `alternatives` (other plans and their objectives; `best_objective` is `best`'s) may be the start.
    `outside()`, where given, is a plan found beside the search so far ((its model objective, its choice) or
    None: the whole-node-cut child's): before the option moves, where it is better packed, the search goes
    on from it."""
    max_free_jobs = params.lns_max_free_jobs
    rng = random.Random(len(inst.jobs) * 7919 + len(opts))
    stats = {"steps": 0, "improved": 0, "optimal_steps": 0}
    setup_t0 = time.perf_counter()
    pool_jobs: list[list[int]] = [[] for _ in inst.pools]
    for o in range(len(opts)):
        pool_jobs[int(opts.pool[o])].append(int(opts.job[o]))
    pool_jobs = [sorted(set(js)) for js in pool_jobs]
    # counted work: a step count from the request alone (`lns_det_share` of the time limit in CP-SAT
    # work units), so a deterministic plan takes roughly its limit on an idle core
    limit = inst.request.policy.time_limit_s
    det_step = min(params.lns_step_s, params.lns_det_share * limit)
    step_s = stop.budget(det_step, params.lns_step_s)
    max_steps = int(stop.budget(max(1, round(params.lns_det_share * limit / det_step)), 10**9))
    gain0, _ = option_gains(inst, opts, None)
    tried: set[int] = set()   # gangs whose node-level step found nothing better
    # constructive moves first, milliseconds each: every job short of its LP share inserted there (lumpy
    # gangs into whole nodes), running jobs put back where they run, then every job tried on its best
    # few options with the jobs worth least cleared out of the way; under WorkUnits each pass is capped
    # by a count of insertions taken from the request
    t0 = time.perf_counter()
    setup_s = t0 - setup_t0
    gang_share = params.gang_moves_share_planet if len(inst.jobs) >= params.lp_first_min_jobs else params.gang_moves_share
    share = stop.budget(float("inf"), gang_share * max(0.0, deadline - t0))
    # (an insertion's cost grows with the plan: copies and an occupancy map per kept move)
    tries = int(stop.budget(max(1, round(params.moves_det_tries_per_s * limit * min(1.0, 1000 / max(1, len(inst.jobs))))),
                            10**9))
    # each start (the best plan, the LP's roundings) gets the LP insertions and its running jobs put
    # back; the search goes on from the best of them (they agree with the LP the neighbourhoods come from)
    starts = [(best, best_objective)] + list(alternatives or [])
    kept = 0
    top = None
    for i, (start, start_obj) in enumerate(starts):
        end = t0 + share * (i + 1) / len(starts)
        # the running jobs put back get the last part of each slice whatever the insertions took: on a
        # loaded machine the insertions ran to the slice's end and the cheap keep moves never ran
        cut = end - params.keep_moves_share * share / len(starts) if share < float("inf") else end
        pk, k1, g1 = gang_moves(inst, opts, start, lp_x, None, gain0, deadline=cut, min_dpr=params.gang_min_dpr,
                                max_tries=tries)
        pk, k2, g2 = keep_moves(inst, opts, pk, gain0, deadline=end, max_tries=tries)
        if top is None or start_obj + g1 + g2 > top[0]:
            top = (start_obj + g1 + g2, pk, k1 + k2 + (i > 0))
    _, best, kept = top
    # what the insertions gained per second: the rate a CP-SAT step before the option moves must keep
    rate = max(0.0, top[0] - best_objective) / max(1e-3, time.perf_counter() - t0)
    def steps(best: Packing, until: float, count: int, min_rate: float | None = None) -> Packing:
        """CP-SAT neighbourhood steps on `best` until `until` or after `count` steps (or the step budget);
        with `min_rate`, only while each step gains something and at least that much per second (where the
        insertions gained nothing the rate is 0, and a step that gained nothing must not earn the next)."""
        nonlocal neighbourhoods
        done = 0
        last = (time.perf_counter(), stats["improved"])
        while stats["steps"] < max_steps and done < count:
            # a step takes its CP-SAT budget plus what that budget does not bound (the model's build, the
            # repack, drawing the neighbourhood): the most that took so far (at planet size 0.2-0.4 s)
            if stop.stopped(params.lns_min_left_s + overhead[0] + cpsat.load_s(params.cpsat_load_s), until=until):
                break
            cpsat.load()   # where it is not loaded yet: before the step's clock, so the import is no overhead
            if min_rate is not None and done and (
                    gained[0] <= 0.0 or gained[0] < min_rate * (time.perf_counter() - last[0])):
                break
            last = (time.perf_counter(), stats["improved"])
            gained[0] = 0.0
            free = next(neighbourhoods, None)
            if free is None:
                break
            if stop.stopped(params.lns_min_left_s, until=until):
                break   # drawing it took the time
            stats["steps"] += 1
            done += 1
            granted[0] = 0.0
            best = step(best, free, until)
            took = time.perf_counter() - last[0] - granted[0]
            if took > 0:   # the solve ran its budget (one that ended sooner measures nothing)
                overhead[0] = max(overhead[0], took) if measured[0] else took   # the estimate gives way to a measure
                measured[0] = True
        return best

    def step(best: Packing, free: set[int] | tuple, until: float) -> Packing:
        """One CP-SAT step on the neighbourhood `free`: the better of `best` and the step's plan."""
        if isinstance(free, tuple):      # a node-level neighbourhood: some nodes of one pool, exactly
            pool, nodes, free, gang = free
            tried.add(gang)
            seconds = stop.budget(step_s, min(step_s, stop.left(until=until) - overhead[0]))
            granted[0] = seconds
            pk = node_step(inst, opts, best, pool, nodes, free, seconds, stop.deterministic)
            if pk is None or not pk.protected_placed(free):
                return best
            delta = net_of(inst, pk, free) - net_of(inst, best, free)
            if improves(delta):
                best = accept(pk, delta)
                stats["node_improved"] = stats.get("node_improved", 0) + 1
            return best
        inc = incumbent_choice(best)
        fixed = {j: c for j, c in inc.items() if j not in free}
        subset = np.concatenate([opts.by_job[j] for j in sorted(free)]) if free else np.zeros(0, dtype=np.int64)
        if len(subset) == 0:
            return best
        seconds = stop.budget(step_s, min(step_s, stop.left(until=until) - overhead[0]))
        granted[0] = seconds
        res = cpsat.solve_pool_model(inst, opts, subset, inc, seconds, stop, fixed_jobs=fixed, workers=1,
                                     kept_room=_kept_room(inst, opts, best, free))
        if res.status == "OPTIMAL":
            stats["optimal_steps"] += 1
        if res.status not in ("OPTIMAL", "FEASIBLE"):
            return best
        choice = dict(fixed)
        choice.update(res.choice)
        changed = {j for j in free if inc.get(j) != choice.get(j)}
        if not changed:
            return best
        pk = realize_delta(inst, opts, best, choice, changed, gain0)
        if not pk.protected_placed(changed):
            return best
        delta = net_of(inst, pk, changed) - net_of(inst, best, changed)
        if improves(delta):
            best = accept(pk, delta)
        return best

    def accept(pk: Packing, delta: float) -> Packing:
        """`pk`, an improving step's plan, as the new best: counted, and the neighbourhoods drawn again
        around it."""
        nonlocal neighbourhoods
        gained[0] += delta
        stats["improved"] += 1
        neighbourhoods = _neighbourhoods(inst, opts, pk, lp_x, pool_jobs, rng, max_free_jobs, quota_prices,
                                         tried, lp_n, params)
        return pk

    gained = [0.0]
    granted = [0.0]    # the last step's CP-SAT budget
    # the most a step took beyond its CP-SAT budget (its solve gets what is left less that); before the
    # first is measured, an estimate by the request's size (the model's build and the repack pass over the
    # jobs held fixed), or what this set-up took (passes over every option and job) if more
    overhead = [max(setup_s, params.lns_step_overhead_s, params.lns_step_overhead_per_job_s * len(inst.jobs))]
    measured = [False]

    neighbourhoods = _neighbourhoods(inst, opts, best, lp_x, pool_jobs, rng, max_free_jobs, quota_prices, tried, lp_n,
                                     params)
    # integer steps over pools (HiGHS) where the LP disagrees, then that set with the jobs in the pools it could
    # use that lose least by moving: the chains no insertion makes (a job takes another's devices, that one moves to an
    # equivalent pool, a third grows), solved in tens of milliseconds at medium size. Under the wall clock
    # only (HiGHS stops on its time limit)
    mip_rate: tuple[float, float] | None = None   # the integer steps' gain and seconds, where they ran
    if lp_x is not None and not stop.deterministic and params.mip_steps_share > 0:
        t1 = time.perf_counter()
        # first the jobs the relaxation over every job disagrees on, where the plan is far from the bound
        rins = _rins_applies(inst, params) and bound is not None and (
            bound - top[0] >= params.mip_rins_min_gap * max(abs(bound), 1e-9))
        share = params.mip_rins_share if rins else params.mip_steps_share
        until = min(deadline, t1 + share * max(0.0, deadline - t1))
        before = stats["improved"]
        gained[0] = 0.0
        best = _mip_steps(inst, opts, best, lp_x, lp_n, stop, until, params, gain0, accept, stats, rins)
        stats["mip_improved"] = stats["improved"] - before
        if stats.get("mip_steps"):
            mip_rate = (gained[0], time.perf_counter() - t1)
    # a few CP-SAT steps where the LP disagrees, before the option moves, while each gains at least a share of
    # what the gang moves gained per second: a step re-plans dozens of jobs at once, which no insertion finds,
    # and at 1 s the option moves used to take the time before any step ran (medium family seed 37). Only
    # under the wall clock: the rule reads it, and a deterministic plan's step budget is a count of two or so
    early = params.lns_early_steps if lp_x is not None and not stop.deterministic else 0
    if early and bound is not None and bound - top[0] < params.lns_early_min_gap * max(abs(bound), 1e-9):
        early = 0   # the plan is close to the bound already: the option moves' small gains are what is left
    # the rate each step must keep: a share of the insertions' (or a floor set in the parameters), and where
    # that rule is on at all a step that gained nothing never earns the next (the insertions gain nothing when
    # a slow machine leaves them too little time for one, and the rate is then 0)
    min_rate = (max(params.lns_early_rate * rate, params.lns_early_min_rate)
                if params.lns_early_rate > 0 or params.lns_early_min_rate > 0 else None)
    if early and params.lns_early_after_mip and min_rate is not None and mip_rate is not None and (
            mip_rate[0] <= 0.0 or mip_rate[0] < min_rate * mip_rate[1]):
        early = 0   # the integer steps re-planned the LP's disagreements (exactly, at pool level) at less than the
        #             rate the steps must keep: the first CP-SAT step there is held to it as the next would be
    if early:
        t1 = time.perf_counter()
        until = min(deadline, t1 + params.lns_early_share * max(0.0, deadline - t1))
        before = stats["steps"]
        best = steps(best, until, early, min_rate)
        stats["early_steps"] = stats["steps"] - before
    if outside is not None and not stop.deterministic:
        taken = _from_outside(inst, opts, best, outside, deadline, params)
        if taken is not best:
            best = taken
            stats["outside"] = 1
            stats["improved"] += 1
            neighbourhoods = _neighbourhoods(inst, opts, best, lp_x, pool_jobs, rng, max_free_jobs, quota_prices,
                                             tried, lp_n, params)
    t1 = time.perf_counter()
    more = stop.budget(float("inf"), params.option_moves_share * max(0.0, deadline - t1))
    if params.option_moves_fill and not stop.deterministic and (
            deadline - t1 - more < params.lns_min_left_s + overhead[0]):
        more = max(0.0, deadline - t1)   # no CP-SAT step would fit in what they leave: they take it all
    kept_opt = 0
    for _ in range(params.option_moves_passes):   # each pass opens room for the next; stop when one finds nothing
        best, k1, _ = option_moves(inst, opts, best, gain0, deadline=t1 + (1 - params.keep_moves_share) * more,
                                   per_job=params.option_moves_per_job,
                                   max_tries=tries, next_best=params.option_moves_next_best,
                                   in_place=params.option_moves_in_place,
                                   every_target=params.option_moves_every_target,
                                   grow=params.option_moves_grow)
        # the running jobs put back get their part of the pass whatever the insertions took (one insertion
        # with its repairs ran 0.05-0.07 s past their deadline on medium seed 29, and the put-backs that
        # follow a kept move, worth 6-9 there, never ran), within the search's own deadline
        keep_until = t1 + more if stop.deterministic or not k1 else min(
            deadline, max(t1 + more, time.perf_counter() + params.keep_moves_share * more))
        best, k2, _ = keep_moves(inst, opts, best, gain0, deadline=keep_until, max_tries=tries)
        kept_opt += k1 + k2
        if k1 + k2 == 0 or time.perf_counter() > t1 + more:
            break
    stats["gang_moves"] = kept + kept_opt
    stats["improved"] += kept + kept_opt
    if kept_opt:
        neighbourhoods = _neighbourhoods(inst, opts, best, lp_x, pool_jobs, rng, max_free_jobs, quota_prices, tried,
                                         lp_n, params)
    best = steps(best, deadline, 10**9)
    return best, stats


def _from_outside(inst: Instance, opts: Options, best: Packing, outside: Outside, deadline: float,
                  params: EngineParams) -> Packing:
    """`best`, or the plan found beside the search packed, where that is better and keeps every protected job
    placed. Why: the whole-node-cut child's plan was taken only once the search stopped, so the option moves
    never improved on it (apart philly-11: the child's plan 1.9 % above the search's by 0.8 s)."""
    got = outside()
    if got is None:
        return best
    now = score(inst, best.placed_map()).objective
    if got[0] < now + params.cut_beside_inject_margin * abs(now) or time.perf_counter() >= deadline:
        return best
    pk = realize(inst, opts, got[1], deadline=deadline)
    if not pk.protected_placed():
        return best
    return pk if score(inst, pk.placed_map()).objective > now else best


def _mip_steps(inst: Instance, opts: Options, best: Packing, lp_x: np.ndarray, lp_n: np.ndarray | None,
               stop: StoppingCriterion, until: float, params: EngineParams, gain0: np.ndarray, accept,
               stats: dict[str, int], rins: bool = False) -> Packing:
    """Integer steps (`placement.mip_step`) on growing neighbourhoods until `until`: the jobs where the
    LP disagrees with the plan, then those with the jobs in the pools they could use that lose least by
    moving (`_move_loss`), up to each size of `params.mip_step_sizes`; with `rins`, first the jobs the relaxation
    of the step over every job disagrees on (`mip_step.relaxation_disagreements`). Each answer is packed around the jobs that stay
    (`realize_delta`) and from scratch (`realize`, which packs a changed pool whole); the better is kept
    when the canonical objective improves."""
    m = mip_jobs(len(inst.jobs), params)
    if m > params.mip_max_jobs and not rins:
        return _mip_steps_large(inst, opts, best, lp_x, lp_n, stop, until, params, gain0, accept, stats, m)
    sizes = [-1] * (params.mip_rins_steps if rins else 0) + [0, *params.mip_step_sizes]
    for size in sizes:
        if stop.stopped(params.lns_min_left_s, until=until):
            break
        seconds = min(params.mip_rins_step_s if size < 0 else params.mip_step_s, stop.left(until=until))
        if size < 0:     # the jobs the relaxation of the step over every job sets otherwise than the plan
            free = relaxation_disagreements(inst, opts, best, lp_x, seconds, params.mip_rins_per_job)
        else:
            free = set(_by_stake(inst, opts, best, lp_x, lp_n)[:params.mip_max_jobs])
            if size:
                free = _with_occupants(inst, opts, best, free, lp_x, size)
        if not free:
            continue
        got = solve_neighbourhood(inst, opts, best, free, lp_x, min(seconds, stop.left(until=until)),
                                  params.mip_rins_per_job if size < 0 else 1)
        stats["steps"] += 1
        stats["mip_steps"] = stats.get("mip_steps", 0) + 1
        pk = _mip_step_kept(inst, opts, best, free, got, gain0, params, stop, until, accept)
        if pk is not None:
            best = pk
    return best


def _mip_step_kept(inst: Instance, opts: Options, best: Packing, free: set[int], got: dict | None,
                   gain0: np.ndarray, params: EngineParams, stop: StoppingCriterion, until: float,
                   accept) -> Packing | None:
    """The plan after one integer step's answer `got` on `free`, where it improves `best` (packed around the
    jobs that stay, or from scratch where that is better); None where it does not."""
    if got is None:
        return None
    inc = incumbent_choice(best)
    choice = {j: c for j, c in inc.items() if j not in free}
    choice.update(got)
    changed = {j for j in free if inc.get(j) != choice.get(j)}
    if not changed:
        return None
    pk = realize_delta(inst, opts, best, choice, changed, gain0)
    delta = net_of(inst, pk, changed) - net_of(inst, best, changed)
    if len(inst.jobs) <= params.mip_repack_max_jobs and stop.left(until=until) > params.lns_min_left_s:
        whole = realize(inst, opts, choice)
        d2 = score(inst, whole.placed_map()).objective - score(inst, best.placed_map()).objective
        if d2 > delta and whole.protected_placed():
            pk, delta = whole, d2
    if not pk.protected_placed(changed) or not improves(delta):
        return None
    return accept(pk, delta)


def _mip_steps_large(inst: Instance, opts: Options, best: Packing, lp_x: np.ndarray, lp_n: np.ndarray | None,
                     stop: StoppingCriterion, until: float, params: EngineParams, gain0: np.ndarray, accept,
                     stats: dict[str, int], m: int) -> Packing:
    """The integer steps on a large request (`mip_jobs` above the floor): each on the next `m` disagreements by
    stake not yet re-planned (topped up with the occupants of their pools where fewer), for `mip_step_s_per_job`
    a job; a step that keeps nothing is tried again on the first half of its jobs, down to `mip_max_jobs`, and
    one at that size ends them. At most 3 + `mip_more_steps` steps. Why halving: HiGHS on 950 jobs in 0.47 s
    either finds +85,000 or nothing (apart sparse-8 in eight copies, 5 s), and the plan after nothing ended 3
    points lower."""
    done: set[int] = set()
    size = m
    for _ in range(3 + params.mip_more_steps):
        if stop.stopped(params.lns_min_left_s, until=until):
            break
        free = set([j for j in _by_stake(inst, opts, best, lp_x, lp_n) if j not in done][:size])
        if len(free) < size:
            free = _with_occupants(inst, opts, best, free, lp_x, size)
        if not free:
            break
        seconds = min(max(params.mip_step_s, params.mip_step_s_per_job * size), stop.left(until=until))
        got = solve_neighbourhood(inst, opts, best, free, lp_x, seconds, 1)
        stats["steps"] += 1
        stats["mip_steps"] = stats.get("mip_steps", 0) + 1
        pk = _mip_step_kept(inst, opts, best, free, got, gain0, params, stop, until, accept)
        if pk is not None:
            best = pk
            done |= free
        elif size <= params.mip_max_jobs:
            break
        else:
            size = max(params.mip_max_jobs, size // 2)
    return best


def mip_jobs(n_jobs: int, params: EngineParams) -> int:
    """The most disagreements an integer step frees: `mip_max_jobs`, or on a large request a share of its
    jobs up to a cap. Why: at 200 of 4,600 jobs (apart requests in eight copies, 5 s) each step took 0.03-0.1 s
    and the steps together 0.17 s of the search for its fastest gains; 1,000 a step closed 0.8-2.3 points more.
    Not from the LP-first size on (planet): not measured there."""
    if n_jobs >= params.lp_first_min_jobs:
        return params.mip_max_jobs
    return max(params.mip_max_jobs, min(params.mip_jobs_cap, int(params.mip_jobs_share * n_jobs)))


def _rins_applies(inst: Instance, params: EngineParams) -> bool:
    """Whether the integer steps start on the jobs the relaxation over every job disagrees on (a model over
    every job: up to `mip_rins_max_jobs`)."""
    return params.mip_rins_steps > 0 and len(inst.jobs) <= params.mip_rins_max_jobs


def _with_occupants(inst: Instance, opts: Options, best: Packing, free: set[int], lp_x: np.ndarray,
                    size: int) -> set[int]:
    """`free` with the jobs now in the pools its jobs could take (their options in the integer step),
    those losing least per device by moving first, up to `size` jobs: those that must move for a chain
    to close."""
    cols = step_options(inst, opts, best, sorted(free), lp_x, 1)
    pools = set(opts.pool[cols].tolist())
    occ = [j for j, o in best.choice.items() if j not in free and int(opts.pool[o]) in pools]
    occ.sort(key=lambda j: (_move_loss(inst, opts, best, j), j))
    return set(free) | set(occ[:max(0, size - len(free))])


def _move_loss(inst: Instance, opts: Options, best: Packing, j: int) -> float:
    """What job j loses per device at most by moving to its best other option on as many replicas (0 where
    an equal-value pool exists: a premium gang worth much per device moves at no loss, and is what a chain
    most often needs out of the way)."""
    o = best.choice[j]
    reps = sum(best.nodes[j].values())
    ol = opts.by_job[j]
    ol = ol[(ol != o) & ~opts.keep[ol]]
    alt = float((opts.coef[ol] * np.minimum(opts.hi[ol], reps)).max()) if len(ol) else 0.0
    return max(0.0, float(opts.coef[o]) * reps - alt) / max(1, reps * int(opts.dpr[o]))


def _quota_neighbourhoods(inst: Instance, opts: Options, best: Packing, quota_prices: np.ndarray | None,
                          pool_jobs: list[list[int]], rng: random.Random, cap: int) -> Iterator[set[int]]:
    """One set per binding quota (price > 0, dearest first): every job of that (tenant, tier),
    lumpy gangs first, then the jobs now in the pools its gangs could use. Which whole gangs
    fill a quota is an integer choice the LP rounding and pool pairs miss. Built one at a time as
    the search asks: at planet size each walks pools of thousands of jobs (all of them up front took
    5 s on a loaded machine, past the deadline, before the first step)."""
    if quota_prices is None or not len(quota_prices) or not (quota_prices > 0).any():
        return
    keys = list(inst.quotas)
    members: dict[tuple[str, str], list[int]] = {}
    for info in inst.jobs:
        if len(opts.by_job[info.index]):
            members.setdefault(info.key, []).append(info.index)
    for q in np.argsort(-quota_prices, kind="stable").tolist():
        if quota_prices[q] <= 0 or keys[q] not in members:
            continue
        jobs = sorted(members[keys[q]], key=lambda j: (-inst.jobs[j].dpr * inst.jobs[j].hi, j))
        free = set(jobs[:cap])
        pools = sorted({int(p) for j in jobs[:cap] if inst.jobs[j].dpr >= 4 for p in opts.pool[opts.by_job[j]]})
        rng.shuffle(pools)
        for p in pools:
            room = [j for j in pool_jobs[p] if j in best.choice and j not in free]
            rng.shuffle(room)
            free.update(room[: max(0, cap - len(free))])
            if len(free) >= cap:
                break
        yield free


def _gang_neighbourhoods(inst: Instance, opts: Options, best: Packing, lp_x: np.ndarray | None,
                         cap: int, tried: set[int]) -> Iterator[tuple[int, list[int], set[int], int]]:
    """Lumpy gangs short of their best: per gang (4+ devices a replica) that the incumbent leaves
    unplaced or below its maximum where the LP would grow it, the gang and the jobs now on the
    nodes of the pool it wants, least valuable per device first, so that a model can hand it
    whole nodes (running jobs moved or stopped)."""
    on_pool: dict[int, list[int]] = {}
    for j, o in best.choice.items():
        on_pool.setdefault(int(opts.pool[o]), []).append(j)
    per_dev = {j: float(opts.coef[o]) / max(1, int(opts.dpr[o])) for j, o in best.choice.items()}
    wants = []
    for info in inst.jobs:
        olist = opts.by_job[info.index]
        if info.dpr < 4 or len(olist) == 0 or info.index in tried:
            continue
        room = best.quota_room(info.index)
        if room is not None and room + info.dpr * sum(best.nodes.get(info.index, {}).values()) < info.lo * info.dpr:
            continue   # its quota is full of other work: a pool's nodes cannot make room for it
        r = sum(best.nodes[info.index].values()) if info.index in best.choice else 0
        if lp_x is not None and lp_x[olist].max() > 1e-6:
            o = int(olist[int(np.argmax(lp_x[olist]))])
        elif info.index in best.choice:
            o = best.choice[info.index]
        else:
            o = int(olist[int(np.argmax(opts.coef[olist]))])
        short = int(opts.hi[o]) - r
        if room is not None:
            short = min(short, room // info.dpr)
        if short > 0 and opts.coef[o] > 0:
            wants.append((-float(opts.coef[o]) * short, info.index, int(opts.pool[o])))
    # each gang's nodes only as the search asks (it takes the first few): at planet size all of them up
    # front, a walk over a pool's jobs per gang, took 2.2 s of a 10 s limit past the search's stop
    for _, j, p in sorted(wants):
        nodes, jobs = _gang_nodes(inst, best, on_pool.get(p, []), per_dev, j, p, cap)
        if nodes and (len(jobs) > 1 or int(best.free[nodes].max()) >= inst.jobs[j].dpr):
            yield p, nodes, jobs, j


def _gang_nodes(inst: Instance, best: Packing, placed: list[int], per_dev: dict[int, float], gang: int,
                pool: int, cap: int) -> tuple[list[int], set[int]]:
    """The nodes of `pool` a gang would take (its own, then the emptiest and cheapest to clear,
    never a protected job's) and the jobs that sit only on them: a small exact model."""
    info = inst.jobs[gang]
    p = inst.pools[pool]
    per = p.dmax // info.dpr
    if per <= 0:
        return [], set()
    need = -(-info.hi // per)
    k = min(len(p.nodes), need + 2 + need // 2)
    cost = {n: 0.0 for n in p.nodes}
    where: dict[int, list[int]] = {}
    for j in placed:
        for n, c in best.nodes[j].items():
            where.setdefault(n, []).append(j)
            cost[n] += 1e12 if inst.jobs[j].protected else per_dev[j] * c * inst.jobs[j].dpr + 1e-6
    for n in best.nodes.get(gang, {}):
        cost[n] = -1.0
    nodes = sorted(p.nodes, key=lambda n: (cost[n], n))[:k]
    chosen = set(nodes)
    jobs = {gang}
    for n in nodes:
        for j in where.get(n, []):
            if len(jobs) < cap and j not in jobs and set(best.nodes[j]) <= chosen:
                jobs.add(j)
    return sorted(nodes), jobs


def _disagreeing_jobs(inst: Instance, opts: Options, best: Packing, lp_x: np.ndarray,
                      lp_n: np.ndarray | None) -> set[int]:
    """Jobs where the LP and the incumbent disagree: the LP is fractional on the job, leans on another
    option (the first of its largest), or gives it more replicas. In whole-array passes: a loop over
    20,000 jobs with small numpy calls each took 5 s on a loaded machine, past the deadline."""
    n = len(inst.jobs)
    job = opts.job.astype(np.int64)
    has = np.bincount(job, minlength=n)[:n] > 0
    x = np.asarray(lp_x, dtype=float)
    xmax = np.full(n, -np.inf)
    np.maximum.at(xmax, job, x)
    at_max = x == xmax[job]
    pick = np.full(n, len(opts), dtype=np.int64)      # options are grouped by job, ascending: argmax's tie rule
    np.minimum.at(pick, job[at_max], np.flatnonzero(at_max))
    pick = np.where(xmax > 1e-6, pick, -1).tolist()
    frac = (np.bincount(job, weights=((x > 1e-6) & (x < 1 - 1e-6)).astype(float), minlength=n)[:n] > 0).tolist()
    out = set()
    for j in np.flatnonzero(has).tolist():
        mine = best.choice.get(j)
        lp_pick = pick[j] if pick[j] >= 0 else None
        fewer = lp_n is not None and mine is not None and lp_pick == mine and \
            lp_n[mine] > sum(best.nodes[j].values()) + 0.5
        if frac[j] or lp_pick != mine or fewer:
            out.add(j)
    return out


def _by_stake(inst: Instance, opts: Options, best: Packing, lp_x: np.ndarray, lp_n: np.ndarray | None) -> list[int]:
    """The jobs where the LP disagrees with the incumbent, most value at stake first (what the LP gives
    the job less what the incumbent does)."""
    disagree = _disagreeing_jobs(inst, opts, best, lp_x, lp_n)
    if not disagree:
        return []
    stake = {}
    lp_vals = np.bincount(opts.job.astype(np.int64), weights=opts.coef * (lp_n if lp_n is not None else lp_x),
                          minlength=len(inst.jobs)).tolist()
    for j in disagree:
        o = best.choice.get(j)
        mine = float(opts.coef[o]) * sum(best.nodes[j].values()) if o is not None else 0.0
        stake[j] = lp_vals[j] - mine
    return sorted(disagree, key=lambda j: (-stake[j], j))


def _neighbourhoods(inst: Instance, opts: Options, best: Packing, lp_x: np.ndarray | None,
                    pool_jobs: list[list[int]], rng: random.Random, cap: int,
                    quota_prices: np.ndarray | None = None, tried: set[int] | None = None,
                    lp_n: np.ndarray | None = None, params: EngineParams = DEFAULT):
    """Yield sets of jobs to free: first where the LP disagrees with the incumbent, then each
    binding quota's jobs, then pools (quota sets again between rounds of pools)."""
    tried = set() if tried is None else tried
    quota_sets = _quota_neighbourhoods(inst, opts, best, quota_prices, pool_jobs, rng, cap)
    if lp_x is not None:
        d = _by_stake(inst, opts, best, lp_x, lp_n)
        for k in range(0, len(d), cap):
            yield set(d[k:k + cap])
    # the gangs are drawn with `tried` as it stands here: only their own steps add to it
    yield from itertools.islice(_gang_neighbourhoods(inst, opts, best, lp_x, params.lns_gang_free_jobs, tried),
                                params.lns_gang_sets)
    yield from quota_sets
    order = list(range(len(inst.pools)))
    while True:
        rng.shuffle(order)
        for k in range(0, len(order), 2):
            jobs: set[int] = set()
            for p in order[k:k + 2]:
                jobs.update(pool_jobs[p])
            jobs = set(rng.sample(sorted(jobs), cap)) if len(jobs) > cap else jobs
            if jobs:
                yield jobs
