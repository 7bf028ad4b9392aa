"""Warm re-planning: a request that differs from the previous one by a small share of its jobs,
answered by reusing what the previous solve learned rather than solving it again from nothing.

Why: a control plane asks every epoch, and between two epochs a planet fleet sees about 1 % of its
jobs arrive or finish while the rest run where the last plan put them. A full solve spends its whole
limit (10 s at planet size) rediscovering a plan that is 99 % the same; this path answers in about the
time it takes to compile the request and score the plan.

What a solve learned is a plain value, `WarmState`, which the caller keeps and hands back with the next
request (the engine keeps nothing between calls; the service keeps one per fleet): the fleet's index and
digest, a digest of what prices every job (epoch, quotas, policy), the request as compiled with its
options (every job's attributes and running state then), every job's placement in the plan, and the
prices of the plan's bound (per pool, per quota, the migration budget's).

The warm path (`replan`):
1. jobs still present keep their placement where it is still valid for the new request (the contract
   decides: `Packing.keep_many` / `place_exact` check nodes, room, quotas, the budget), protected jobs
   first; completed jobs are gone; only the jobs not as they were are compiled again (`_compile`);
2. arrivals, jobs whose attributes or running state changed otherwise than the plan said, jobs whose
   placement no longer fits and the waiting jobs with an option where room was freed are placed in
   order of value per device at the previous prices (a job no priced option pays for waits for a second
   pass at face value), then leftover room is grown into;
3. a short improvement: gang insertion (`placement.gang_insert.insert_gang`) of the new and changed
   jobs still short of their best option, kept only when the canonical objective improves;
4. the bound is the Lagrangian bound of the NEW request at the previous prices (weak duality: valid for
   any non-negative prices), and the integer knapsack bound at the same prices where it fits.

It falls back to the full solve (`placement.plan`) when the fleet or the pricing context differs, when
more than `max_share` of the jobs changed, after `max_chain` warm re-plans in a row, when a protected
job cannot be kept placed, and always for `policy.deterministic` plans and backfill plans.
"""

from __future__ import annotations

import dataclasses
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
from models.response import Action, Assignment, Breakdown, PlanResponse, ReplanStats, SolverStats, built
from placement import contract
from placement.bound import Bound, _keys, lagrangian_value, priced_values
from placement.candidates import Options, build_options, job_max, job_slices
from placement.gang_insert import insert_gang, pool_occupancy
from placement.greedy import _place_best, option_gains
from placement.instance import Instance, JobInfo, compile_instance
from placement.knapsack_bound import integer_bound
from placement.packing import Packing, could_fit, fill_order
from placement.params import DEFAULT, EngineParams
from placement.plan import GC_PAUSE_MIN_JOBS, _plan
from placement.reasons import unplaced_reasons
from placement.score import Scored, improves, job_terms, net_of


@dataclass(frozen=True)
class ReplanParams:
    """When a warm re-plan may answer, and how long its improvement and bound may take."""

    max_share: float = 0.01         # (arrivals + completions + changed jobs) / previous jobs, at most
    max_chain: int = 20             # warm re-plans in a row before a full solve refreshes the prices
    target_s: float = 1.0           # a warm re-plan aims to answer within this many seconds of `started` (the
                                    # request received: parse included, as the caller counts) ...
    target_share: float = 0.5       # ... or this share of the time limit, whichever is less
    search_share: float = 0.15      # the improvement's seconds: at most this share of the time left to the target
    fill_share: float = 0.25        # filling freed room with waiting jobs stops past this share of that time
    bound_min_s: float = 0.25       # the integer knapsack bound (0.1-0.2 s at planet size) runs only with this
                                    # much time left before ...
    reserve_s: float = 0.15         # ... the target less this reserve (the response, the state, the caller's JSON)
    learn_s_per_job: float = 2e-5   # a full solve stops this many seconds per job earlier (at most ...
    learn_share: float = 0.05       # ... this share of its limit) to compile its state as the plan leaves it
    min_left_share: float = 0.4     # the fill and the search get their shares of at least this share of the
                                    # target's seconds, however long the parse took (arrivals are still placed)
    recompile_share: float = 0.5    # past this share of jobs not as before, compile the request whole


REPLAN_DEFAULT = ReplanParams()


@dataclass(frozen=True)
class WarmState:
    """What a solve learned, for re-planning the next request of the same fleet warm. A plain value
    (picklable): nothing in it is changed after it is made, by the engine or by its holder (arrays are
    read-only; the maps and the fleet's index are shared between states, read them only)."""

    fleet_digest: str
    context_digest: str
    fleet: FleetIndex                               # the compiled fleet, shared read-only
    index: Mapping[str, int]                        # job id -> its index in the request planned
    jobs: list[Job]                                 # that request's jobs, as they came
    inst: Instance                                  # that request compiled as the plan leaves it (each job the
    opts: Options                                   # plan moved running where it put it, each it stopped waiting
                                                    # with its checkpoint where it ran), and its options: what the
                                                    # next request holds when the control plane applied the plan,
                                                    # so a job as the plan left it is not compiled again
    placed: Mapping[str, Assignment]                # job id -> its assignment in the plan, placed jobs only
    unmoved: frozenset[str]                         # the jobs the plan left exactly where they ran
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
    same: list[int]        # per job of the new request: its index in the previous one where nothing about it
                           # changed (attributes, running state, checkpoint), else -1: compiled as it was
    gone: list[str]        # the ids of the completed jobs


_last_fleet_digest: tuple[Fleet, str] | None = None
_last_context_digest: tuple[PlanRequest, str] | None = None


def fleet_digest(fleet: Fleet) -> str:
    """The fleet's content digest (regions, links, clusters, node groups, down nodes, in request order).
    The last one is kept with its fleet object: one plan asks for it up to three times (the service's
    warm-cache key, `diff`, `_remember`), a tenth of a small request's plan. Validated requests are
    never changed, so the same object has the same digest."""
    global _last_fleet_digest
    last = _last_fleet_digest
    if last is not None and last[0] is fleet:
        return last[1]
    digest = hashlib.sha256(fleet.model_dump_json().encode()).hexdigest()
    _last_fleet_digest = (fleet, digest)
    return digest


def context_digest(req: PlanRequest) -> str:
    """Everything besides the fleet and the jobs that prices a job: epoch, quotas and the policy, less
    the time limit and `deterministic` (how long and how to solve, not what). Kept with its request
    object like `fleet_digest` (`diff` and `_remember` both ask)."""
    global _last_context_digest
    last = _last_context_digest
    if last is not None and last[0] is req:
        return last[1]
    pol = req.policy.model_dump(mode="json", exclude={"time_limit_s", "deterministic"})
    quotas = sorted((q.tenant, q.tier, q.devices) for q in req.quotas)
    text = json.dumps([req.epoch_s, quotas, pol], sort_keys=True)
    digest = hashlib.sha256(text.encode()).hexdigest()
    _last_context_digest = (req, digest)
    return digest


def _same_job(a: Job, b: Job) -> bool:
    """Whether two jobs have the same attributes, besides their id and where they run (or last ran)."""
    ra, rb = a.replicas, b.replicas
    return (a.speed == b.speed and (ra is rb or ra.min == rb.min and ra.max == rb.max and ra.allowed == rb.allowed)
            and a.devices_per_replica == b.devices_per_replica and a.priority == b.priority and a.tier == b.tier
            and a.tenant == b.tenant and a.checkpoint_gb == b.checkpoint_gb and a.data_region == b.data_region
            and a.regions == b.regions)


def _same(a: Placement | Assignment | None, b: Placement | Assignment | None) -> bool:
    """Whether two placements (a job's `current`, an assignment) are the same cluster, type and node map."""
    if a is None or b is None:
        return a is None and b is None
    return a is b or (a.cluster == b.cluster and a.accelerator == b.accelerator and a.nodes == b.nodes)


def plan_warm(req: PlanRequest, warm: WarmState | None = None, params: EngineParams = DEFAULT,
              started: float | None = None, replan_params: ReplanParams = REPLAN_DEFAULT
              ) -> tuple[PlanResponse, WarmState | None]:
    """The plan of `req` and what its solve learned: warm from `warm` where it applies (the same fleet
    and pricing context, at most `max_share` of the jobs changed; see the module's docstring), else
    the full solve. `policy.deterministic` and backfill plans always take the full solve and learn
    nothing (None), so a deterministic plan never depends on an earlier request. Same precondition and
    `started` as `placement.plan`."""
    with collector_paused(len(req.jobs) >= GC_PAUSE_MIN_JOBS):
        if not warm_applies(req, replan_params):
            return _plan(req, use_cpsat=True, params=params, started=started), None
        if warm is not None:
            got = replan(req, warm, params, replan_params, started)
            if got is not None:
                return got
        learned: dict = {}
        # the solve leaves time for what the state compiles once the plan is made (`_as_applied`)
        limit = req.policy.time_limit_s
        learn_s = min(replan_params.learn_share * limit, replan_params.learn_s_per_job * len(req.jobs))
        solve_req = req.model_copy(update={"policy": req.policy.model_copy(
            update={"time_limit_s": limit - learn_s})}) if learn_s > 0 else req
        resp = _plan(solve_req, use_cpsat=True, params=params, started=started, learned=learned)
        return resp, _remember(req, resp, learned, chain=0)


def warm_applies(req: PlanRequest, rp: ReplanParams = REPLAN_DEFAULT) -> bool:
    """Whether a warm state can ever serve this request or one like it. Not for deterministic or
    backfill plans (above); not where `max_share` allows less than one changed job (fewer than 100 jobs
    at 1 %): only an identical request could then be answered warm, and the full solve of a request that
    small costs about what learning its state does (two-regions through the service: about 1.5 ms of
    CPU a plan, a fifth of the server's)."""
    return not req.policy.deterministic and req.policy.mode == "epoch" and len(req.jobs) * rp.max_share >= 1.0


def diff(req: PlanRequest, warm: WarmState, rp: ReplanParams = REPLAN_DEFAULT) -> Delta | None:
    """How `req` differs from the request `warm` was learned on; None where it may not be re-planned
    warm (another fleet or pricing context, too large a change, too long a chain)."""
    if warm.chain >= rp.max_chain:
        return None
    if fleet_digest(req.fleet) != warm.fleet_digest or context_digest(req) != warm.context_digest:
        return None
    old_placed, old_index, unmoved = warm.placed, warm.index, warm.unmoved
    old_jobs, applied = warm.jobs, warm.inst.jobs
    keep: list[int] = []
    move: list[int] = []
    waiting: list[int] = []
    changed: list[int] = []
    arrivals: list[int] = []
    same = [-1] * len(req.jobs)
    matched: list[int] = []   # the previous index of every job seen again
    get_index, get_placed = old_index.get, old_placed.get
    for j, job in enumerate(req.jobs):
        # the common cases inline, the cheapest test first: this loop runs over every job
        jid = job.id
        k = get_index(jid)
        if k is None:
            arrivals.append(j)
            continue
        matched.append(k)
        old = old_jobs[k]
        if job is not old and not _same_job(job, old):
            changed.append(j)
            continue
        cur = job.current
        placed = get_placed(jid)
        was = applied[k].job   # as compiled: `old`, or as the plan left it where it moved or stopped the job
        if cur is None:
            as_before = old.current is None
            if was.current is None and job.checkpoint_region == was.checkpoint_region:
                same[j] = k
            if placed is None:
                waiting.append(j)
            elif as_before:
                move.append(j)
            else:
                changed.append(j)
            continue
        ocur = old.current
        as_before = cur is ocur or (ocur is not None and cur.cluster == ocur.cluster
                                    and cur.accelerator == ocur.accelerator and cur.nodes == ocur.nodes)
        if as_before if was is old else _same(cur, was.current):
            same[j] = k
        if placed is not None:
            if (as_before and jid in unmoved) or _same(cur, placed):
                keep.append(j)
            elif as_before:
                move.append(j)
            else:
                changed.append(j)
        elif as_before:
            waiting.append(j)
        else:
            changed.append(j)
    completions = len(old_index) - len(matched)
    share = (len(arrivals) + completions + len(changed)) / max(1, len(old_index))
    if share > rp.max_share * (1 + 1e-12):
        return None
    gone: list[str] = []
    if completions:   # the previous jobs no job of this request matched
        hit = np.zeros(len(old_jobs), dtype=bool)
        hit[matched] = True
        gone = [old_jobs[k].id for k in np.flatnonzero(~hit).tolist()]
    return Delta(keep, move, waiting, changed, arrivals, completions, share, same, gone)


def replan(req: PlanRequest, warm: WarmState, params: EngineParams = DEFAULT, rp: ReplanParams = REPLAN_DEFAULT,
           started: float | None = None) -> tuple[PlanResponse, WarmState] | None:
    """The warm path (module docstring); None where it does not apply (`diff`) or cannot give a valid
    plan (a protected job that cannot be kept placed): the caller then runs the full solve."""
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
    t_in = time.perf_counter()
    span = min(rp.target_s, rp.target_share * limit)
    target = t0 + span
    left = max(target - t_in, rp.min_left_share * span)   # the seconds the fill's and the search's shares are of
    delta = diff(req, warm, rp)
    if delta is None:
        return None
    lap("diff")
    inst, opts = _compile(req, warm, delta, rp)
    lap("compile")
    if any(inst.jobs[j].protected for j in opts.no_option_reason):
        return None
    pk, redo = _carry_over(inst, opts, delta, warm.placed)
    kept = len(pk.choice)
    lap("carry_over")
    qkeys = _keys(inst)[0]
    qp = np.array([warm.quota_prices.get(k, 0.0) for k in qkeys], dtype=float)
    gain0, _ = option_gains(inst, opts, None)
    todo = sorted(set(redo) | set(delta.changed) | set(delta.arrivals) | set(_room_seekers(inst, opts, warm, delta, redo)))
    if not _fill(inst, opts, pk, todo, warm.pool_prices, qp, warm.budget_price, gain0,
                 time.perf_counter() + rp.fill_share * left):
        return None
    lap("fill")
    search_end = time.perf_counter() + rp.search_share * left
    pk, moves = _improve(inst, opts, pk, sorted(set(redo) | set(delta.changed) | set(delta.arrivals)), gain0,
                         search_end)
    phases["gang_moves"] = moves
    lap("search")
    sc = _score(inst, opts, pk)
    lap("score")
    unplaced = unplaced_reasons(inst, opts, pk)
    lap("reasons")
    # the Lagrangian bound of this request at the previous prices: valid at any prices >= 0 (weak duality);
    # the integer knapsacks at the same prices, tighter, where the target leaves time for them
    bound = Bound(lagrangian_value(inst, opts, warm.pool_prices, qp, warm.budget_price)[0], "lagrangian",
                  warm.pool_prices, quota_prices=qp, budget_price=warm.budget_price)
    if target - rp.reserve_s - time.perf_counter() > rp.bound_min_s:
        ib = integer_bound(inst, opts, warm.pool_prices, qp, warm.budget_price, deadline=target - rp.reserve_s)
        if ib is not None and ib.value < bound.value:
            bound = Bound(ib.value, ib.method, bound.prices, quota_prices=qp, budget_price=warm.budget_price)
    lap("bound")
    obj = sc.objective
    ub = max(bound.value, obj)   # the bound is proven >= every valid plan; this only guards float noise
    gap = (ub - obj) / max(abs(ub), 1e-9)
    assignments, unmoved = _assignments(inst, opts, pk, warm.placed, set(delta.keep))
    stats = ReplanStats(arrivals=len(delta.arrivals), completions=delta.completions, changed=len(delta.changed),
                        share=round(delta.share, 6), kept=kept, chain=warm.chain + 1)
    lap("response")
    kept_inst = dataclasses.replace(inst, term_cache={}, derived=_kept_derived(inst))
    state = _state(req, kept_inst, opts, assignments, unmoved, warm.fleet, warm.fleet_digest, warm.context_digest,
                   warm.pool_prices, warm.quota_prices, warm.budget_price, obj, warm.chain + 1)
    lap("state")
    resp = PlanResponse.model_construct(
        plan_id=None, status="optimal" if gap <= params.optimal_gap else "feasible", objective=obj, bound=ub,
        gap=gap, breakdown=Breakdown(value=sc.value, disruption=sc.disruption, spread=sc.spread),
        solve_s=round(time.perf_counter() - t0, 4), assignments=assignments, actions=sc.actions,
        unplaced=unplaced,
        stats=SolverStats(engine="replan", cpsat_status=None, bound_method=bound.method, jobs=len(inst.jobs),
                          options=len(opts), cpsat_variables=0, phases_s=phases, replan=stats))
    return resp, state


def _compile(req: PlanRequest, warm: WarmState, delta: Delta, rp: ReplanParams) -> tuple[Instance, Options]:
    """`compile_instance` and `build_options` of `req`, compiling only the jobs not as they were in the
    previous request (arrivals, changed attributes or running state); every other job's compiled form and
    options are the previous ones (they depend only on the job, the fleet and the pricing context, all
    the same), spliced in in one whole-array pass. Where most jobs changed, the request is compiled whole."""
    n = len(req.jobs)
    same = np.asarray(delta.same, dtype=np.int64)
    dirty = np.flatnonzero(same < 0)
    if len(dirty) > rp.recompile_share * max(1, n):
        inst = compile_instance(req, warm.fleet)
        return inst, build_options(inst)
    old_inst, old = warm.inst, warm.opts
    sub_inst = compile_instance(req.model_copy(update={"jobs": [req.jobs[j] for j in dirty.tolist()]}), warm.fleet)
    sub = build_options(sub_inst)
    old_jobs, sub_jobs = old_inst.jobs, sub_inst.jobs
    jobs = []
    k = 0
    new = object.__new__
    for j, (job, o) in enumerate(zip(req.jobs, same.tolist())):
        if o >= 0:
            info = old_jobs[o]
            if o != j or info.job is not job:   # a copy (the previous state's stays as it was), cheaper than
                info = new(JobInfo)             # copy.copy; the same job at the same place is shared
                info.__dict__.update(old_jobs[o].__dict__)
                info.job = job
                info.index = j
        else:
            info = sub_jobs[k]
            k += 1
            info.index = j
        jobs.append(info)
    inst = dataclasses.replace(old_inst, request=req, jobs=jobs, term_cache={},
                               derived=_spliced_derived(old_inst, sub_inst, same, dirty))
    # per new job: where its options start in [old options; sub options] and how many it has
    ob = np.searchsorted(old.job, np.arange(len(old_jobs) + 1))
    sb = np.searchsorted(sub.job, np.arange(len(sub_jobs) + 1))
    kept = same >= 0
    start = np.empty(n, dtype=np.int64)
    count = np.empty(n, dtype=np.int64)
    start[kept] = ob[same[kept]]
    count[kept] = ob[same[kept] + 1] - ob[same[kept]]
    start[~kept] = len(old) + sb[:-1]
    count[~kept] = np.diff(sb)
    bounds = np.concatenate(([0], np.cumsum(count)))
    gather = np.arange(bounds[-1]) - np.repeat(bounds[:-1], count) + np.repeat(start, count)

    def cat(a: np.ndarray, b: np.ndarray) -> np.ndarray:
        return np.concatenate((a, b))[gather]

    reasons = {j: old.no_option_reason[o] for j, o in enumerate(same.tolist()) if o >= 0 and o in old.no_option_reason}
    reasons.update({int(dirty[k]): r for k, r in sub.no_option_reason.items()})
    opts = Options(np.repeat(np.arange(n, dtype=np.int64), count), cat(old.pool, sub.pool), cat(old.keep, sub.keep),
                   cat(old.lo, sub.lo), cat(old.hi, sub.hi), cat(old.unit, sub.unit), cat(old.coef, sub.coef),
                   cat(old.dpr, sub.dpr), cat(old.mig_gb, sub.mig_gb),
                   job_slices(bounds), reasons)
    return inst, opts


def _spliced_derived(old: Instance, sub: Instance, same: np.ndarray, dirty: np.ndarray) -> dict:
    """The per-job values derived from the previous instance (`Instance.column`s, the quota rows of
    `placement.bound._keys`) carried over to the new one: a job compiled as it was has the same values,
    the jobs compiled again (`sub`, at `dirty`) bring theirs. What the previous instance did not derive,
    or derived over other quota rows, is derived again when asked."""
    out: dict = {}
    kept = same >= 0
    n = len(same)

    def splice(old_col: np.ndarray, sub_col: np.ndarray) -> np.ndarray:
        col = np.empty(n, dtype=old_col.dtype)
        col[kept] = old_col[same[kept]]
        col[dirty] = sub_col
        col.setflags(write=False)
        return col

    cols = old.derived.get("columns")
    if cols:
        out["columns"] = {name: splice(col, sub.column(name)) for name, col in cols.items()}
    rows = old.derived.get("quota_rows")
    if rows is not None and rows[0] == list(sub.quotas):
        pos = {k: i for i, k in enumerate(rows[0])}
        sub_rows = np.array([pos.get(i.key, -1) for i in sub.jobs], dtype=np.int64)
        out["quota_rows"] = (rows[0], splice(rows[1], sub_rows))
    return out


def _room_seekers(inst: Instance, opts: Options, warm: WarmState, delta: Delta, redo: list[int]) -> list[int]:
    """The waiting jobs worth trying again: those with an option in a pool the previous plan's jobs left
    room in (completed jobs, changed jobs, placements not carried over). Elsewhere the room is as the
    previous plan left it, and that plan's own fill had offered it to them."""
    if not delta.waiting:
        return []
    freed = np.zeros(len(inst.pools), dtype=bool)
    left = [warm.placed.get(i) for i in delta.gone]
    left += [warm.placed.get(inst.jobs[j].job.id) for j in delta.changed + redo]
    for a in left:
        if a is not None:
            p = inst.pool_of.get((a.cluster, a.accelerator))
            if p is not None:
                freed[p] = True
    if not freed.any():
        return []
    hits = np.zeros(len(inst.jobs), dtype=bool)
    hits[opts.job[freed[opts.pool]]] = True
    return [j for j in delta.waiting if hits[j]]


def _carry_over(inst: Instance, opts: Options, delta: Delta, placed: Mapping[str, Assignment]
                ) -> tuple[Packing, list[int]]:
    """The previous plan's placements of the jobs still present, where still valid: jobs running where
    the plan put them stay (in one pass where they all fit), then those whose plan was not applied yet
    go where it put them, protected jobs first each time; returns the packing and the jobs whose
    placement could not be carried over."""
    pk = Packing(inst, opts)
    jobs = inst.jobs
    redo = pk.keep_many(_protected_first(inst, delta.keep))
    for j in _protected_first(inst, delta.move):
        if not _place_planned(inst, opts, pk, j, placed[jobs[j].job.id]):
            redo.append(j)
    return pk, redo


def _protected_first(inst: Instance, js: list[int]) -> list[int]:
    """`js` (in job order) with the protected jobs first, each part in job order."""
    jobs = inst.jobs
    prot = [j for j in js if jobs[j].protected]
    if not prot:
        return js
    mark = set(prot)
    return prot + [j for j in js if j not in mark]


def _place_planned(inst: Instance, opts: Options, pk: Packing, j: int, planned: Assignment) -> bool:
    """Job j (whose plan was not applied yet: it runs, or waits, as before) where the plan put it."""
    cluster, accel, nodes = planned.cluster, planned.accelerator, planned.nodes
    if _same(inst.jobs[j].job.current, planned):
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
          quota_prices: np.ndarray, budget_price: float, gain0: np.ndarray, deadline: float) -> bool:
    """Place the jobs in `todo` that are not placed yet: protected ones first (wherever they fit: the
    contract's constraint 5; False when one cannot be), then the rest by value per device at the
    previous prices, placed only where a priced option pays, then what is left at face value, then
    leftover room grown into. Room only shrinks while a pass fills it: a job that fits nowhere is skipped.
    Past `deadline` the passes stop (the most valuable jobs went first; the rest wait, as they did)."""
    jobs = inst.jobs
    rest = np.array([j for j in todo if j not in pk.choice], dtype=np.int64)
    if not len(rest):
        _grow(pk, todo)
        return True
    prot = [int(j) for j in rest if jobs[j].protected]
    for j in prot:
        if not pk.try_keep(j):
            _place_best(pk, j, gain0, require_positive=False)
        if j not in pk.choice:
            return False
    rest = rest[[not jobs[j].protected for j in rest.tolist()]]
    gain_p, reps_p = priced_values(inst, opts, pool_prices, quota_prices, budget_price)
    dens = job_max(opts.job, gain_p / np.maximum(reps_p * opts.dpr, 1), len(jobs))[0]
    rest = rest[np.lexsort((rest, -dens[rest]))]
    rest = rest[could_fit(pk, rest)]   # room only shrinks: most waiting jobs fit nowhere, dropped in one pass
    for j in fill_order(pk, rest):
        if time.perf_counter() > deadline:
            break
        _place_best(pk, j, gain_p, require_positive=True)
    left = rest[[j not in pk.choice for j in rest.tolist()]] if len(rest) else rest
    for j in fill_order(pk, left):
        if time.perf_counter() > deadline:
            break
        _place_best(pk, j, gain0, require_positive=False)
    _grow(pk, todo)
    return True


def _grow(pk: Packing, jobs: list[int]) -> None:
    """`placement.greedy.grow_all` over `jobs` only (the jobs this re-plan placed; a carried-over job's
    room is as the previous plan left it): leftover room to the changing ones below their maximum, best
    value per device first."""
    opts = pk.opts
    cands = [(j, pk.choice[j]) for j in jobs if j in pk.choice]
    cands = [(j, o) for j, o in cands if not opts.keep[o] and sum(pk.nodes[j].values()) < opts.hi[o]]
    cands.sort(key=lambda t: (-opts.coef[t[1]] / opts.dpr[t[1]], t[0]))
    for j, o in cands:
        if opts.coef[o] > 0:
            pk.grow(j, int(opts.hi[o]))


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
    pools = {int(opts.pool[o]) for _, _, o in wants}
    occupancy = pool_occupancy(inst, opts, pk, pools)
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
                # only the pools the move touched change: theirs are computed again
                redo = {int(opts.pool[x.choice[k]]) for x in (pk, cand) for k in touched if k in x.choice}
                redo = (redo | {int(opts.pool[o])}) & pools
                pk = cand
                kept += 1
                occupancy = {p: v for p, v in occupancy.items() if p not in redo}
                occupancy.update(pool_occupancy(inst, opts, pk, redo))
                break
    return pk, kept


def _score(inst: Instance, opts: Options, pk: Packing) -> Scored:
    """The canonical objective of `pk` (`placement.score`), its kept jobs summed in one pass: a job kept
    exactly where it runs (its keep option) has no action and no disruption, its value is its option's
    value per replica x its replicas and its spread is what the option charged for it (`build_options`);
    every other job is scored by `placement.score.job_terms`. A warm re-plan keeps most jobs, and scoring
    each on its own took a fifth of a second at planet size."""
    n = len(inst.jobs)
    js = np.fromiter(pk.choice, dtype=np.int64, count=len(pk.choice))
    os_ = np.fromiter(pk.choice.values(), dtype=np.int64, count=len(pk.choice))
    kept = opts.keep[os_] if len(os_) else np.zeros(0, dtype=bool)
    ko = os_[kept]
    r0 = opts.lo[ko]
    out = Scored(value=float((opts.unit[ko] * r0).sum()), spread=float(((opts.unit[ko] - opts.coef[ko]) * r0).sum()))
    placed = np.zeros(n, dtype=bool)
    placed[js] = True
    pc = inst.column("preempt_cost") if n else np.zeros(0)
    running = inst.column("running").astype(bool) if n else np.zeros(0, dtype=bool)
    out.disruption = float(pc[running & ~placed].sum())
    touched = np.union1d(js[~kept], np.flatnonzero(running & ~placed))
    actions: list[Action] = []
    for j in touched.tolist():
        job = inst.jobs[j].job
        got = pk.placement_of(j)
        if got is not None:
            v, d, p = job_terms(inst, j, got)
            out.value += v
            out.disruption += d
            out.spread += p
        kind = contract.action_kind(job.current, *got) if got is not None else (
            "preempt" if job.current is not None else None)
        if kind is not None:
            to = None if got is None else Placement.model_construct(cluster=got[0], accelerator=got[1], nodes=got[2])
            actions.append(Action.model_construct(job=job.id, kind=kind, from_=job.current, to=to))
    out._actions = actions
    return out


def _assignments(inst: Instance, opts: Options, pk: Packing, before: Mapping[str, Assignment],
                 carried: set[int]) -> tuple[list[Assignment], frozenset[str]]:
    """The plan's assignments in job order, and the ids of the jobs it keeps where they run; a job kept
    where the previous plan put it (`carried`, running there) reuses that plan's assignment (the same
    placement) rather than building it again (20,000 of them took a fifth of a second)."""
    out: list[Assignment] = []
    unmoved: list[str] = []
    js = sorted(pk.choice)
    choice = pk.choice
    kept = opts.keep[np.array([choice[j] for j in js], dtype=np.int64)].tolist() if js else []
    jobs = inst.jobs
    for j, keep in zip(js, kept):
        job = jobs[j].job
        if keep:
            unmoved.append(job.id)
            if j in carried:
                a = before[job.id]
            else:
                cur = job.current
                a = built(Assignment, {"job": job.id, "cluster": cur.cluster, "accelerator": cur.accelerator,
                                       "nodes": dict(cur.nodes)})
        else:
            c, acc, nodes = pk.placement_of(j)
            a = built(Assignment, {"job": job.id, "cluster": c, "accelerator": acc, "nodes": nodes})
        out.append(a)
    return out, frozenset(unmoved)


def _remember(req: PlanRequest, resp: PlanResponse, learned: dict, chain: int) -> WarmState | None:
    """The warm state of a full solve (None where it gave no plan to start from: infeasible)."""
    if "packing" not in learned or resp.status == "infeasible":
        return None
    # the instance without what the search cached on it (scored placements: tens of MB at planet size)
    inst: Instance = dataclasses.replace(learned["inst"], term_cache={},
                                         derived=_kept_derived(learned["inst"]))
    bound: Bound = learned["bound"]
    keys = _keys(inst)[0]
    qp = bound.quota_prices if bound.quota_prices is not None else np.zeros(len(keys))
    quota_prices = {k: float(max(0.0, v)) for k, v in zip(keys, qp)}
    pool_prices = np.maximum(np.asarray(bound.prices, dtype=float), 0.0)
    acted = {a.job for a in resp.actions}
    unmoved = frozenset(a.job for a in resp.assignments if a.job not in acted)
    return _state(req, inst, learned["opts"], resp.assignments, unmoved, inst.fleet, fleet_digest(req.fleet),
                  context_digest(req), pool_prices, quota_prices, max(0.0, float(bound.budget_price)), float(resp.objective), chain)


def _kept_derived(inst: Instance) -> dict:
    """What a state keeps of an instance's derived values: the per-job arrays the next re-plan splices
    (`_spliced_derived`), not the search's caches."""
    return {k: inst.derived[k] for k in ("columns", "quota_rows") if k in inst.derived}


def _state(req: PlanRequest, inst: Instance, opts: Options, assignments: list[Assignment], unmoved: frozenset[str],
           fleet: FleetIndex, fdigest: str, cdigest: str,
           pool_prices: np.ndarray, quota_prices: Mapping[tuple[str, str], float], budget_price: float,
           objective: float, chain: int) -> WarmState:
    """A `WarmState` of the plan `assignments` of `req` (compiled as `inst`, `opts`)."""
    prices = np.array(pool_prices, dtype=float)
    prices.setflags(write=False)
    index = {job.id: j for j, job in enumerate(req.jobs)}
    placed = {a.job: a for a in assignments}
    state = WarmState(fdigest, cdigest, fleet, index, list(req.jobs), inst, opts, placed, unmoved, prices,
                      dict(quota_prices), float(budget_price), objective, chain)
    inst, opts = _as_applied(req, state)
    return dataclasses.replace(state, inst=inst, opts=opts)


def _as_applied(req: PlanRequest, state: WarmState) -> tuple[Instance, Options]:
    """`req` as the control plane leaves it once it applied the plan (`datasets.churn.applied`): each job
    the plan placed elsewhere than it ran now runs there, each running job it stopped waits with its
    checkpoint in the region it ran in; compiled by splicing (`_compile`), the other jobs as they are.
    Why: after a full solve half the jobs of a planet request start or move, and the next request, which
    holds them running there, compiled them all again (a quarter of a second); the plan's own answer pays
    for compiling them once, here."""
    jobs = req.jobs
    region_of = state.fleet.region_of
    new_jobs = list(jobs)
    same = list(range(len(jobs)))
    unmoved, placed = state.unmoved, state.placed
    for j, job in enumerate(jobs):
        jid = job.id
        if jid in unmoved:   # (most jobs: left exactly where they ran)
            continue
        a = placed.get(jid)
        cur = job.current
        if a is not None:
            if _same(cur, a):
                continue
            to = built(Placement, {"cluster": a.cluster, "accelerator": a.accelerator, "nodes": dict(a.nodes)})
            new_jobs[j] = job.model_copy(update={"current": to, "checkpoint_region": None})
        elif cur is not None:
            new_jobs[j] = job.model_copy(update={"current": None, "checkpoint_region": region_of[cur.cluster]})
        else:
            continue
        same[j] = -1
    if all(k >= 0 for k in same):
        return state.inst, state.opts
    applied = req.model_copy(update={"jobs": new_jobs})
    delta = Delta([], [], [], [], [], 0, 0.0, same, [])
    return _compile(applied, state, delta, REPLAN_DEFAULT)
