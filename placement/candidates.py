"""Candidate options per job: where it could run, pruned only of what cannot work.

An option is (job, pool) with a replica range and a value per replica. A running job that
may stay exactly where it is also gets a *keep* option (no disruption, replicas fixed at
today's count). Pruning here is exact (an option removed is infeasible), so a model over
all options is a relaxation of the contract and its bound is valid.
"""

from __future__ import annotations

from collections import defaultdict
from dataclasses import dataclass

import numpy as np

from placement.instance import Instance


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

    def __len__(self) -> int:
        return len(self.job)

    def restrict(self, idx: np.ndarray) -> Options:
        """The options at `idx` (sorted), as an Options of their own; `by_job` re-indexed."""
        idx = np.sort(np.asarray(idx, dtype=np.int64))
        pos = np.full(len(self.job), -1, dtype=np.int64)
        pos[idx] = np.arange(len(idx))
        by_job = [pos[b][pos[b] >= 0] for b in self.by_job]
        return Options(self.job[idx], self.pool[idx], self.keep[idx], self.lo[idx], self.hi[idx], self.unit[idx],
                       self.coef[idx], self.dpr[idx], self.mig_gb[idx], by_job, self.no_option_reason)


def build_options(inst: Instance) -> Options:
    """Every feasible (job, pool) option, plus keep options for running jobs that may stay."""
    pools_by_accel: dict[str, list[int]] = defaultdict(list)
    for p in inst.pools:
        pools_by_accel[p.accelerator].append(p.index)
    rcap_memo: dict[tuple[int, int], int] = {}

    def rcap(p: int, dpr: int) -> int:
        key = (p, dpr)
        v = rcap_memo.get(key)
        if v is None:
            v = rcap_memo[key] = inst.pools[p].replica_capacity(inst.node_devices, dpr)
        return v

    cols: dict[str, list] = {k: [] for k in ("job", "pool", "keep", "lo", "hi", "unit", "coef", "dpr", "mig")}
    by_job: list[list[int]] = []
    reasons: dict[int, tuple[str, str]] = {}
    T = inst.T

    def add(j: int, p: int, keep: bool, lo: int, hi: int, unit: float, coef: float, dpr: int, mig: float) -> None:
        by_job[-1].append(len(cols["job"]))
        cols["job"].append(j); cols["pool"].append(p); cols["keep"].append(keep); cols["lo"].append(lo)
        cols["hi"].append(hi); cols["unit"].append(unit); cols["coef"].append(coef); cols["dpr"].append(dpr)
        cols["mig"].append(mig)

    for info in inst.jobs:
        by_job.append([])
        job = info.job
        allowed = set(job.regions) if job.regions is not None else None
        why: dict[str, int] = defaultdict(int)
        if info.keepable:
            p = info.cur_pool
            accel = job.current.accelerator
            unit = info.weight * info.dpr * job.speed[accel] * inst.locality(job, inst.pools[p].region)
            add(info.index, p, True, info.r0, info.r0, unit, unit, info.dpr, 0.0)
        for accel, speed in job.speed.items():
            plist = pools_by_accel.get(accel)
            if not plist:
                why["no_capacity"] += 1
                continue
            for p in plist:
                pool = inst.pools[p]
                if allowed is not None and pool.region not in allowed:
                    why["region"] += 1
                    continue
                if pool.dmax < info.dpr:
                    why["too_large"] += 1
                    continue
                hi = min(info.hi, rcap(p, info.dpr))
                if hi < info.lo:
                    why["too_small"] += 1
                    continue
                pause = inst.pause_to(info, pool.region)
                if pause is None:
                    why["no_link"] += 1
                    continue
                unit = info.weight * info.dpr * speed * inst.locality(job, pool.region)
                coef = unit * (1.0 - min(pause, T) / T)
                mig = job.checkpoint_gb if info.cur_region is not None and info.cur_region != pool.region else 0.0
                add(info.index, p, False, info.lo, hi, unit, coef, info.dpr, mig)
        if not by_job[-1]:
            reasons[info.index] = _no_option_reason(inst, info.index, why)

    def arr(name: str, dtype: type) -> np.ndarray:
        return np.asarray(cols[name], dtype=dtype)

    return Options(arr("job", np.int64), arr("pool", np.int64), arr("keep", bool), arr("lo", np.int64),
                   arr("hi", np.int64), arr("unit", float), arr("coef", float), arr("dpr", np.int64),
                   arr("mig", float), [np.asarray(b, dtype=np.int64) for b in by_job], reasons)


def _no_option_reason(inst: Instance, j: int, why: dict[str, int]) -> tuple[str, str]:
    info = inst.jobs[j]
    job = info.job
    types = ", ".join(sorted(job.speed))
    where = f"in {', '.join(job.regions)}" if job.regions is not None else "in any region"
    if why.get("no_link"):
        return ("no_link", f"no link from {info.cur_region} (where its checkpoint is) to any region with "
                           f"capacity of {types} it may use")
    if why.get("too_small"):
        return ("too_small", f"no pool of {types} {where} can hold its minimum of {info.lo} x "
                             f"{info.dpr} devices (up capacity too small)")
    if why.get("too_large"):
        return ("too_large", f"devices_per_replica {info.dpr} exceeds every up node of {types} {where}")
    return ("no_capacity", f"no up capacity of its accelerators ({types}) {where}")
