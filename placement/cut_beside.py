"""The pool-level integer model with whole-node cuts, solved by HiGHS in a child process beside the search.

Why: on lumpy fleets the bounds the engine computes in its own time (the pool LP, integer knapsacks at
its prices) stay 1-3 % above the best plan where the truth is a few tenths away, so the `gap` users read
overstates what is left (medium family seed 29: the knapsack bound 14,966, the plan 14,708, the
node-level optimum at most 14,755). The pool-level integer model closes most of that, and one cut per
pool closes the rest: replicas that need a whole largest node, plus the largest nodes kept jobs sit on,
are at most the pool's largest up nodes (a kept job holds its node map exactly, so its node can take no
whole-node replica; `placement.exact.whole_node_bound` is the same model, built with PuLP for the
bench, less two additions the family's requests never call on: slot cuts where a pool's nodes are of
mixed sizes, and `replicas.allowed`). On a machine with a second core the model runs there, in a forked child, for the whole search:
each dual bound HiGHS reports is valid (at medium size 14,760 after a third of a second on that seed),
and the plan takes the last one reported when its search stops, never waiting past its own deadline.
"""

from __future__ import annotations

import atexit
import os
import select
import signal
import struct
import time
import weakref
from dataclasses import dataclass

import numpy as np

from placement.bound import Bound
from placement.candidates import Options
from placement.instance import Instance

TOLERANCE = 1e-6   # relative hair added to HiGHS' dual bound (its feasibility tolerances), as placement.exact


@dataclass
class CutModel:
    """The model's columns (option columns first, then replicas of each change, then one per largest
    node a kept job sits on) and rows, in HiGHS' row-wise form; maximise `-cost . v + constant`."""
    cost: np.ndarray
    upper: np.ndarray
    row_lo: np.ndarray
    row_hi: np.ndarray
    starts: np.ndarray
    index: np.ndarray
    value: np.ndarray
    constant: float
    n_col_of: np.ndarray   # per option, its replicas column (-1: a keep, whose replicas are fixed)
    pool_row0: int = 0     # the first pool row (one per pool, in pool order); the quota rows follow
    budget_row: int = -1   # the migration budget's row (-1: none)
    z_col: np.ndarray | None = None   # per (largest node a kept job sits on, keep option on it): the node's column
    z_opt: np.ndarray | None = None   # ... and the keep option (z_col >= x_opt)


@dataclass
class CutResult:
    bound: float | None                      # upper bound on every valid plan's objective (None: none yet)
    objective: float | None                  # the model's value of its best solution
    choice: dict[int, tuple[int, int]]       # that solution: job -> (option, replicas)
    status: str


def cut_model(inst: Instance, opts: Options) -> CutModel:
    """The whole-node-cut model of `inst` (see the module's docstring). A change option of a job with
    `replicas.allowed` (v1.1) grants one of its listed counts: a binary per count, their sum the option's
    `x` and their weighted sum its replicas (left out, a gang allowed 12 or 24 replicas took 21 in the
    model, and the bound stood 8 % above every plan)."""
    n_opt = len(opts)
    job, pool, keep = opts.job, opts.pool, opts.keep
    r0 = np.array([j.r0 for j in inst.jobs], dtype=float)[job]
    pc = np.array([j.preempt_cost for j in inst.jobs], dtype=float)
    change = np.flatnonzero(~keep)
    n_col_of = np.full(n_opt, -1, dtype=np.int64)
    n_col_of[change] = n_opt + np.arange(len(change))
    # the largest up nodes kept jobs sit on, in pools with options whose replica takes such a node whole
    whole = change[opts.dpr[change] == np.array([p.dmax for p in inst.pools], dtype=np.int64)[pool[change]]]
    whole_pools = sorted(set(pool[whole].tolist()))
    big_of = {p: [n for n in inst.pools[p].nodes if inst.node_up[n] and int(inst.node_devices[n]) == inst.pools[p].dmax]
              for p in whole_pools}
    held: dict[int, list[int]] = {}
    for o in np.flatnonzero(keep).tolist():
        p = int(pool[o])
        if p in big_of:
            dmax = inst.pools[p].dmax
            for n in inst.jobs[int(job[o])].cur_nodes:
                if int(inst.node_devices[n]) == dmax:
                    held.setdefault(n, []).append(o)
    z_nodes = sorted(held)
    z_col = {n: n_opt + len(change) + i for i, n in enumerate(z_nodes)}
    listed = _listed_counts(inst, opts, change)
    w_col0 = n_opt + len(change) + len(z_nodes)
    n_cols = w_col0 + sum(len(c) for _, c in listed)

    cost = np.zeros(n_cols)
    cost[:n_opt] = -(np.where(keep, opts.coef * r0, 0.0) + pc[job])
    cost[n_opt:n_opt + len(change)] = -opts.coef[change]
    upper = np.ones(n_cols)
    upper[n_opt:n_opt + len(change)] = opts.hi[change]

    rows_r: list[np.ndarray] = []
    rows_c: list[np.ndarray] = []
    rows_v: list[np.ndarray] = []
    lo_parts: list[np.ndarray] = []
    hi_parts: list[np.ndarray] = []
    inf = np.inf
    n_rows = 0

    def add(r: np.ndarray, c: np.ndarray, v: np.ndarray, lo: np.ndarray, hi: np.ndarray) -> None:
        nonlocal n_rows
        rows_r.append(r + n_rows)
        rows_c.append(c)
        rows_v.append(v)
        lo_parts.append(lo)
        hi_parts.append(hi)
        n_rows += len(lo)

    k = len(change)
    ar = np.arange(k)
    # lo x <= n <= hi x for each change
    add(np.r_[ar, ar], np.r_[n_col_of[change], change], np.r_[np.ones(k), -opts.lo[change].astype(float)],
        np.zeros(k), np.full(k, inf))
    add(np.r_[ar, ar], np.r_[n_col_of[change], change], np.r_[np.ones(k), -opts.hi[change].astype(float)],
        np.full(k, -inf), np.zeros(k))
    # one option per job (exactly one for a protected job)
    n_jobs = len(inst.jobs)
    prot = np.array([j.protected for j in inst.jobs], dtype=bool)
    add(job.astype(np.int64), np.arange(n_opt), np.ones(n_opt), np.where(prot, 1.0, -inf), np.ones(n_jobs))
    # devices: a keep's are fixed (dpr r0 on x), a change's dpr on its replicas column
    dev_col = np.where(keep, np.arange(n_opt), n_col_of)
    dev_val = np.where(keep, opts.dpr * r0, opts.dpr).astype(float)
    cap = np.array([p.capacity for p in inst.pools], dtype=float)
    pool_row0 = n_rows
    add(pool.astype(np.int64), dev_col, dev_val, np.full(len(cap), -inf), cap)
    keys = list(inst.quotas)
    if keys:
        row_of_key = {key: i for i, key in enumerate(keys)}
        qrow = np.array([row_of_key.get(j.key, -1) for j in inst.jobs], dtype=np.int64)[job]
        sel = np.flatnonzero(qrow >= 0)
        add(qrow[sel], dev_col[sel], dev_val[sel], np.full(len(keys), -inf),
            np.array([float(inst.quotas[key]) for key in keys]))
    budget_row = -1
    if inst.budget_gb is not None:
        sel = np.flatnonzero(opts.mig_gb > 0)
        if len(sel):
            budget_row = n_rows
            add(np.zeros(len(sel), dtype=np.int64), sel, opts.mig_gb[sel].astype(float), np.array([-inf]),
                np.array([float(inst.budget_gb)]))
    # the cuts: z_n >= x_o for each keep o on largest node n; whole-node replicas + sum z <= largest nodes
    pairs = [(z_col[n], o) for n in z_nodes for o in held[n]]
    zc = np.array([p[0] for p in pairs], dtype=np.int64)
    xo = np.array([p[1] for p in pairs], dtype=np.int64)
    if pairs:
        m = len(pairs)
        add(np.r_[np.arange(m), np.arange(m)], np.r_[zc, xo], np.r_[np.ones(m), -np.ones(m)],
            np.zeros(m), np.full(m, inf))
    for i, p in enumerate(whole_pools):
        cols = np.r_[n_col_of[whole[pool[whole] == p]],
                     np.array([z_col[n] for n in big_of[p] if n in z_col], dtype=np.int64)]
        add(np.zeros(len(cols), dtype=np.int64), cols.astype(np.int64), np.ones(len(cols)), np.array([-inf]),
            np.array([float(len(big_of[p]))]))
    # slot cuts: a replica of d' >= d devices takes floor(d'/d) of a pool's d-device slots (sum over its up
    # nodes of floor(devices / d)), where those are fewer than the pool's devices allow (nodes of mixed
    # sizes: devices on nodes smaller than d hold no such replica)
    for p in sorted(set(pool.tolist())):
        sizes = np.array([int(inst.node_devices[n]) for n in inst.pools[p].nodes if inst.node_up[n]], dtype=np.int64)
        in_p = np.flatnonzero(pool == p)
        for d in sorted({int(x) for x in opts.dpr[in_p].tolist() if x > 1}):
            slots = int((sizes // d).sum())
            if slots >= inst.pools[p].capacity // d:
                continue
            big = in_p[opts.dpr[in_p] >= d]
            coef = (opts.dpr[big] // d).astype(float)
            cols = np.where(keep[big], big, n_col_of[big])
            vals = np.where(keep[big], coef * r0[big], coef)
            add(np.zeros(len(big), dtype=np.int64), cols.astype(np.int64), vals, np.array([-inf]),
                np.array([float(slots)]))
    # v1.1 allowed counts: sum w = x and sum count * w = n, one binary w per listed count
    w = w_col0
    for o, counts in listed:
        ws = np.arange(w, w + len(counts), dtype=np.int64)
        add(np.zeros(len(counts) + 1, dtype=np.int64), np.r_[ws, o], np.r_[np.ones(len(counts)), -1.0],
            np.zeros(1), np.zeros(1))
        add(np.zeros(len(counts) + 1, dtype=np.int64), np.r_[ws, n_col_of[o]],
            np.r_[np.asarray(counts, dtype=float), -1.0], np.zeros(1), np.zeros(1))
        w += len(counts)

    r = np.concatenate(rows_r)
    order = np.argsort(r, kind="stable")
    counts = np.bincount(r, minlength=n_rows)
    starts = np.r_[0, np.cumsum(counts)[:-1]].astype(np.int32)
    return CutModel(cost=cost, upper=upper, row_lo=np.concatenate(lo_parts), row_hi=np.concatenate(hi_parts),
                    starts=starts, index=np.concatenate(rows_c)[order].astype(np.int32),
                    value=np.concatenate(rows_v)[order], constant=-float(pc.sum()), n_col_of=n_col_of,
                    pool_row0=pool_row0, budget_row=budget_row, z_col=zc, z_opt=xo)


def _loaded(model: CutModel, seconds: float, integer: bool):
    """(a Highs instance holding `model`, its integer columns as such where `integer`, stopping after
    `seconds`; the factor its costs were scaled by)."""
    import highspy

    from placement.bound import _quiet_highs, lp_cost_scale

    h = _quiet_highs()
    h.setOptionValue("time_limit", h.getRunTime() + max(0.01, float(seconds)))
    h.setOptionValue("threads", 1)
    n_cols = len(model.cost)
    scale = lp_cost_scale(model.cost)
    every = np.arange(n_cols, dtype=np.int32)
    h.addVars(n_cols, np.zeros(n_cols), model.upper)
    h.changeColsCost(n_cols, every, model.cost * scale)
    if integer:
        h.changeColsIntegrality(n_cols, every, np.array([highspy.HighsVarType.kInteger] * n_cols))
    h.addRows(len(model.row_lo), model.row_lo, model.row_hi, len(model.index), model.starts, model.index,
              model.value)
    return h, scale


def solution_arrays(inst: Instance, opts: Options, model: CutModel,
                    v: np.ndarray) -> tuple[float, np.ndarray, np.ndarray]:
    """A solution's column values `v` as (its objective in the model, the option per job (-1: none), the
    replicas per job)."""
    n_opt = len(opts)
    chosen = np.flatnonzero(np.asarray(v[:n_opt]) > 0.5)
    jobs = opts.job[chosen]
    cols = model.n_col_of[chosen]
    r0 = np.array([j.r0 for j in inst.jobs], dtype=np.int64)
    option = np.full(len(inst.jobs), -1, dtype=np.int64)
    replicas = np.zeros(len(inst.jobs), dtype=np.int64)
    option[jobs] = chosen
    replicas[jobs] = np.where(cols >= 0, np.rint(np.asarray(v)[np.maximum(cols, 0)]), r0[jobs]).astype(np.int64)
    return float(-(model.cost @ np.asarray(v)) + model.constant), option, replicas


def solve_cut_model(inst: Instance, opts: Options, model: CutModel, seconds: float,
                    report=None, improved=None, feasibility_jump: bool = True, presolve: bool = True) -> CutResult:
    """HiGHS on `model` for at most `seconds`; its dual bound (valid whether or not it finished) and its
    best solution as a choice. `report(bound)`, where given, hears each dual bound HiGHS reaches on the
    way (at its callbacks: after the root LP, between its nodes); `improved(values)` each better solution
    it finds (its column values). Without `feasibility_jump`, HiGHS skips the heuristic it runs between
    presolve and the root LP, so the root's bound comes sooner (the answer is the same); without
    `presolve`, it skips its presolve (probing and the clique table take 0.4 s of a medium model's first
    0.55 s): the root's bound comes sooner again, its solutions later."""
    from placement.bound import _run

    h, scale = _loaded(model, seconds, integer=True)
    h.setOptionValue("mip_rel_gap", 1e-7)
    if not feasibility_jump:
        _set(h, "mip_heuristic_run_feasibility_jump", False)
    if not presolve:
        _set(h, "presolve", "off")
    if improved is not None:
        def found(e) -> None:
            improved(np.asarray(e.data_out.mip_solution))
        h.cbMipImprovingSolution += found

    def value_of(dual: float) -> float | None:
        if not np.isfinite(dual):
            return None
        b = -dual / scale + model.constant
        return b + TOLERANCE * max(1.0, abs(b))

    if report is not None:
        def hear(e) -> None:
            b = value_of(float(e.data_out.mip_dual_bound))
            if b is not None:
                report(b)
        h.cbMipInterrupt += hear
    _run(h)
    status = h.modelStatusToString(h.getModelStatus())
    info = h.getInfo()
    if status == "Infeasible":
        return CutResult(None, None, {}, status)
    bound = value_of(float(info.mip_dual_bound))
    objective, choice = None, {}
    if info.primal_solution_status >= 1 and np.isfinite(info.objective_function_value):
        objective, option, replicas = solution_arrays(inst, opts, model, np.asarray(h.getSolution().col_value))
        choice = _choice(option, replicas)
    return CutResult(bound, objective, choice, status)


def _listed_counts(inst: Instance, opts: Options, change: np.ndarray) -> list[tuple[int, list[int]]]:
    """(change option, the counts it may grant) for each change option of a job with `replicas.allowed`
    whose listed counts within its [lo, hi] are not every count there (where they are, lo <= n <= hi says it)."""
    out: list[tuple[int, list[int]]] = []
    if all(i.allowed is None for i in inst.jobs):
        return out
    for o in change.tolist():
        al = inst.jobs[int(opts.job[o])].allowed
        if al is None:
            continue
        lo, hi = int(opts.lo[o]), int(opts.hi[o])
        counts = [int(a) for a in al.tolist() if lo <= a <= hi]
        if len(counts) < hi - lo + 1:
            out.append((o, counts))
    return out


def _set(h, name: str, value) -> None:
    """Set a HiGHS option, failing loudly where this HiGHS does not know it (it would only warn)."""
    import highspy

    if h.setOptionValue(name, value) != highspy.HighsStatus.kOk:
        raise RuntimeError(f"HiGHS option {name}={value!r} was not accepted")


def _choice(option: np.ndarray, replicas: np.ndarray) -> dict[int, tuple[int, int]]:
    """Per-job arrays (option, -1 for none; replicas) as a choice: job -> (option, replicas)."""
    return {j: (int(option[j]), int(replicas[j])) for j in np.flatnonzero(option >= 0).tolist()}


def cut_lp(inst: Instance, opts: Options, model: CutModel, seconds: float) -> Bound | None:
    """The LP relaxation of `model`: the pool LP plus the whole-node cuts, so at most the pool LP's value
    and as valid (a relaxation of a relaxation); its primal leans away from nodes kept jobs hold, its
    duals price the pools, quotas and budget as the pool LP's do. None if HiGHS did not prove it in time."""
    from placement.bound import LpSolution, solved_lp

    h, scale = _loaded(model, seconds, integer=False)
    got = solved_lp(h, scale, model.constant, len(inst.pools))
    if not isinstance(got, LpSolution):
        return got
    value, duals, v = got.value, got.duals, got.cols
    n_opt = len(opts)
    x = v[:n_opt].copy()
    r0 = np.array([j.r0 for j in inst.jobs], dtype=float)[opts.job]
    n = np.where(model.n_col_of >= 0, v[np.maximum(model.n_col_of, 0)], r0 * x)
    n_pools, n_keys = len(inst.pools), len(inst.quotas)
    prices = np.maximum(0.0, -duals[model.pool_row0:model.pool_row0 + n_pools])
    qprices = np.maximum(0.0, -duals[model.pool_row0 + n_pools:model.pool_row0 + n_pools + n_keys])
    bprice = max(0.0, -float(duals[model.budget_row])) if model.budget_row >= 0 else 0.0
    return Bound(value + 1e-7 * max(1.0, abs(value)), "lp", prices, x=x, n=n, quota_prices=qprices,
                 budget_price=bprice)


def can_run_beside() -> bool:
    """Whether this platform can run the model in a child process (fork)."""
    return hasattr(os, "fork")


_UNREAPED: list[int] = []   # children killed but not yet waited for (their exit takes the kernel milliseconds)
_RUNNING: set[int] = set()   # children started and not yet stopped (a plan that returned early leaves one)


def _reap(block: bool = False) -> None:
    """Wait for the killed children that have exited (all of them with `block`)."""
    for pid in list(_UNREAPED):
        try:
            done, _ = os.waitpid(pid, 0 if block else os.WNOHANG)
        except ChildProcessError:
            done = pid
        if done:
            _UNREAPED.remove(pid)


def _stop(pid: int) -> None:
    """Kill a child; it is reaped later (at the next start or at exit), so the plan does not wait for the
    kernel to tear down its copy of the parent's memory."""
    _RUNNING.discard(pid)
    try:
        os.kill(pid, signal.SIGKILL)
    except ProcessLookupError:
        pass
    _UNREAPED.append(pid)


def _abandon(state: dict) -> None:
    """A CutBeside dropped before its result was asked for (a plan that returned early): close its pipe
    and stop its child now rather than at its time limit."""
    if state["fd"] >= 0:
        os.close(state["fd"])
        state["fd"] = -1
        _stop(state["pid"])


@atexit.register
def _stop_all() -> None:
    """At exit, stop the children still running and wait for every stopped one."""
    for pid in list(_RUNNING):
        _stop(pid)
    _reap(block=True)


class _SharedSolution:
    """The child's latest solution in memory shared with the parent (an anonymous shared mapping made
    before the fork): two slots written in turn, each with a sequence number that is odd while it is being
    written, and a header naming the last one finished; so the parent reads a whole solution at any time,
    even one the child was killed in the middle of replacing. A pipe would fill (a solution is 16 bytes a
    job) and block the child's bound reports."""

    def __init__(self, n_jobs: int):
        import mmap

        self._mm = mmap.mmap(-1, 8 * (4 + 2 + 2 * 2 * n_jobs))
        self._head = np.ndarray((4,), dtype=np.int64, buffer=self._mm, offset=0)     # [last slot + 1, seq 0, seq 1, -]
        self._obj = np.ndarray((2,), dtype=np.float64, buffer=self._mm, offset=32)
        self._data = np.ndarray((2, 2, n_jobs), dtype=np.int64, buffer=self._mm, offset=48)   # slot, (option, replicas)

    def write(self, objective: float, option: np.ndarray, replicas: np.ndarray) -> None:
        """(the child) The slot not named last, then the header names it."""
        t = 1 if self._head[0] == 1 else 0
        self._head[1 + t] += 1
        self._obj[t] = objective
        self._data[t, 0] = option
        self._data[t, 1] = replicas
        self._head[1 + t] += 1
        self._head[0] = t + 1

    def read(self) -> tuple[float, np.ndarray, np.ndarray] | None:
        """(the parent) The last whole solution written, or None."""
        last = int(self._head[0])
        for t in ([last - 1, 2 - last] if last else []):
            before = int(self._head[1 + t])
            got = (float(self._obj[t]), self._data[t, 0].copy(), self._data[t, 1].copy())
            if before % 2 == 0 and before > 0 and int(self._head[1 + t]) == before:
                return got
        return None


class CutBeside:
    """`solve_cut_model` in a forked child process started at once, for at most until `until` (a
    perf_counter reading); the model is built here first (a few milliseconds of array passes). A
    process, not a thread: HiGHS checks its time limit between its nodes' LPs and not while it separates
    cuts at the root, which on some medium requests ran 1-3 s past the limit; a child is killed when the
    plan needs its answer, and the dual bounds it reported by then stand. It reports each bound as 8
    bytes on a pipe."""

    def __init__(self, inst: Instance, opts: Options, until: float, model: CutModel | None = None,
                 feasibility_jump: bool = True, presolve: bool = True):
        _reap()
        model = cut_model(inst, opts) if model is None else model
        self.bound: float | None = None
        self.finished: float | None = None
        self._buf = b""
        self._shared = _SharedSolution(len(inst.jobs))
        r, w = os.pipe()
        self._pid = os.fork()
        if self._pid == 0:   # the child: solve, report, exit at once (no cleanup of the parent's state)
            code = 1
            try:
                os.close(r)

                def report(b: float) -> None:
                    os.write(w, struct.pack("<d", b))

                def improved(v: np.ndarray) -> None:
                    self._shared.write(*solution_arrays(inst, opts, model, v))

                got = solve_cut_model(inst, opts, model, until - time.perf_counter(), report=report,
                                      improved=improved, feasibility_jump=feasibility_jump,
                                      presolve=presolve)
                if got.bound is not None:
                    report(got.bound)
                code = 0
            finally:
                os._exit(code)
        os.close(w)
        self._fd = r
        _RUNNING.add(self._pid)
        self._state = {"fd": r, "pid": self._pid}
        weakref.finalize(self, _abandon, self._state)

    def solution(self) -> tuple[float, dict[int, tuple[int, int]]] | None:
        """The best solution the child found so far, (its objective in the model, its choice: job ->
        (option, replicas)), or None; the child runs on."""
        got = self._shared.read()
        return None if got is None else (got[0], _choice(got[1], got[2]))

    def result(self, wait_until: float) -> float | None:
        """The tightest dual bound the child reported by `wait_until` (or by its end, if sooner); the
        child is then stopped and reaped."""
        try:
            while True:
                left = wait_until - time.perf_counter()
                ready, _, _ = select.select([self._fd], [], [], max(0.0, left))
                if not ready:
                    break
                chunk = os.read(self._fd, 4096)
                if not chunk:   # the child is done
                    self.finished = time.perf_counter()
                    break
                self._buf += chunk
        finally:
            _abandon(self._state)   # the pipe closed, the child stopped (once)
        whole = len(self._buf) // 8 * 8
        values = [v for (v,) in struct.iter_unpack("<d", self._buf[:whole])]
        self.bound = min(values) if values else None
        return self.bound
