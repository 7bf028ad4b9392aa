"""Proven upper bounds on the canonical objective over every valid plan.

Both relax the same thing: node packing is pooled into (cluster, accelerator) capacity and
the spread term (never negative) is dropped; options are pruned only where infeasible.
- `lp_bound`: the LP relaxation (HiGHS), tight, with capacity duals that price the greedy.
- `lagrangian_bound`: capacity, quotas and budget moved into the objective at prices >= 0;
  every price vector gives a valid bound (weak duality), each evaluation is one vectorised
  pass, and projected subgradient steps tighten it. It is the bound at sizes where the LP
  does not fit in the time limit, and it never needs more than a few hundred milliseconds.
"""

from __future__ import annotations

import math
import os
import sys
import threading
import time
from dataclasses import dataclass, replace

import numpy as np

from placement.candidates import Options, job_max
from placement.instance import Instance

LP_NO_PRESOLVE_MAX_COLS = 400
SMALL_OPTIONS = 160   # options up to which the Lagrangian is evaluated over lists (placement/bound_small.py)


@dataclass
class Bound:
    value: float                   # upper bound on the objective (+inf when none was proven)
    method: str                    # lp | lagrangian | trivial
    prices: np.ndarray             # per-pool device price (duals), for the greedy
    infeasible: bool = False       # a protected job has no option at all
    x: np.ndarray | None = None    # LP primal: per option, how much it is chosen
    n: np.ndarray | None = None    # LP primal: per option, replicas (keep options: r0 * x)
    quota_prices: np.ndarray | None = None   # LP duals of the quota rows, in `_keys` order
    budget_price: float = 0.0
    # the slot rows' duals (a backfill's LP): per option the price of one replica, and the rows' priced
    # right-hand sides, so a Lagrangian at these prices counts them (`slot_priced`)
    slot_price: tuple[np.ndarray, float] | None = None


def slot_priced(opts: Options, lp: Bound) -> tuple[Options, float]:
    """`opts` with each replica's slot price taken off its objective, and the constant the priced slot
    rows add: a Lagrangian (the quota knapsacks) over these is a bound at all of the LP's prices. Without
    the slot rows' prices it read the rows as dropped, and at the prices they shift it came out looser
    than without the rows (apart alibaba seed 1 as a backfill: 12,686 against 10,916)."""
    if lp.slot_price is None:
        return opts, 0.0
    rho, const = lp.slot_price
    return replace(opts, coef=opts.coef - rho), const


def _keys(inst: Instance) -> tuple[list[tuple[str, str]], np.ndarray]:
    """Quota rows and, per job, its quota row (-1 if its (tenant, tier) has no quota). Computed once per
    instance (a pass over every job: 20-30 ms at planet size, and the bounds ask for it again and again);
    read the result, never change it."""
    got = inst.derived.get("quota_rows")
    if got is None:
        keys = list(inst.quotas)
        pos = {k: i for i, k in enumerate(keys)}
        got = inst.derived["quota_rows"] = (keys, np.array([pos.get(j.key, -1) for j in inst.jobs], dtype=np.int64))
    return got


def _job_arrays(inst: Instance) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """(each job's preemption cost, each job's protected flag, each pool's capacity), computed once per
    instance: the subgradient evaluates the Lagrangian a hundred times or more, and rebuilding these
    from Python objects each time was a third of an evaluation on a small request. Read, never change."""
    got = inst.derived.get("job_arrays")
    if got is None:
        # (the jobs' columns: a warm re-plan splices them from the previous instance, placement/replan.py)
        got = inst.derived["job_arrays"] = (np.asarray(inst.column("preempt_cost"), dtype=float),
                                            np.asarray(inst.column("protected"), dtype=bool),
                                            np.array([p.capacity for p in inst.pools], dtype=float))
    return got


def priced_values(inst: Instance, opts: Options, pool_price: np.ndarray, quota_price: np.ndarray | None,
                  budget_price: float) -> tuple[np.ndarray, np.ndarray]:
    """Per option, at the given prices: (what the job gains by choosing it, replicas it would take).
    The one place the Lagrangian subproblem is written; the bound and column generation share it."""
    _, jq = _keys(inst)
    pc = _job_arrays(inst)[0]
    if inst.budget_gb is None:
        budget_price = 0.0   # no budget row: pricing one that does not exist would bound below the optimum
    qp = np.zeros(len(opts))
    if quota_price is not None and len(quota_price):
        qj = jq[opts.job]
        qp = np.where(qj >= 0, quota_price[np.maximum(qj, 0)], 0.0)
    red = opts.coef - (pool_price[opts.pool] + qp) * opts.dpr
    reps = np.where(red > 0, opts.hi, opts.lo)
    return red * reps + pc[opts.job] - budget_price * opts.mig_gb, reps


def lagrangian_value(inst: Instance, opts: Options, pool_price: np.ndarray, quota_price: np.ndarray,
                     budget_price: float) -> tuple[float, np.ndarray, np.ndarray, float]:
    """L(prices) and its subgradient parts: (value, pool devices used, quota devices used, GB moved)."""
    if len(opts) <= SMALL_OPTIONS:
        from placement.bound_small import lagrangian_value_small
        return lagrangian_value_small(inst, opts, pool_price, quota_price, budget_price)
    keys, jq = _keys(inst)
    pc, prot, cap = _job_arrays(inst)
    n_jobs = len(inst.jobs)
    total = float(pool_price @ cap) if len(cap) else 0.0
    if keys:
        total += float(quota_price @ np.array([inst.quotas[k] for k in keys], dtype=float))
    if inst.budget_gb is not None:
        total += budget_price * inst.budget_gb
    best = np.where(prot, -np.inf, 0.0)
    choice = np.full(n_jobs, -1, dtype=np.int64)
    reps = np.zeros(len(opts), dtype=np.int64)
    if len(opts):
        val, reps = priced_values(inst, opts, pool_price, quota_price, budget_price)
        top_val, top = job_max(opts.job, val, n_jobs)   # per job, its best option (the first of ties)
        better = top_val > best
        best[better] = top_val[better]
        choice[better] = top[better]
    if np.isneginf(best).any():
        return float("inf"), np.zeros(len(cap)), np.zeros(len(keys)), 0.0
    total += float(best.sum() - pc.sum())
    used_pool = np.zeros(len(cap))
    used_q = np.zeros(len(keys))
    moved = 0.0
    ch = choice[choice >= 0]
    if len(ch):
        dev = reps[ch] * opts.dpr[ch]
        np.add.at(used_pool, opts.pool[ch], dev)
        if keys:
            qj = jq[opts.job[ch]]
            np.add.at(used_q, qj[qj >= 0], dev[qj >= 0])
        moved = float(opts.mig_gb[ch].sum())
    return total, used_pool, used_q, moved


def improving_options(inst: Instance, opts: Options, lp: Bound, members: np.ndarray) -> np.ndarray:
    """Options outside `members` that would beat their job's best member at the LP's prices:
    the columns a round of column generation adds (none left means the restricted LP's value
    is the full LP's)."""
    val, _ = priced_values(inst, opts, lp.prices, lp.quota_prices, lp.budget_price)
    inside = np.zeros(len(opts), dtype=bool)
    inside[members] = True
    best = np.where(_job_arrays(inst)[1], -np.inf, 0.0)
    np.maximum.at(best, opts.job[inside], val[inside])
    tol = 1e-9 * np.maximum(1.0, np.abs(best[opts.job]))
    return np.flatnonzero(~inside & (val > best[opts.job] + tol))


def lagrangian_bound(inst: Instance, opts: Options, start_prices: np.ndarray | None = None,
                     target: float | None = None, seconds: float = 0.3, max_iter: int = 200,
                     start_quota: np.ndarray | None = None, start_budget: float = 0.0,
                     proven_gap: float | None = None) -> Bound:
    """Projected subgradient descent on the Lagrangian dual; returns the best (lowest) bound seen.

    `target` is the objective of a valid plan, so no bound goes below it: with `proven_gap`, the
    descent stops at the first bound within that relative gap of it (the plan is then proven optimal,
    and further steps could lower the bound by less than the gap; on a small uncontended request the
    first steps get there, and running on to the step-size floor was 70 evaluations for nothing)."""
    if len(opts) <= SMALL_OPTIONS:
        from placement.bound_small import lagrangian_bound_small
        return lagrangian_bound_small(inst, opts, start_prices, target, seconds, max_iter, start_quota,
                                      start_budget, proven_gap)
    keys, _ = _keys(inst)
    cap = _job_arrays(inst)[2]
    qcap = np.array([inst.quotas[k] for k in keys], dtype=float)
    pi = np.zeros(len(cap)) if start_prices is None else np.maximum(start_prices.astype(float), 0.0).copy()
    mu = np.zeros(len(keys)) if start_quota is None else np.maximum(start_quota, 0.0).copy()
    lam = max(0.0, start_budget)
    best_val, best_pi = float("inf"), pi.copy()
    deadline = time.perf_counter() + seconds
    theta = 1.0
    stall = 0
    for _ in range(max_iter):
        val, used, used_q, moved = lagrangian_value(inst, opts, pi, mu, lam)
        improved, stall, theta = descent_progress(val, best_val, stall, theta)
        if improved:
            best_val, best_pi = val, pi.copy()
        if descent_over(val, best_val, theta, deadline, target, proven_gap):
            break
        g_pool = cap - used
        g_q = qcap - used_q
        g_b = (inst.budget_gb - moved) if inst.budget_gb is not None else 0.0
        # only components that can move (price > 0 or constraint violated) count
        g_pool = np.where((pi > 0) | (g_pool < 0), g_pool, 0.0)
        g_q = np.where((mu > 0) | (g_q < 0), g_q, 0.0)
        if not (lam > 0 or g_b < 0):
            g_b = 0.0
        norm = float(g_pool @ g_pool + g_q @ g_q + g_b * g_b)
        if norm <= 0:
            break   # the relaxed choice is feasible and complementary: this bound is the optimum
        step = step_size(val, target, theta, norm)
        pi = np.maximum(0.0, pi - step * g_pool)
        mu = np.maximum(0.0, mu - step * g_q)
        lam = max(0.0, lam - step * g_b)
    return Bound(best_val, "lagrangian", best_pi, infeasible=not np.isfinite(best_val))


def descent_progress(val: float, best_val: float, stall: int, theta: float) -> tuple[bool, int, float]:
    """The subgradient's step control, shared by its array and list forms (`placement/bound_small.py`):
    (whether `val` is a new best bound, the evaluations since the last one, the step factor, halved after
    five without)."""
    if val < best_val and (not math.isfinite(best_val) or val < best_val - 1e-12 * max(1.0, abs(best_val))):
        return True, 0, theta
    stall += 1
    if stall >= 5:
        return False, 0, theta * 0.5
    return False, stall, theta


def descent_over(val: float, best_val: float, theta: float, deadline: float, target: float | None,
                 proven_gap: float | None) -> bool:
    """Whether the descent stops: no finite bound, out of time, the step factor at its floor, or the plan
    `target` proven within `proven_gap` of the best bound."""
    if not math.isfinite(val) or time.perf_counter() > deadline or theta < 1e-4:
        return True
    return proven_gap is not None and target is not None and (
        best_val - target <= proven_gap * max(abs(best_val), 1e-9))


def step_size(val: float, target: float | None, theta: float, norm: float) -> float:
    """Polyak's step towards `target` (a valid plan's objective; without one, 5 % below the bound)."""
    lower = target if target is not None else val * 0.95
    return theta * max(val - lower, 1e-9 * max(1.0, abs(val))) / norm


def lp_bound(inst: Instance, opts: Options, time_limit_s: float,
             iterations_per_row: float | None = None, slots: list[tuple[int, int, int]] | None = None) -> Bound | None:
    """The LP relaxation over pool capacity; None if HiGHS did not prove it in time. `slots` ((pool, d,
    replicas), a backfill's: `placement.backfill.slot_rows`) adds a row each: the change options' replicas
    of d devices or more in that pool, at most `replicas`.

    `iterations_per_row` (deterministic plans) caps HiGHS's simplex iterations at that many per
    row and column, a limit that depends on the request alone; `time_limit_s` is then a safety
    net far above what the iterations take, so the answer never depends on the machine's load."""
    import highspy

    n_opt = len(opts)
    n_jobs = len(inst.jobs)
    pc = np.array([j.preempt_cost for j in inst.jobs])
    const = -float(pc.sum())
    prot = np.array([j.protected for j in inst.jobs], dtype=bool)
    if n_opt == 0:
        if prot.any():
            return Bound(float("inf"), "lp", np.zeros(len(inst.pools)), infeasible=True)
        return Bound(const, "lp", np.zeros(len(inst.pools)))
    keep = opts.keep
    # columns: x_o for every option, then e_o for every elastic change option, where the
    # replicas are n_o = lo_o * x_o + e_o with 0 <= e_o <= (hi_o - lo_o) * x_o: the same LP as
    # lo x <= n <= hi x with one linking row instead of two, and none for rigid options
    span = (opts.hi - opts.lo).astype(float)
    chg = np.flatnonzero(~keep & (span > 0))
    n_cols = n_opt + len(chg)
    ncol_of = np.full(n_opt, -1, dtype=np.int64)
    ncol_of[chg] = n_opt + np.arange(len(chg))
    cost = np.zeros(n_cols)
    cost[:n_opt] = -(pc[opts.job] + opts.coef * opts.lo)
    cost[n_opt:] = -opts.coef[chg]
    lower = np.zeros(n_cols)
    upper = np.ones(n_cols)
    upper[n_opt:] = span[chg]

    rows_lo: list[np.ndarray] = []
    rows_hi: list[np.ndarray] = []
    starts: list[np.ndarray] = []
    idx_parts: list[np.ndarray] = []
    val_parts: list[np.ndarray] = []
    nnz = 0

    def add_rows(lo: np.ndarray, hi: np.ndarray, cols: list[np.ndarray], vals: list[np.ndarray]) -> None:
        nonlocal nnz
        lens = np.array([len(c) for c in cols], dtype=np.int64)
        st = nnz + np.concatenate(([0], np.cumsum(lens)[:-1])) if len(lens) else np.zeros(0, dtype=np.int64)
        rows_lo.append(lo); rows_hi.append(hi); starts.append(st)
        if cols:
            idx_parts.append(np.concatenate(cols)); val_parts.append(np.concatenate(vals))
        nnz += int(lens.sum())

    inf = highspy.kHighsInf
    m = len(chg)
    if m:   # e - (hi - lo) x <= 0
        pairs = np.stack([ncol_of[chg], chg], axis=1)
        vals = np.stack([np.ones(m), -span[chg]], axis=1)
        rows_lo.append(np.full(m, -inf)); rows_hi.append(np.zeros(m))
        starts.append(nnz + 2 * np.arange(m, dtype=np.int64))
        idx_parts.append(pairs.ravel()); val_parts.append(vals.ravel())
        nnz += 2 * m
    # one option per job (exactly one if protected)
    jobs_with = [j for j in range(n_jobs) if len(opts.by_job[j])]
    if prot.any() and any(len(opts.by_job[j]) == 0 for j in np.flatnonzero(prot)):
        return Bound(float("inf"), "lp", np.zeros(len(inst.pools)), infeasible=True)
    add_rows(np.array([1.0 if prot[j] else -inf for j in jobs_with]), np.ones(len(jobs_with)),
             [opts.by_job[j] for j in jobs_with], [np.ones(len(opts.by_job[j])) for j in jobs_with])
    # capacity per pool and quota per (tenant, tier): dpr * (lo * x + e) devices
    term_opt = np.concatenate([np.arange(n_opt), chg])                 # the option each term belongs to
    term_col = np.concatenate([np.arange(n_opt), ncol_of[chg]])
    term_val = np.concatenate([(opts.lo * opts.dpr).astype(float), opts.dpr[chg].astype(float)])
    slot_opts: list[np.ndarray] = []
    if slots:   # before the pool rows: their duals are read counting from the last row
        reps = term_val / opts.dpr[term_opt]
        movable = ~keep[term_opt]
        cols = [np.flatnonzero(movable & (opts.pool[term_opt] == p) & (opts.dpr[term_opt] >= d)) for p, d, _ in slots]
        slot_opts = [np.unique(term_opt[c]) for c in cols]
        add_rows(np.full(len(slots), -inf), np.array([float(c) for _, _, c in slots]),
                 [term_col[c] for c in cols], [reps[c] for c in cols])
    tpool = opts.pool[term_opt]
    order = np.argsort(tpool, kind="stable")
    bounds = np.searchsorted(tpool[order], np.arange(len(inst.pools) + 1))
    pool_rows = [p for p in range(len(inst.pools)) if bounds[p + 1] > bounds[p]]
    add_rows(np.full(len(pool_rows), -inf), np.array([float(inst.pools[p].capacity) for p in pool_rows]),
             [term_col[order[bounds[p]:bounds[p + 1]]] for p in pool_rows],
             [term_val[order[bounds[p]:bounds[p + 1]]] for p in pool_rows])
    keys, jq = _keys(inst)
    tq = jq[opts.job[term_opt]]
    qorder = np.argsort(tq, kind="stable")
    qb = np.searchsorted(tq[qorder], np.arange(len(keys) + 1))
    q_rows = [q for q in range(len(keys)) if qb[q + 1] > qb[q]]
    add_rows(np.full(len(q_rows), -inf), np.array([float(inst.quotas[keys[q]]) for q in q_rows]),
             [term_col[qorder[qb[q]:qb[q + 1]]] for q in q_rows],
             [term_val[qorder[qb[q]:qb[q + 1]]] for q in q_rows])
    # migration budget
    if inst.budget_gb is not None and (opts.mig_gb > 0).any():
        mo = np.flatnonzero(opts.mig_gb > 0)
        add_rows(np.array([-inf]), np.array([float(inst.budget_gb)]), [mo], [opts.mig_gb[mo]])

    h = _thread_highs()
    # HiGHS's `time_limit` counts the instance's run time over all its solves, and this instance is
    # reused for every LP of the thread: measured from its run time so far, or once a long-running
    # process (the service, a replay) had spent the limit on earlier LPs every later one failed at once
    h.setOptionValue("time_limit", h.getRunTime() + max(0.05, float(time_limit_s)))
    h.setOptionValue("threads", 1)
    h.setOptionValue("simplex_iteration_limit", highspy.kHighsIInf if iterations_per_row is None else
                     int(iterations_per_row * (n_cols + sum(len(r) for r in rows_lo))) + 1000)
    # HiGHS reads a cost of 1e20 or more as infinite and works to absolute tolerances: an objective
    # whose largest cost passes 1e9 (values near the request limits) is solved scaled down by a power
    # of ten, and its value and duals scaled back; ordinary requests are solved exactly as written.
    cost_scale = lp_cost_scale(cost)
    # presolve costs more than it saves on a tiny LP
    h.setOptionValue("presolve", "off" if n_cols <= LP_NO_PRESOLVE_MAX_COLS else "choose")
    h.addVars(n_cols, lower, upper)
    h.changeColsCost(n_cols, np.arange(n_cols, dtype=np.int32), cost * cost_scale)
    lo_all = np.concatenate(rows_lo)
    hi_all = np.concatenate(rows_hi)
    st_all = np.concatenate(starts).astype(np.int32)
    h.addRows(len(lo_all), lo_all, hi_all, nnz, st_all, np.concatenate(idx_parts).astype(np.int32),
              np.concatenate(val_parts))
    got = solved_lp(h, cost_scale, const, len(inst.pools))
    if not isinstance(got, LpSolution):
        return got
    value, duals, colv = got.value, got.duals, got.cols
    xs = colv[:n_opt].copy()
    ns = xs * opts.lo
    ns[chg] += colv[n_opt:]
    prices = np.zeros(len(inst.pools))
    first_pool_row = len(lo_all) - len(pool_rows) - len(q_rows) - (
        1 if inst.budget_gb is not None and (opts.mig_gb > 0).any() else 0)
    for k, p in enumerate(pool_rows):
        prices[p] = max(0.0, -duals[first_pool_row + k])
    qprices = np.zeros(len(keys))
    for k, q in enumerate(q_rows):
        qprices[q] = max(0.0, -duals[first_pool_row + len(pool_rows) + k])
    bprice = max(0.0, -float(duals[-1])) if first_pool_row + len(pool_rows) + len(q_rows) < len(duals) else 0.0
    slot_price = None
    if slots:
        rho = np.zeros(n_opt)
        const_s = 0.0
        for k, (_, _, cap) in enumerate(slots):
            y = max(0.0, -float(duals[first_pool_row - len(slots) + k]))
            rho[slot_opts[k]] += y
            const_s += y * cap
        slot_price = (rho, const_s)
    # a hair above the LP optimum: HiGHS' optimality tolerances, so the bound stays an upper bound
    return Bound(value + 1e-7 * max(1.0, abs(value)), "lp", prices, x=xs, n=ns, quota_prices=qprices,
                 budget_price=bprice, slot_price=slot_price)


LP_MAX_COST = 1e9


def lp_cost_scale(cost: np.ndarray) -> float:
    """1.0, or the power of ten that brings the largest |cost| to at most LP_MAX_COST."""
    big = float(np.abs(cost).max(initial=0.0))
    if big <= LP_MAX_COST:
        return 1.0
    return float(10.0 ** -np.ceil(np.log10(big / LP_MAX_COST)))


@dataclass
class LpSolution:
    """An LP HiGHS proved optimal: its value and row duals in the model's own units, its column values."""
    value: float
    duals: np.ndarray
    cols: np.ndarray


def solved_lp(h, scale: float, constant: float, n_pools: int) -> LpSolution | Bound | None:
    """Run the LP loaded in `h` (costs multiplied by `scale`, maximising `-cost . v + constant`): its
    solution; an infeasible Bound where HiGHS proved it infeasible; None where it proved nothing in time."""
    _run(h)
    status = h.modelStatusToString(h.getModelStatus())
    if status == "Infeasible":
        return Bound(float("inf"), "lp", np.zeros(n_pools), infeasible=True)
    if status != "Optimal":
        return None
    sol = h.getSolution()
    return LpSolution(-h.getInfo().objective_function_value / scale + constant,
                      np.asarray(sol.row_dual) / scale, np.asarray(sol.col_value))


def _run(h) -> None:
    """`h.run()`. HiGHS keeps one thread pool per process, sized by the first run, and refuses a run
    whose `threads` option differs (the model status stays "Not Set"): after another HiGHS user in
    this process (an embedding program, the independent checker in tests) started the pool at its
    default size, every LP of ours would silently fail. Such a run is repeated with `threads` 0,
    which takes the pool as it is (the LP is solved serially either way)."""
    import highspy

    global _pool_threads
    if _pool_threads != 1:
        h.setOptionValue("threads", _pool_threads)
    h.run()
    if h.getModelStatus() == highspy.HighsModelStatus.kNotset:
        _pool_threads = 0   # the pool is never resized: every later run takes it as it is at once
        h.setOptionValue("threads", 0)
        h.run()


_pool_threads = 1   # the `threads` option HiGHS's pool accepts in this process (0 once another user sized it)


_THREAD = threading.local()


def _thread_highs():
    """This thread's Highs instance, emptied of its last model: a small LP solves in a fraction of a
    millisecond, of which constructing a fresh instance and its options took a third. Every option the
    LP depends on is set again by the caller on each use (options outlive `clearModel`)."""
    h = getattr(_THREAD, "highs", None)
    if h is None:
        h = _THREAD.highs = _quiet_highs()
    else:
        h.clearModel()
    return h


_BANNER_LOCK = threading.Lock()
_banner_done = False


def _quiet_highs():
    """A Highs instance; HiGHS prints a banner on stdout at its first construction in a process
    only, so that one construction runs with stdout silenced (and the CLI's JSON stays clean)."""
    import highspy

    global _banner_done
    with _BANNER_LOCK:
        if not _banner_done:
            sys.stdout.flush()
            saved = os.dup(1)
            devnull = os.open(os.devnull, os.O_WRONLY)
            os.dup2(devnull, 1)
            try:
                highspy.Highs()
            finally:
                os.dup2(saved, 1)
                os.close(saved)
                os.close(devnull)
            _banner_done = True
    h = highspy.Highs()
    h.setOptionValue("output_flag", False)
    return h

