"""A neighbourhood step solved as a small integer program (HiGHS) over pools, with packing cuts.

Why: some improvements are chains no single move makes: a job takes another's devices, that job
moves to an equivalent pool, a premium gang swaps clusters at equal value so that a third job grows
(medium family seed 11: a dozen jobs over four pools, worth 1 % of the objective). The CP-SAT
neighbourhoods (placement/lns.py) stall on such sets: knapsacks over pools are what an LP-based
branch-and-bound solves well, since the pool-level LP is nearly integral, and HiGHS solves the
LP-disagreement set of a medium request in tens of milliseconds where CP-SAT found nothing in
seconds. Every job outside the neighbourhood stays on its nodes, so the room it leaves is known
node by node: per pool and replica size d, replicas of d devices or more fit at most
sum over nodes of floor(room / d) (a gang needing whole nodes sees only the nodes left whole), and a
free running job that stays takes its own nodes' share. The answer is packed onto nodes by the
caller (`realize_delta`) and kept only when the canonical objective improves.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from placement.candidates import Options
from placement.instance import Instance
from placement.packing import Packing


def step_options(inst: Instance, opts: Options, best: Packing, free: list[int], lp_x: np.ndarray | None,
             per_job: int) -> np.ndarray:
    """The options a free job may take in the model: where the LP puts weight, its keep, what it
    has now, and its `per_job` most valuable (value per replica x most replicas). (Adding each placed
    job's options worth as much as what it has, up to 3, made the models slower and the plans worse at
    1 s: medium family seeds 0, 2, 8, 11, 16, 29, 35, 37, mean gap to the MIP 0.76 % -> 0.80 %.)"""
    out = []
    for j in free:
        ol = opts.by_job[j]
        if not len(ol):
            continue
        pick = opts.keep[ol].copy()
        if lp_x is not None:
            pick |= lp_x[ol] > 1e-6
        o = best.choice.get(j)
        if o is not None:
            pick |= ol == o
        if per_job:
            pot = np.where(opts.coef[ol] > 0, opts.coef[ol] * opts.hi[ol], -np.inf)
            top = np.argsort(-pot, kind="stable")[:per_job]
            pick[top[np.isfinite(pot[top])]] = True
        out.append(ol[pick])
    return np.concatenate(out) if out else np.zeros(0, dtype=np.int64)


@dataclass
class StepModel:
    """The integer program of one step: columns (an option's x, then replicas above its least), their
    costs and upper bounds, rows (lower, upper, column indices, coefficients), the incumbent as a
    start, and what turns a solution back into (option, replicas) per job."""
    cols: np.ndarray
    job: np.ndarray
    keep: np.ndarray
    lo: np.ndarray
    r0: np.ndarray
    ecol_of: dict[int, int]
    cost: np.ndarray
    upper: np.ndarray
    rows: list[tuple[float, float, list[int], list[float]]]
    start: np.ndarray

    def job_cols(self) -> dict[int, list[int]]:
        """Every column of each job: its options' x and their replicas above the least."""
        out: dict[int, list[int]] = {}
        for c, j in enumerate(self.job.tolist()):
            out.setdefault(j, []).append(c)
            if c in self.ecol_of:
                out[j].append(self.ecol_of[c])
        return out

    def decode(self, val: np.ndarray) -> dict[int, tuple[int, int]]:
        out: dict[int, tuple[int, int]] = {}
        for c, o in enumerate(self.cols.tolist()):
            if val[c] > 0.5:
                j = int(self.job[c])
                reps = int(self.r0[c]) if self.keep[c] else round(
                    float(self.lo[c] + (val[self.ecol_of[c]] if c in self.ecol_of else 0.0)))
                out[j] = (int(o), reps)
        return out


def solve_neighbourhood(inst: Instance, opts: Options, best: Packing, free: set[int], lp_x: np.ndarray | None,
                        seconds: float, per_job: int = 1) -> dict[int, tuple[int, int]] | None:
    """The best (option, replicas) of each job in `free` with every other job held on its nodes in
    `best`, by an integer program over pools stopped after `seconds` (the best answer found, started
    from the incumbent); a job absent from the answer is left unplaced. None where no answer was
    found in time."""
    model = step_model(inst, opts, best, free, lp_x, per_job)
    if model is None:
        return None
    val = _solve(model, seconds)
    return None if val is None else model.decode(val)


def relaxation_disagreements(inst: Instance, opts: Options, best: Packing, lp_x: np.ndarray | None,
                             seconds: float, per_job: int = 1) -> set[int]:
    """The jobs the LP relaxation of the step over every job sets otherwise than the plan has them: a
    neighbourhood for `solve_neighbourhood` (RINS). Why: the chains that matter on medium requests pass
    through jobs the request's LP agrees with, so no neighbourhood built from that LP finds them (medium
    family seed 11), and the step over every job takes seconds (HiGHS spends them in cuts at the root);
    this relaxation holds no job on its nodes and has the packing cuts, and frees a few dozen jobs.
    A running job the plan moved or stopped is not put back on its nodes in it: the plan's other jobs
    may sit there, which a model over pools does not see (the keep moves put running jobs back)."""
    model = step_model(inst, opts, best, set(range(len(inst.jobs))), lp_x, per_job)
    if model is None:
        return set()
    back = model.keep & (model.start[:len(model.cols)] < 0.5)
    model.upper[:len(model.cols)][back] = 0.0
    rel = _solve(model, seconds, relax=True)
    if rel is None:
        return set()
    return {j for j, cs in model.job_cols().items() if np.abs(rel[cs] - model.start[cs]).max() > 1e-6}


def step_model(inst: Instance, opts: Options, best: Packing, free: set[int], lp_x: np.ndarray | None,
               per_job: int = 1) -> StepModel | None:
    """The integer program of the step freeing `free` (see `solve_neighbourhood`); None where it has no
    column or cannot place a protected job."""
    import highspy

    free_l = sorted(free)
    cols = step_options(inst, opts, best, free_l, lp_x, per_job)
    if not len(cols):
        return None
    free_set = set(free_l)
    # room per node once every other job is on its nodes, and what else they hold
    room = np.where(inst.node_up, inst.node_devices, 0).astype(np.int64)
    quota_left = dict(inst.quotas)
    mig_left = float(inst.budget_gb) if inst.budget_gb is not None else None
    for j, o in best.choice.items():
        if j in free_set:
            continue
        info = inst.jobs[j]
        for n, k in best.nodes[j].items():
            room[n] -= k * info.dpr
        if info.key in quota_left:
            quota_left[info.key] -= sum(best.nodes[j].values()) * info.dpr
        if mig_left is not None:
            mig_left -= float(opts.mig_gb[o])
    np.maximum(room, 0, out=room)
    pc = np.array([inst.jobs[j].preempt_cost for j in range(len(inst.jobs))])

    n_x = len(cols)
    job = opts.job[cols]
    keep = opts.keep[cols]
    lo = np.where(keep, 0, opts.lo[cols]).astype(float)
    r0 = np.array([inst.jobs[j].r0 for j in job.tolist()], dtype=float)
    span = np.where(keep, 0, opts.hi[cols] - opts.lo[cols]).astype(float)
    ecol = np.flatnonzero(span > 0)              # e = replicas above lo, 0 <= e <= span * x
    n_cols = n_x + len(ecol)
    dpr = opts.dpr[cols].astype(float)
    base_reps = np.where(keep, r0, lo)           # replicas at x = 1, e = 0
    cost = np.zeros(n_cols)
    cost[:n_x] = -(opts.coef[cols] * base_reps + pc[job])
    cost[n_x:] = -opts.coef[cols][ecol]
    upper = np.ones(n_cols)
    upper[n_x:] = span[ecol]

    rows: list[tuple[float, float, list[int], list[float]]] = []
    inf = highspy.kHighsInf
    for k, c in enumerate(ecol.tolist()):
        rows.append((-inf, 0.0, [n_x + k, c], [1.0, -span[c]]))
    ecol_of = {int(c): n_x + k for k, c in enumerate(ecol.tolist())}
    by_job: dict[int, list[int]] = {}
    for c, j in enumerate(job.tolist()):
        by_job.setdefault(j, []).append(c)
    for j, cs in by_job.items():
        rows.append((1.0 if inst.jobs[j].protected else -inf, 1.0, cs, [1.0] * len(cs)))
    for j in free_l:   # a protected job with no column here cannot be placed by this model
        if inst.jobs[j].protected and j not in by_job:
            return None

    def devices(c: int, d: float) -> tuple[list[int], list[float]]:
        """Columns and coefficients of option column c's replicas of size >= d counted d-wise."""
        idx, val = [c], [base_reps[c] * d]
        if c in ecol_of:
            idx.append(ecol_of[c])
            val.append(d)
        return idx, val

    # a free running job stays only on its own nodes, exactly: those must hold it (with the others staying)
    on_node: dict[int, tuple[list[int], list[float]]] = {}
    for c in np.flatnonzero(keep).tolist():
        info = inst.jobs[int(job[c])]
        for n, k in info.cur_nodes.items():
            i, v = on_node.setdefault(n, ([], []))
            i.append(c)
            v.append(float(k * info.dpr))
    for n, (i, v) in sorted(on_node.items()):
        if sum(v) > room[n]:
            rows.append((-inf, float(room[n]), i, v))
    pool = opts.pool[cols]
    for p in sorted(set(pool.tolist())):
        in_p = np.flatnonzero(pool == p).tolist()
        nodes = np.asarray(inst.pools[p].nodes, dtype=np.int64)
        idx: list[int] = []
        val: list[float] = []
        for c in in_p:
            i, v = devices(c, dpr[c])
            idx += i
            val += v
        rows.append((-inf, float(room[nodes].sum()), idx, val))
        # replicas of d devices or more fit in at most sum floor(room / d) slots of d; a free running job
        # that stays holds its own nodes
        for d in sorted({int(dpr[c]) for c in in_p if not keep[c] and dpr[c] > 1}):
            cap = float((room[nodes] // d).sum())
            idx, val = [], []
            # the slots of d the free running jobs on a node take if they all stay, shared among them by
            # devices (exact when all stay, as in the incumbent; a restriction of the pooled model either way)
            share: dict[int, float] = {}
            for n, (cs, vs) in on_node.items():
                if int(inst.node_pool[n]) == p:
                    lost = int(room[n] // d) - int(max(0, room[n] - int(sum(vs))) // d)
                    for c, v in zip(cs, vs):
                        share[c] = share.get(c, 0.0) + lost * v / sum(vs)
            for c in in_p:
                if keep[c]:
                    if share.get(c, 0.0) > 0:
                        idx.append(c)
                        val.append(share[c])
                elif dpr[c] >= d:
                    i, _ = devices(c, 1.0)
                    idx += i
                    val += [base_reps[c], 1.0][:len(i)]
            if idx:
                rows.append((-inf, cap, idx, val))
    by_key: dict[tuple[str, str], tuple[list[int], list[float]]] = {}
    for c in range(n_x):
        key = inst.jobs[int(job[c])].key
        if key in quota_left:
            i, v = devices(c, dpr[c])
            got = by_key.setdefault(key, ([], []))
            got[0].extend(i)
            got[1].extend(v)
    for key, (idx, val) in sorted(by_key.items()):
        rows.append((-inf, float(max(0, quota_left[key])), idx, val))
    if mig_left is not None:
        mig = opts.mig_gb[cols]
        m = np.flatnonzero(mig > 0).tolist()
        if m:
            rows.append((-inf, max(0.0, mig_left), m, [float(mig[c]) for c in m]))

    # v1.1 allowed counts: one binary per listed count of a change column, their sum its x and their
    # weighted sum its replicas above lo (left out, the step granted a gang allowed 12 or 24 replicas 21,
    # which the packing then cut to 12)
    w_of: dict[int, list[tuple[int, int]]] = {}   # column -> (binary column, count)
    w = n_cols
    for c in np.flatnonzero(~keep).tolist():
        al = inst.jobs[int(job[c])].allowed
        if al is None:
            continue
        counts = [int(a) for a in al.tolist() if lo[c] <= a <= lo[c] + span[c]]
        if len(counts) == span[c] + 1:
            continue
        w_of[c] = [(w + i, a) for i, a in enumerate(counts)]
        rows.append((0.0, 0.0, [k for k, _ in w_of[c]] + [c], [1.0] * len(counts) + [-1.0]))
        if c in ecol_of:
            rows.append((0.0, 0.0, [k for k, _ in w_of[c]] + [ecol_of[c]],
                         [float(a - lo[c]) for _, a in w_of[c]] + [-1.0]))
        w += len(counts)
    if w > n_cols:
        cost = np.r_[cost, np.zeros(w - n_cols)]
        upper = np.r_[upper, np.ones(w - n_cols)]

    # start from the incumbent: the answer is then never worse at pool level than what the plan has
    start = np.zeros(w)
    for c, o in enumerate(cols.tolist()):
        j = int(job[c])
        if best.choice.get(j) == o:
            start[c] = 1.0
            if c in ecol_of:
                start[ecol_of[c]] = min(span[c], max(0.0, sum(best.nodes[j].values()) - lo[c]))
            for k, a in w_of.get(c, ()):
                if a == lo[c] + (start[ecol_of[c]] if c in ecol_of else 0.0):
                    start[k] = 1.0
    return StepModel(cols=cols, job=job, keep=keep, lo=lo, r0=r0, ecol_of=ecol_of, cost=cost, upper=upper,
                     rows=rows, start=start)


def _solve(model: StepModel, seconds: float, relax: bool = False,
           fixed: np.ndarray | None = None) -> np.ndarray | None:
    """The column values HiGHS finds for `model` within `seconds` (the LP relaxation's with `relax`),
    started from the incumbent, with the `fixed` columns held at the incumbent's values; None where
    it found none."""
    import highspy

    from placement.bound import _quiet_highs, _run, lp_cost_scale

    n_cols = len(model.cost)
    rows = model.rows
    lower = np.zeros(n_cols)
    upper = model.upper.copy()
    if fixed is not None:
        lower[fixed] = model.start[fixed]
        upper[fixed] = model.start[fixed]
    h = _quiet_highs()
    h.setOptionValue("time_limit", h.getRunTime() + max(0.01, float(seconds)))
    h.setOptionValue("threads", 1)
    h.setOptionValue("presolve", "choose")
    h.setOptionValue("mip_rel_gap", 1e-6)
    scale = lp_cost_scale(model.cost)
    h.addVars(n_cols, lower, upper)
    h.changeColsCost(n_cols, np.arange(n_cols, dtype=np.int32), model.cost * scale)
    if not relax:
        h.changeColsIntegrality(n_cols, np.arange(n_cols, dtype=np.int32),
                                np.array([highspy.HighsVarType.kInteger] * n_cols))
    lo_r = np.array([r[0] for r in rows])
    hi_r = np.array([r[1] for r in rows])
    starts = np.cumsum([0] + [len(r[2]) for r in rows[:-1]]).astype(np.int32)
    h.addRows(len(rows), lo_r, hi_r, int(sum(len(r[2]) for r in rows)), starts,
              np.concatenate([np.asarray(r[2], dtype=np.int32) for r in rows]),
              np.concatenate([np.asarray(r[3], dtype=float) for r in rows]))
    if not relax:
        sol = highspy.HighsSolution()
        sol.col_value = model.start.tolist()
        sol.value_valid = True
        h.setSolution(sol)
    _run(h)
    info = h.getInfo()
    if info.primal_solution_status < 1:
        return None
    return np.asarray(h.getSolution().col_value)
