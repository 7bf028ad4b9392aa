"""Warm re-planning: a request that differs from the previous one by a small share of its jobs,
answered by reusing what the previous solve learned rather than solving it again from nothing.

Why: a control plane asks every epoch, and between two epochs a planet fleet sees about 1 % of its
jobs arrive or finish while the rest run where the last plan put them. A full solve spends its whole
limit (10 s at planet size) rediscovering a plan that is 99 % the same; this path answers in about the
time it takes to compile the request and score the plan.

What a solve learned is a plain value, `WarmState`, which the caller keeps and hands back with the next
request (the engine keeps nothing between calls; the service keeps one per fleet): the fleet's index and
digest, a digest of what prices every job (epoch, quotas, policy), every job's attributes, its running
state in the request and its placement in the plan, and the prices of the plan's bound (per pool, per
quota, the migration budget's).

The warm path (`replan`):
1. jobs still present keep their placement where it is still valid for the new request (the contract
   decides: `Packing.try_keep` / `place_exact` check nodes, room, quotas, the budget), protected jobs
   first; completed jobs are gone;
2. arrivals, jobs whose attributes or running state changed otherwise than the plan said, jobs whose
   placement no longer fits and jobs that were waiting are placed in order of value per device at the
   previous prices (a job no priced option pays for waits for a second pass at face value), then
   leftover room is grown into;
3. a short improvement: gang insertion (`placement.gang_insert.insert_gang`) of the new and changed
   jobs still short of their best option, kept only when the canonical objective improves;
4. the bound is the Lagrangian bound of the NEW request at the previous prices (weak duality: valid for
   any non-negative prices), and the integer knapsack bound at the same prices where it fits.

It falls back to the full solve (`placement.plan`) when the fleet or the pricing context differs, when
more than `max_share` of the jobs changed, after `max_chain` warm re-plans in a row, when a protected
job cannot be kept placed, and always for `policy.deterministic` plans and backfill plans.
"""

from __future__ import annotations

import hashlib
import json
import time
from collections.abc import Mapping
from dataclasses import dataclass
from typing import NamedTuple

import numpy as np

from models.collector import collector_paused
from models.fleet_index import FleetIndex
from models.request import Fleet, Job, Placement, PlanRequest
from models.response import Assignment, Breakdown, PlanResponse, ReplanStats, SolverStats
from placement.bound import Bound, _keys, lagrangian_value, priced_values
from placement.candidates import Options, build_options
from placement.gang_insert import insert_gang, pool_occupancy
from placement.greedy import _place_best, grow_all, option_gains
from placement.instance import Instance, compile_instance
from placement.knapsack_bound import integer_bound
from placement.packing import Packing, fill_order
from placement.params import DEFAULT, EngineParams
from placement.plan import GC_PAUSE_MIN_JOBS, _plan
from placement.reasons import unplaced_reasons
from placement.score import improves, net_of, score


@dataclass(frozen=True)
class ReplanParams:
    """When a warm re-plan may answer, and how long its improvement and bound may take."""

    max_share: float = 0.01         # (arrivals + completions + changed jobs) / previous jobs, at most
    max_chain: int = 20             # warm re-plans in a row before a full solve refreshes the prices
    search_share: float = 0.02      # the improvement's seconds: this share of the time limit ...
    search_max_s: float = 0.15      # ... at most this many
    bound_share: float = 0.01       # the integer knapsack bound's seconds: this share of the limit ...
    bound_max_s: float = 0.1        # ... at most this many (the Lagrangian bound is always computed)


REPLAN_DEFAULT = ReplanParams()


class JobMemory(NamedTuple):
    """One job as the previous solve saw it: attributes, running state in its request, placement in its plan."""

    static: tuple                                   # `_static(job)`
    before: tuple[str, str, Mapping[str, int]] | None   # its `current` then: (cluster, accelerator, nodes)
    placed: tuple[str, str, Mapping[str, int]] | None   # where the plan put it (None: waiting)


@dataclass(frozen=True)
class WarmState:
    """What a solve learned, for re-planning the next request of the same fleet warm. A plain value
    (picklable): nothing in it is changed after it is made, by the engine or by its holder (arrays are
    read-only; the maps and the fleet's index are shared between states, read them only)."""

    fleet_digest: str
    context_digest: str
    fleet: FleetIndex                               # the compiled fleet, shared read-only
    jobs: Mapping[str, JobMemory]                   # job id -> what the solve saw and decided
    pool_prices: np.ndarray                         # per pool of `fleet` (its order), >= 0
    quota_prices: Mapping[tuple[str, str], float]   # (tenant, tier) -> price, >= 0
    budget_price: float                             # >= 0
    objective: float                                # the plan's canonical objective
    chain: int                                      # warm re-plans since the last full solve (0: a full solve)


class Delta(NamedTuple):
    """How a request differs from the one a `WarmState` was learned on (job indices of the new request)."""

    keep: list[int]        # running where the plan put them: stay
    move: list[int]        # the plan not applied yet (running state as before): its placement again
    waiting: list[int]     # waiting before and after (or still running where the plan stopped them)
    changed: list[int]     # attributes or running state differ from what the plan left
    arrivals: list[int]
    completions: int
    share: float
    statics: list[tuple]   # `_static` of every job of the new request, in order


def fleet_digest(fleet: Fleet) -> str:
    """The fleet's content digest (regions, links, clusters, node groups, down nodes, in request order)."""
    return hashlib.sha256(fleet.model_dump_json().encode()).hexdigest()


def context_digest(req: PlanRequest) -> str:
    """Everything besides the fleet and the jobs that prices a job: epoch, quotas and the policy, less
    the time limit and `deterministic` (how long and how to solve, not what)."""
    pol = req.policy.model_dump(mode="json", exclude={"time_limit_s", "deterministic"})
    quotas = sorted((q.tenant, q.tier, q.devices) for q in req.quotas)
    text = json.dumps([req.epoch_s, quotas, pol], sort_keys=True)
    return hashlib.sha256(text.encode()).hexdigest()


def _static(job: Job) -> tuple:
    """A job's attributes that its options depend on, besides where it runs now."""
    r = job.replicas
    return (job.tenant, job.tier, job.priority, r.min, r.max, None if r.allowed is None else tuple(r.allowed),
            job.devices_per_replica, tuple(job.speed.items()), job.data_region,
            None if job.regions is None else tuple(job.regions), job.checkpoint_gb)


def _same(cur: Placement | None, p: tuple[str, str, Mapping[str, int]] | None) -> bool:
    if cur is None or p is None:
        return cur is None and p is None
    return cur.cluster == p[0] and cur.accelerator == p[1] and cur.nodes == p[2]


def plan_warm(req: PlanRequest, warm: WarmState | None = None, params: EngineParams = DEFAULT,
              started: float | None = None, replan_params: ReplanParams = REPLAN_DEFAULT
              ) -> tuple[PlanResponse, WarmState | None]:
    """The plan of `req` and what its solve learned: warm from `warm` where it applies (the same fleet
    and pricing context, at most `max_share` of the jobs changed; see the module's docstring), else
    the full solve. `policy.deterministic` and backfill plans always take the full solve and learn
    nothing (None), so a deterministic plan never depends on an earlier request. Same precondition and
    `started` as `placement.plan`."""
    with collector_paused(len(req.jobs) >= GC_PAUSE_MIN_JOBS):
        if req.policy.deterministic or req.policy.mode != "epoch":
            return _plan(req, use_cpsat=True, params=params, started=started), None
        if warm is not None:
            delta = diff(req, warm, replan_params)
            if delta is not None:
                got = replan(req, warm, delta, params, replan_params, started)
                if got is not None:
                    return got
        learned: dict = {}
        resp = _plan(req, use_cpsat=True, params=params, started=started, learned=learned)
        return resp, _remember(req, resp, learned, chain=0)


def diff(req: PlanRequest, warm: WarmState, rp: ReplanParams = REPLAN_DEFAULT) -> Delta | None:
    """How `req` differs from the request `warm` was learned on; None where it may not be re-planned
    warm (another fleet or pricing context, too large a change, too long a chain)."""
    if warm.chain >= rp.max_chain:
        return None
    if fleet_digest(req.fleet) != warm.fleet_digest or context_digest(req) != warm.context_digest:
        return None
    mem = warm.jobs
    keep: list[int] = []
    move: list[int] = []
    waiting: list[int] = []
    changed: list[int] = []
    arrivals: list[int] = []
    statics: list[tuple] = []
    seen = 0
    for j, job in enumerate(req.jobs):
        st = _static(job)
        statics.append(st)
        m = mem.get(job.id)
        if m is None:
            arrivals.append(j)
            continue
        seen += 1
        if st != m.static:
            changed.append(j)
            continue
        cur = job.current
        if m.placed is not None:
            if _same(cur, m.placed):
                keep.append(j)
            elif _same(cur, m.before):
                move.append(j)
            else:
                changed.append(j)
        elif cur is None or _same(cur, m.before):
            waiting.append(j)
        else:
            changed.append(j)
    completions = len(mem) - seen
    share = (len(arrivals) + completions + len(changed)) / max(1, len(mem))
    if share > rp.max_share * (1 + 1e-12):
        return None
    return Delta(keep, move, waiting, changed, arrivals, completions, share, statics)


def replan(req: PlanRequest, warm: WarmState, delta: Delta, params: EngineParams = DEFAULT,
           rp: ReplanParams = REPLAN_DEFAULT, started: float | None = None
           ) -> tuple[PlanResponse, WarmState] | None:
    """The warm path (module docstring); None where it cannot give a valid plan (a protected job that
    cannot be kept placed): the caller then runs the full solve."""
    t0 = time.perf_counter() if started is None else started
    limit = req.policy.time_limit_s
    phases: dict[str, float] = {}
    last = [t0]

    def lap(name: str) -> None:
        now = time.perf_counter()
        phases[name] = round(phases.get(name, 0.0) + now - last[0], 4)
        last[0] = now

    if started is not None:
        lap("parse")
    inst = compile_instance(req, warm.fleet)
    opts = build_options(inst)
    lap("compile")
    if any(i.protected and i.index in opts.no_option_reason for i in inst.jobs):
        return None
    pk, redo = _carry_over(inst, opts, delta, warm.jobs)
    kept = len(pk.choice)
    lap("carry_over")
    qkeys = _keys(inst)[0]
    qp = np.array([warm.quota_prices.get(k, 0.0) for k in qkeys], dtype=float)
    gain0, _ = option_gains(inst, opts, None)
    todo = sorted(set(redo) | set(delta.changed) | set(delta.arrivals) | set(delta.waiting))
    if not _fill(inst, opts, pk, todo, warm.pool_prices, qp, warm.budget_price, gain0):
        return None
    lap("fill")
    search_end = time.perf_counter() + min(rp.search_max_s, rp.search_share * limit)
    pk, moves = _improve(inst, opts, pk, sorted(set(redo) | set(delta.changed) | set(delta.arrivals)), gain0,
                         search_end)
    phases["gang_moves"] = moves
    lap("search")
    sc = score(inst, pk.placed_map())
    lap("score")
    bound = Bound(lagrangian_value(inst, opts, warm.pool_prices, qp, warm.budget_price)[0], "lagrangian",
                  warm.pool_prices, quota_prices=qp, budget_price=warm.budget_price)
    ib = integer_bound(inst, opts, warm.pool_prices, qp, warm.budget_price,
                       deadline=time.perf_counter() + min(rp.bound_max_s, rp.bound_share * limit))
    if ib is not None and ib.value < bound.value:
        bound = Bound(ib.value, ib.method, bound.prices, quota_prices=qp, budget_price=warm.budget_price)
    lap("bound")
    unplaced = unplaced_reasons(inst, opts, pk)
    obj = sc.objective
    ub = max(bound.value, obj)   # the bound is proven >= every valid plan; this only guards float noise
    gap = (ub - obj) / max(abs(ub), 1e-9)
    placed = sc.placed
    assignments = [Assignment.model_construct(job=inst.jobs[j].job.id, cluster=c, accelerator=a, nodes=n)
                   for j, (c, a, n) in sorted(placed.items())]
    stats = ReplanStats(arrivals=len(delta.arrivals), completions=delta.completions, changed=len(delta.changed),
                        share=round(delta.share, 6), kept=kept, chain=warm.chain + 1)
    lap("response")
    resp = PlanResponse.model_construct(
        plan_id=None, status="optimal" if gap <= params.optimal_gap else "feasible", objective=obj, bound=ub,
        gap=gap, breakdown=Breakdown(value=sc.value, disruption=sc.disruption, spread=sc.spread),
        solve_s=round(time.perf_counter() - t0, 4), assignments=assignments, actions=sc.actions,
        unplaced=unplaced,
        stats=SolverStats(engine="replan", cpsat_status=None, bound_method=bound.method, jobs=len(inst.jobs),
                          options=len(opts), cpsat_variables=0, phases_s=phases, replan=stats))
    state = _state(req, placed, warm.fleet, warm.fleet_digest, warm.context_digest, warm.pool_prices,
                   warm.quota_prices, warm.budget_price, obj, warm.chain + 1, delta.statics)
    return resp, state


def _carry_over(inst: Instance, opts: Options, delta: Delta, mem: Mapping[str, JobMemory]
                ) -> tuple[Packing, list[int]]:
    """The previous plan's placements of the jobs still present, where still valid (protected jobs
    first); returns the packing and the jobs whose placement could not be carried over."""
    pk = Packing(inst, opts)
    redo: list[int] = []
    jobs = inst.jobs
    targets = [(j, True) for j in delta.keep] + [(j, False) for j in delta.move]
    targets.sort(key=lambda t: (not jobs[t[0]].protected, t[0]))
    for j, running_there in targets:
        if running_there:
            ok = pk.try_keep(j)
        else:
            ok = _place_planned(inst, opts, pk, j, mem[jobs[j].job.id].placed)
        if not ok:
            redo.append(j)
    return pk, redo


def _place_planned(inst: Instance, opts: Options, pk: Packing, j: int,
                   planned: tuple[str, str, Mapping[str, int]]) -> bool:
    """Job j (whose plan was not applied yet: it runs, or waits, as before) where the plan put it."""
    cluster, accel, nodes = planned
    cur = inst.jobs[j].job.current
    if cur is not None and cur.cluster == cluster and cur.accelerator == accel and cur.nodes == nodes:
        return pk.try_keep(j)
    p = inst.pool_of.get((cluster, accel))
    if p is None:
        return False
    olist = opts.by_job[j]
    hit = olist[(opts.pool[olist] == p) & ~opts.keep[olist]]
    if not len(hit):
        return False
    index = inst.node_index
    return pk.place_exact(int(hit[0]), {index[n]: k for n, k in nodes.items()})


def _fill(inst: Instance, opts: Options, pk: Packing, todo: list[int], pool_prices: np.ndarray,
          quota_prices: np.ndarray, budget_price: float, gain0: np.ndarray) -> bool:
    """Place the jobs in `todo` that are not placed yet: protected ones first (wherever they fit: the
    contract's constraint 5; False when one cannot be), then the rest by value per device at the
    previous prices, placed only where a priced option pays, then what is left at face value, then
    leftover room grown into. Room only shrinks while a pass fills it: a job that fits nowhere is skipped."""
    jobs = inst.jobs
    rest = np.array([j for j in todo if j not in pk.choice], dtype=np.int64)
    if not len(rest):
        grow_all(pk)
        return True
    prot = [int(j) for j in rest if jobs[j].protected]
    for j in prot:
        if not pk.try_keep(j):
            _place_best(pk, j, gain0, require_positive=False)
        if j not in pk.choice:
            return False
    rest = rest[[not jobs[j].protected for j in rest.tolist()]]
    gain_p, reps_p = priced_values(inst, opts, pool_prices, quota_prices, budget_price)
    dens = np.full(len(jobs), -np.inf)
    if len(opts):
        np.maximum.at(dens, opts.job, gain_p / np.maximum(reps_p * opts.dpr, 1))
    rest = rest[np.lexsort((rest, -dens[rest]))]
    for j in fill_order(pk, rest):
        _place_best(pk, j, gain_p, require_positive=True)
    left = rest[[j not in pk.choice for j in rest.tolist()]] if len(rest) else rest
    for j in fill_order(pk, left):
        _place_best(pk, j, gain0, require_positive=False)
    grow_all(pk)
    return True


def _improve(inst: Instance, opts: Options, pk: Packing, jobs: list[int], gain0: np.ndarray,
             deadline: float) -> tuple[Packing, int]:
    """Gang insertion of each job in `jobs` short of its most valuable option (most value missing
    first), the occupants worth least cleared; a move is kept only when the canonical objective of the
    jobs it touched improves. Stops at `deadline`. Returns the plan and the moves kept."""
    wants = []
    for j in jobs:
        olist = opts.by_job[j]
        if not len(olist):
            continue
        olist = olist[~opts.keep[olist] & (opts.coef[olist] > 0)]
        if not len(olist):
            continue
        o = int(olist[int(np.argmax(opts.coef[olist] * opts.hi[olist]))])
        r = sum(pk.nodes[j].values()) if j in pk.choice else 0
        now = float(opts.coef[pk.choice[j]]) * r if j in pk.choice else 0.0
        missing = float(opts.coef[o]) * int(opts.hi[o]) - now
        if missing > 1e-9 * max(1.0, abs(now)):
            wants.append((-missing, j, o))
    if not wants:
        return pk, 0
    kept = 0
    occupancy = pool_occupancy(inst, opts, pk)
    for _, j, o in sorted(wants):
        if time.perf_counter() > deadline:
            break
        goal = int(opts.hi[o])
        for target in dict.fromkeys((goal, int(opts.lo[o]) + (goal - int(opts.lo[o])) // 2, int(opts.lo[o]))):
            moved = insert_gang(inst, opts, pk, j, o, target, gain0, occupancy)
            if moved is None:
                continue
            cand, touched = moved
            delta = sum(net_of(inst, cand, (k,)) - net_of(inst, pk, (k,)) for k in touched)
            if improves(delta):
                pk = cand
                kept += 1
                occupancy = pool_occupancy(inst, opts, pk)
                break
    return pk, kept


def _remember(req: PlanRequest, resp: PlanResponse, learned: dict, chain: int) -> WarmState | None:
    """The warm state of a full solve (None where it gave no plan to start from: infeasible)."""
    if "packing" not in learned or resp.status == "infeasible":
        return None
    inst: Instance = learned["inst"]
    bound: Bound = learned["bound"]
    pk: Packing = learned["packing"]
    keys = _keys(inst)[0]
    qp = bound.quota_prices if bound.quota_prices is not None else np.zeros(len(keys))
    quota_prices = {k: float(max(0.0, v)) for k, v in zip(keys, qp)}
    pool_prices = np.maximum(np.asarray(bound.prices, dtype=float), 0.0)
    return _state(req, pk.placed_map(), inst.fleet, fleet_digest(req.fleet), context_digest(req),
                  pool_prices, quota_prices, max(0.0, float(bound.budget_price)), float(resp.objective), chain,
                  [_static(job) for job in req.jobs])


def _state(req: PlanRequest, placed: dict[int, tuple[str, str, dict[str, int]]], fleet: FleetIndex,
           fdigest: str, cdigest: str, pool_prices: np.ndarray, quota_prices: Mapping[tuple[str, str], float],
           budget_price: float, objective: float, chain: int, statics: list[tuple]) -> WarmState:
    """A `WarmState` of the plan `placed` (job index -> placement) of `req`."""
    mem: dict[str, JobMemory] = {}
    for j, job in enumerate(req.jobs):
        cur = job.current
        mem[job.id] = JobMemory(statics[j], None if cur is None else (cur.cluster, cur.accelerator, cur.nodes),
                                placed.get(j))
    prices = np.array(pool_prices, dtype=float)
    prices.setflags(write=False)
    return WarmState(fdigest, cdigest, fleet, mem, prices, dict(quota_prices), float(budget_price), objective, chain)
