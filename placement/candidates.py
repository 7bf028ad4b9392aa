"""Candidate options per job: where it could run, pruned only of what cannot work.

An option is (job, pool) with a replica range and a value per replica. A running job that
may stay exactly where it is also gets a *keep* option (no disruption, replicas fixed at
today's count). Pruning here is exact (an option removed is infeasible), so a model over
all options is a relaxation of the contract and its bound is valid.
"""

from __future__ import annotations

from collections import defaultdict
from dataclasses import dataclass, field
from itertools import pairwise
from typing import NamedTuple

import numpy as np

from placement import contract
from placement.instance import Instance, JobInfo

SMALL_PAIRS = 256   # jobs x pools up to which options are built in plain Python (placement/candidates_small.py)


class OptionLists(NamedTuple):
    """`Options`' columns as Python lists (`Options.lists`)."""

    job: list[int]
    pool: list[int]
    keep: list[bool]
    lo: list[int]
    hi: list[int]
    unit: list[float]
    coef: list[float]
    dpr: list[int]
    mig_gb: list[float]


@dataclass
class Options:
    job: np.ndarray        # int, job index
    pool: np.ndarray       # int, pool index
    keep: np.ndarray       # bool, the job's current node map, unchanged
    lo: np.ndarray         # int, fewest replicas if chosen
    hi: np.ndarray         # int, most replicas if chosen
    unit: np.ndarray       # float, value per replica before disruption (w * dpr * speed * locality)
    coef: np.ndarray       # float, objective per replica (unit, less the disruption share for changes)
    dpr: np.ndarray        # int, devices per replica
    mig_gb: np.ndarray     # float, checkpoint GB moved across regions if chosen (0 if none)
    by_job: list[np.ndarray]       # option indices of each job
    no_option_reason: dict[int, tuple[str, str]]   # job -> (code, reason) when it has no option
    _lists: OptionLists | None = field(default=None, init=False, repr=False, compare=False)
    _movable: list[bool] | None = field(default=None, init=False, repr=False, compare=False)

    def __len__(self) -> int:
        return len(self.job)

    def lists(self) -> OptionLists:
        """The columns as Python lists, built on first use: the moves (placement/gang_insert.py) and the
        greedy's ranking of a job's few options read single entries in loops, where a numpy scalar read
        costs several times a list's (the columns are never changed once built)."""
        if self._lists is None:
            self._lists = OptionLists(self.job.tolist(), self.pool.tolist(), self.keep.tolist(), self.lo.tolist(),
                                      self.hi.tolist(), self.unit.tolist(), self.coef.tolist(), self.dpr.tolist(),
                                      self.mig_gb.tolist())
        return self._lists

    def movable(self) -> list[bool]:
        """Per job whether it has a change option (somewhere to go other than where it runs), built on first
        use: the moves may clear a protected job off its nodes only where it has (placement/gang_insert.py)."""
        if self._movable is None:
            has = np.bincount(self.job[~self.keep], minlength=len(self.by_job)) > 0
            self._movable = has.tolist()
        return self._movable

    def restrict(self, idx: np.ndarray) -> Options:
        """The options at `idx` (sorted), as an Options of their own; `by_job` re-indexed."""
        idx = np.sort(np.asarray(idx, dtype=np.int64))
        pos = np.full(len(self.job), -1, dtype=np.int64)
        pos[idx] = np.arange(len(idx))
        by_job = [pos[b][pos[b] >= 0] for b in self.by_job]
        return Options(self.job[idx], self.pool[idx], self.keep[idx], self.lo[idx], self.hi[idx], self.unit[idx],
                       self.coef[idx], self.dpr[idx], self.mig_gb[idx], by_job, self.no_option_reason)


def build_options(inst: Instance) -> Options:
    """Every feasible (job, pool) option, plus keep options for running jobs that may stay.

    A small request is built in plain Python (`placement.candidates_small`), where the vectorised
    builder's numpy calls would cost more than loops; the two give the same options."""
    if len(inst.jobs) * len(inst.pools) <= SMALL_PAIRS:
        from placement.candidates_small import build_options_small
        return build_options_small(inst)
    return build_options_vectorised(inst)


def build_options_vectorised(inst: Instance) -> Options:
    """`build_options` in array passes: every (job, type) pair is crossed with the type's pools in one
    pass and filtered with array masks, so a planet-size request (20,000 jobs, 300,000 options)
    compiles in a fraction of a second."""
    rix, storage, link, pool_reg, pool_dmax, pools_by_accel = _fleet_tables(inst)
    n_reg = len(rix)
    T = inst.T
    jobs = inst.jobs
    n_jobs = len(jobs)
    w = np.array([i.weight for i in jobs])
    dpr = np.array([i.dpr for i in jobs], dtype=np.int64)
    lo = np.array([i.lo for i in jobs], dtype=np.int64)
    hi = np.array([i.hi for i in jobs], dtype=np.int64)
    ck = np.array([i.job.checkpoint_gb for i in jobs])
    running = np.array([i.running for i in jobs], dtype=bool)
    g0 = np.array([rix[i.cur_region] if i.cur_region is not None else -1 for i in jobs], dtype=np.int64)
    dr = np.array([rix[i.job.data_region] if i.job.data_region is not None else -1 for i in jobs], dtype=np.int64)
    allowed = np.ones((n_jobs, n_reg), dtype=bool)
    rows: list[int] = []
    rcols: list[int] = []
    for i in jobs:   # one assignment for all jobs limited to some regions (one per job cost 2 us each)
        if i.job.regions is not None:
            rows.extend([i.index] * len(i.job.regions))
            rcols.extend(rix[r] for r in i.job.regions)
    if rows:
        limited = np.unique(np.asarray(rows, dtype=np.int64))
        allowed[limited] = False
        allowed[np.asarray(rows, dtype=np.int64), np.asarray(rcols, dtype=np.int64)] = True

    # replicas of each dpr a pool can hold on its own
    dprs = np.unique(dpr) if n_jobs else np.zeros(0, dtype=np.int64)
    dpos = {int(d): k for k, d in enumerate(dprs)}
    rcap = np.zeros((len(inst.pools), len(dprs)), dtype=np.int64)
    for k, d in enumerate(dprs.tolist()):
        rcap[:, k] = _replicas_per_pool(inst, d)
    dk = np.array([dpos[int(d)] for d in dpr], dtype=np.int64)
    snap = _allowed_snapper(inst)

    parts: dict[str, list[np.ndarray]] = {k: [] for k in ("job", "pool", "keep", "lo", "hi", "unit", "coef", "mig")}
    why = np.zeros((n_jobs, 6), dtype=np.int64)   # no_capacity, region, too_large, too_small, no_link, quota
    # replicas each job's quota holds on its own: a change option never grants more (the LP took 0.36 of a
    # rigid 13 x 8-device premium gang whose quota is 46 devices, 7 % of medium family seed 0's bound)
    quota_dev = np.array([inst.quotas.get(i.key, -1) for i in jobs], dtype=np.int64)
    qcap = np.where(quota_dev >= 0, np.minimum(hi, quota_dev // np.maximum(dpr, 1)), hi)
    # keep options
    kj = np.array([i.index for i in jobs if i.keepable], dtype=np.int64)
    if len(kj):
        kp = np.array([jobs[j].cur_pool for j in kj], dtype=np.int64)
        ksp = np.array([jobs[j].job.speed[jobs[j].job.current.accelerator] for j in kj])
        kloc = contract.locality_array(dr[kj], pool_reg[kp], inst.remote_penalty)
        kunit = contract.replica_value(w[kj], dpr[kj], ksp, kloc)
        r0 = np.array([jobs[j].r0 for j in kj], dtype=np.int64)
        # staying exactly where it runs, a job's spread term is known: it is charged here, so the bound
        # (LP, Lagrangian, CP-SAT) prices a spread-out running job at what keeping it is really worth
        # (dropping it let the bound sit above the optimum by every kept job's spread, a gap no search closes)
        kspread = _keep_spreads(inst, kj, kp, w, dpr, ksp, r0)
        kcoef = kunit - kspread / r0
        for k, v in (("job", kj), ("pool", kp), ("keep", np.ones(len(kj), dtype=bool)), ("lo", r0), ("hi", r0),
                     ("unit", kunit), ("coef", kcoef), ("mig", np.zeros(len(kj)))):
            parts[k].append(v)
    # change options: every (job, accelerator) pair crossed with that type's pools in one pass, pairs
    # in type-major order (types as first met, jobs in order) so options keep a stable order
    pair_job: dict[str, list[int]] = defaultdict(list)
    pair_speed: dict[str, list[float]] = defaultdict(list)
    for i in jobs:
        for a, sp in i.job.speed.items():
            pair_job[a].append(i.index)
            pair_speed[a].append(sp)
    if pair_job:
        types = list(pair_job)
        pj = np.concatenate([np.asarray(pair_job[a], dtype=np.int64) for a in types])
        psp = np.concatenate([np.asarray(pair_speed[a], dtype=float) for a in types])
        type_pools = [pools_by_accel.get(a, np.zeros(0, dtype=np.int64)) for a in types]
        n_of_type = np.array([len(t) for t in type_pools], dtype=np.int64)
        start_of_type = np.concatenate(([0], np.cumsum(n_of_type)[:-1]))
        flat_pools = np.concatenate(type_pools)
        ptype = np.repeat(np.arange(len(types)), [len(pair_job[a]) for a in types])
        per_pair = n_of_type[ptype]
        np.add.at(why[:, 0], pj[per_pair == 0], 1)
        J = np.repeat(pj, per_pair)
        SP = np.repeat(psp, per_pair)
        first = np.cumsum(per_pair) - per_pair
        P = flat_pools[np.repeat(start_of_type[ptype], per_pair) + np.arange(len(J)) - np.repeat(first, per_pair)]
        G = pool_reg[P]
        ok = allowed[J, G]
        np.add.at(why[:, 1], J[~ok], 1)
        big = ok & (pool_dmax[P] < dpr[J])
        np.add.at(why[:, 2], J[big], 1)
        ok &= ~big
        quota_short = ok & (qcap[J] < lo[J])   # a quota too small for the job's minimum, whatever the pool
        np.add.at(why[:, 5], J[quota_short], 1)
        ok &= ~quota_short
        H = np.minimum(np.minimum(hi[J], rcap[P, dk[J]]), qcap[J])
        if snap is not None:   # v1.1: the most replicas is the largest allowed count that fits
            H = snap(J, H)
        small = ok & (H < lo[J])
        np.add.at(why[:, 3], J[small], 1)
        ok &= ~small
        src = g0[J]
        same = src == G
        has_src = src >= 0
        gb = link[np.maximum(src, 0), G]
        nolink = ok & has_src & ~same & (gb <= 0)
        np.add.at(why[:, 4], J[nolink], 1)
        ok &= ~nolink
        J, SP, P, G, H, src, same, has_src, gb = (x[ok] for x in (J, SP, P, G, H, src, same, has_src, gb))
        ckj = ck[J]
        pause = contract.pause_array(running[J], has_src, same, inst.overhead_s, ckj, storage[np.maximum(src, 0)],
                                     storage[G], gb)
        loc = contract.locality_array(dr[J], G, inst.remote_penalty)
        unit = contract.replica_value(w[J], dpr[J], SP, loc)
        coef = unit * contract.kept_share_array(pause, T)
        mig = np.where(has_src & ~same, ckj, 0.0)
        for k, v in (("job", J), ("pool", P), ("keep", np.zeros(len(J), dtype=bool)), ("lo", lo[J]), ("hi", H),
                     ("unit", unit), ("coef", coef), ("mig", mig)):
            parts[k].append(v)

    def cat(k: str, dtype: type) -> np.ndarray:
        return np.concatenate(parts[k]).astype(dtype) if parts[k] else np.zeros(0, dtype=dtype)

    job_a = cat("job", np.int64)
    keep_a = cat("keep", bool)
    # options grouped by job, keep option first (a stable, deterministic order)
    order = np.lexsort((~keep_a, job_a))
    job_a = job_a[order]
    cols = {k: cat(k, t)[order] for k, t in (("pool", np.int64), ("lo", np.int64), ("hi", np.int64),
                                              ("unit", float), ("coef", float), ("mig", float))}
    keep_a = keep_a[order]
    bounds = np.searchsorted(job_a, np.arange(n_jobs + 1))
    by_job = job_slices(bounds)
    reasons = {}
    names = ("no_capacity", "region", "too_large", "too_small", "no_link", "quota")
    for j in np.flatnonzero(bounds[1:] == bounds[:-1]).tolist():
        reasons[j] = _no_option_reason(inst, j, {n: int(why[j, k]) for k, n in enumerate(names)})
    return Options(job_a, cols["pool"], keep_a, cols["lo"], cols["hi"], cols["unit"], cols["coef"], dpr[job_a],
                   cols["mig"], by_job, reasons)


def job_max(job: np.ndarray, values: np.ndarray, n_jobs: int) -> tuple[np.ndarray, np.ndarray]:
    """Per job (0..n_jobs-1): the largest of `values` over its options and the first option reaching it
    (-inf and -1 for a job without options). `job` is `Options.job`, grouped by job in ascending order
    (as every `Options` is): one reduction per group rather than a sort or an unbuffered `np.maximum.at`
    (each 15-30 ms over a planet request's 300,000 options, several times per plan)."""
    best = np.full(n_jobs, -np.inf)
    arg = np.full(n_jobs, -1, dtype=np.int64)
    if not len(job):
        return best, arg
    first = np.flatnonzero(np.concatenate(([True], job[1:] != job[:-1])))
    mx = np.maximum.reduceat(values, first)
    owner = job[first]
    best[owner] = mx
    counts = np.diff(np.append(first, len(job)))
    hit = np.flatnonzero(values == np.repeat(mx, counts))
    if len(hit):
        hj = job[hit]
        lead = np.concatenate(([True], hj[1:] != hj[:-1]))
        arg[hj[lead]] = hit[lead]
    return best, arg


def job_slices(bounds: np.ndarray) -> list[np.ndarray]:
    """`Options.by_job` of options grouped by job, job j's at bounds[j]:bounds[j + 1]: read-only views of
    one index array (an array each cost a microsecond per job, 20 ms at planet size, built per plan)."""
    idx = np.arange(int(bounds[-1]) if len(bounds) else 0, dtype=np.int64)
    idx.setflags(write=False)
    b = bounds.tolist()
    return [idx[s:e] for s, e in pairwise(b)]


def _keep_spreads(inst: Instance, kj: np.ndarray, kp: np.ndarray, w: np.ndarray, dpr: np.ndarray,
                  ksp: np.ndarray, r0: np.ndarray) -> np.ndarray:
    """`_keep_spread` of the keepable jobs `kj` (in pools `kp`, at speeds `ksp`, on `r0` replicas) in one
    array pass, the contract's arithmetic in the same order (a call per job took 40 ms at planet size)."""
    jobs = inst.jobs
    used = np.array([len(jobs[j].cur_nodes) for j in kj.tolist()], dtype=np.int64)
    dmax = np.array([p.dmax for p in inst.pools], dtype=np.int64)[kp]
    d = dpr[kj]
    per = dmax // d
    n_min = np.where(per > 0, np.ceil(r0 / np.maximum(per, 1)), 0).astype(np.int64)
    out = inst.spread_penalty * w[kj] * d * ksp * (used - n_min)
    return np.where(n_min > 0, out, 0.0)

def _fleet_tables(inst: Instance) -> tuple[dict[str, int], np.ndarray, np.ndarray, np.ndarray, np.ndarray,
                                             dict[str, np.ndarray]]:
    """(region -> row, storage GB/s per region, link GB/s region x region, each pool's region, each pool's
    largest node, pools per accelerator): the fleet's part of the options, kept with the fleet's arrays
    (`Instance.fleet_derived`) and shared by every request of the same fleet. Read, never change."""
    got = inst.fleet_derived.get("option_tables")
    if got is None:
        regions = sorted(inst.storage)
        rix = {r: i for i, r in enumerate(regions)}
        n_reg = len(regions)
        storage = np.array([inst.storage[r] for r in regions])
        link = np.zeros((n_reg, n_reg))
        for (a, b), gbps in inst.links.items():
            link[rix[a], rix[b]] = gbps
        pool_reg = np.array([rix[p.region] for p in inst.pools], dtype=np.int64)
        pool_dmax = np.array([p.dmax for p in inst.pools], dtype=np.int64)
        by_accel: dict[str, list[int]] = defaultdict(list)
        for p in inst.pools:
            by_accel[p.accelerator].append(p.index)
        pools_by_accel = {a: np.asarray(v, dtype=np.int64) for a, v in by_accel.items()}
        for arr in (storage, link, pool_reg, pool_dmax, *pools_by_accel.values()):
            arr.flags.writeable = False
        got = inst.fleet_derived["option_tables"] = (rix, storage, link, pool_reg, pool_dmax, pools_by_accel)
    return got


def _replicas_per_pool(inst: Instance, dpr: int) -> np.ndarray:
    """Replicas of `dpr` devices each pool can hold on its own (a sum over its nodes), kept per dpr with the
    fleet's arrays. Read, never change."""
    cache = inst.fleet_derived.setdefault("replicas_per_pool", {})
    got = cache.get(dpr)
    if got is None:
        got = np.array([int((inst.node_devices[p.nodes] // dpr).sum()) for p in inst.pools], dtype=np.int64)
        got.flags.writeable = False
        cache[dpr] = got
    return got


def _keep_spread(inst: Instance, info: JobInfo) -> float:
    """The spread term of a running job left exactly on its current nodes (placement/score.py's rule)."""
    job = info.job
    cur = job.current
    n_min = contract.fewest_nodes(info.r0, inst.pools[info.cur_pool].dmax, info.dpr)
    return contract.spread(inst.spread_penalty, info.weight, info.dpr, job.speed[cur.accelerator], len(cur.nodes),
                           n_min)


def _allowed_snapper(inst: Instance):
    """For jobs with `replicas.allowed`: a vectorised (jobs, counts) -> the largest allowed count
    at most each count (0 where none); None when no job sets `allowed`."""
    with_al = [i for i in inst.jobs if i.allowed is not None]
    if not with_al:
        return None
    m = max(int(i.hi) for i in inst.jobs) + 1
    keys = np.sort(np.concatenate([i.index * m + i.allowed for i in with_al]))
    has = np.zeros(len(inst.jobs), dtype=bool)
    has[[i.index for i in with_al]] = True

    def snap(J: np.ndarray, H: np.ndarray) -> np.ndarray:
        sel = has[J]
        if not sel.any():
            return H
        Js = J[sel]
        k = np.searchsorted(keys, Js * m + np.minimum(H[sel], m - 1), side="right") - 1
        hit = keys[np.maximum(k, 0)]
        out = H.copy()
        out[sel] = np.where((k >= 0) & (hit // m == Js), hit % m, 0)
        return out

    return snap


def _no_option_reason(inst: Instance, j: int, why: dict[str, int]) -> tuple[str, str]:
    info = inst.jobs[j]
    job = info.job
    types = ", ".join(sorted(job.speed))
    where = f"in {', '.join(job.regions)}" if job.regions is not None else "in any region"
    if why.get("quota"):
        limit = inst.quotas[info.key]
        return ("quota", (f"its minimum of {info.lo} x {info.dpr} devices exceeds the {job.tier} quota of "
                          f"{job.tenant} ({limit} devices)"))
    if why.get("no_link"):
        return ("no_link", (f"no link from {info.cur_region} (where its checkpoint is) to any region with "
                           f"capacity of {types} it may use"))
    if why.get("too_small"):
        if info.allowed is not None:
            return ("too_small", (f"no pool of {types} {where} can hold any of its allowed replica counts "
                                 f"({', '.join(map(str, info.allowed.tolist()))}) x {info.dpr} devices "
                                 f"(up capacity too small)"))
        return ("too_small", (f"no pool of {types} {where} can hold its minimum of {info.lo} x "
                             f"{info.dpr} devices (up capacity too small)"))
    if why.get("too_large"):
        return ("too_large", f"devices_per_replica {info.dpr} exceeds every up node of {types} {where}")
    return ("no_capacity", f"no up capacity of its accelerators ({types}) {where}")
