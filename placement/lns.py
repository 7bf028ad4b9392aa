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

import random

import numpy as np

from placement.candidates import Options
from placement.cpsat import solve_pool_model
from placement.greedy import option_gains
from placement.instance import Instance
from placement.packing import Packing
from placement.params import DEFAULT, EngineParams
from placement.realize import realize_delta
from placement.score import job_terms
from placement.stop import StoppingCriterion


def incumbent_choice(pk: Packing) -> dict[int, tuple[int, int]]:
    return {j: (o, sum(pk.nodes[j].values())) for j, o in pk.choice.items()}


def _kept_room(inst: Instance, opts: Options, pk: Packing) -> np.ndarray:
    """Devices per node left once the jobs that keep their exact placement are counted."""
    room = np.where(inst.node_up, inst.node_devices, 0).astype(np.int64)
    for j, o in pk.choice.items():
        if opts.keep[o]:
            info = inst.jobs[j]
            for n, k in pk.nodes[j].items():
                room[n] -= k * info.dpr
    return room


def _objective_of(inst: Instance, pk: Packing, jobs: set[int]) -> float:
    total = 0.0
    for j in jobs:
        v, d, p = job_terms(inst, j, pk.placement_of(j))
        total += v - d - p
    return total


def lns(inst: Instance, opts: Options, best: Packing, deadline: float, lp_x: np.ndarray | None,
        stop: StoppingCriterion, params: EngineParams = DEFAULT) -> tuple[Packing, dict[str, int]]:
    """Improve `best` until `stop` says so (at `deadline`, or after a step count when it counts
    work); returns the best plan and counters (steps, improvements, steps CP-SAT solved to optimality)."""
    max_free_jobs = params.lns_max_free_jobs
    rng = random.Random(len(inst.jobs) * 7919 + len(opts))
    stats = {"steps": 0, "improved": 0, "optimal_steps": 0}
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

    neighbourhoods = _neighbourhoods(inst, opts, best, lp_x, pool_jobs, rng, max_free_jobs)
    while stats["steps"] < max_steps:
        if stop.stopped(params.lns_min_left_s, until=deadline):
            break
        free = next(neighbourhoods, None)
        if free is None:
            break
        stats["steps"] += 1
        inc = incumbent_choice(best)
        fixed = {j: c for j, c in inc.items() if j not in free}
        subset = np.concatenate([opts.by_job[j] for j in sorted(free)]) if free else np.zeros(0, dtype=np.int64)
        if len(subset) == 0:
            continue
        seconds = stop.budget(step_s, min(step_s, stop.left(until=deadline)))
        res = solve_pool_model(inst, opts, subset, inc, seconds, stop, fixed_jobs=fixed, workers=1,
                               kept_room=_kept_room(inst, opts, best))
        if res.status == "OPTIMAL":
            stats["optimal_steps"] += 1
        if res.status not in ("OPTIMAL", "FEASIBLE"):
            continue
        choice = dict(fixed)
        choice.update(res.choice)
        changed = {j for j in free if inc.get(j) != choice.get(j)}
        if not changed:
            continue
        pk = realize_delta(inst, opts, best, choice, changed, gain0)
        if not all(j in pk.choice for j in changed if inst.jobs[j].protected):
            continue
        delta = _objective_of(inst, pk, changed) - _objective_of(inst, best, changed)
        if delta > 1e-9 * max(1.0, abs(delta)):
            best = pk
            stats["improved"] += 1
            neighbourhoods = _neighbourhoods(inst, opts, best, lp_x, pool_jobs, rng, max_free_jobs)
    return best, stats


def _neighbourhoods(inst: Instance, opts: Options, best: Packing, lp_x: np.ndarray | None,
                    pool_jobs: list[list[int]], rng: random.Random, cap: int):
    """Yield sets of jobs to free: first where the LP disagrees with the incumbent, then pools."""
    if lp_x is not None:
        disagree = set()
        for j in range(len(inst.jobs)):
            olist = opts.by_job[j]
            if len(olist) == 0:
                continue
            xs = lp_x[olist]
            mine = best.choice.get(j)
            lp_pick = int(olist[int(np.argmax(xs))]) if xs.max() > 1e-6 else None
            frac = bool(((xs > 1e-6) & (xs < 1 - 1e-6)).any())
            if frac or lp_pick != mine:
                disagree.add(j)
        if disagree:
            d = sorted(disagree)
            rng.shuffle(d)
            for k in range(0, len(d), cap):
                yield set(d[k:k + cap])
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
