"""`build_options` for small requests, in plain Python.

On a request of a few jobs and pools the vectorised builder is some seventy numpy calls of a few
microseconds each, most of the engine's time on the contract's six-job example; the same options
built in loops take a fifth of that. The arithmetic is the contract's, in the same order as the
vectorised form (`placement.contract`), so both builders give the same options to the last bit:
`tests/placement/test_candidates_small.py` holds them to it on many small requests.
"""

from __future__ import annotations

import math
from bisect import bisect_right

import numpy as np

from placement.candidates import Options, _fleet_tables, _no_option_reason, _replicas_per_pool, job_slices
from placement.instance import Instance

REASONS = ("no_capacity", "region", "too_large", "too_small", "no_link", "quota")


def _fleet_lists(inst: Instance) -> tuple:
    """The fleet tables of `candidates._fleet_tables` as Python lists (a list read is several times a numpy
    scalar read), kept with the fleet's arrays. Read, never change."""
    got = inst.fleet_derived.get("option_lists")
    if got is None:
        rix, storage, link, pool_reg, pool_dmax, by_accel = _fleet_tables(inst)
        got = inst.fleet_derived["option_lists"] = (rix, storage.tolist(), link.tolist(), pool_reg.tolist(),
                                                    pool_dmax.tolist(), {a: v.tolist() for a, v in by_accel.items()})
    return got


def _replicas_list(inst: Instance, dpr: int) -> list[int]:
    cache = inst.fleet_derived.setdefault("replicas_per_pool_list", {})
    got = cache.get(dpr)
    if got is None:
        got = cache[dpr] = _replicas_per_pool(inst, dpr).tolist()
    return got


def build_options_small(inst: Instance) -> Options:
    """`candidates.build_options`, job by job: the same options in the same order (per job its keep option,
    then its change options by accelerator in the order the request first names them, then by pool)."""
    rix, storage, link, pool_reg, pool_dmax, by_accel = _fleet_lists(inst)
    T = inst.T
    O = inst.overhead_s
    pen = inst.remote_penalty
    jobs = inst.jobs
    rank: dict[str, int] = {}
    for i in jobs:
        for a in i.job.speed:
            rank.setdefault(a, len(rank))
    c_job: list[int] = []
    c_pool: list[int] = []
    c_keep: list[bool] = []
    c_lo: list[int] = []
    c_hi: list[int] = []
    c_unit: list[float] = []
    c_coef: list[float] = []
    c_dpr: list[int] = []
    c_mig: list[float] = []
    bounds = [0]
    reasons: dict[int, tuple[str, str]] = {}

    def add(j: int, p: int, keep: bool, lo: int, hi: int, unit: float, coef: float, d: int, mig: float) -> None:
        c_job.append(j)
        c_pool.append(p)
        c_keep.append(keep)
        c_lo.append(lo)
        c_hi.append(hi)
        c_unit.append(unit)
        c_coef.append(coef)
        c_dpr.append(d)
        c_mig.append(mig)

    for i in jobs:
        j = i.index
        job = i.job
        d = i.dpr
        w = i.weight
        dr = rix[job.data_region] if job.data_region is not None else -1
        if i.keepable:
            p = i.cur_pool
            sp = job.speed[job.current.accelerator]
            loc = 1.0 - pen if dr >= 0 and dr != pool_reg[p] else 1.0
            unit = w * d * sp * loc
            r0 = i.r0
            per = pool_dmax[p] // d
            n_min = math.ceil(r0 / max(per, 1)) if per > 0 else 0
            spread = inst.spread_penalty * w * d * sp * (len(i.cur_nodes) - n_min) if n_min > 0 else 0.0
            add(j, p, True, r0, r0, unit, unit - spread / r0, d, 0.0)
        regions = None if job.regions is None else {rix[r] for r in job.regions}
        src = rix[i.cur_region] if i.cur_region is not None else -1
        has_src = src >= 0
        ck = job.checkpoint_gb
        allowed = i.allowed.tolist() if i.allowed is not None else None
        rcap = _replicas_list(inst, d)
        qcap = inst.quotas[i.key] // d if i.key in inst.quotas else i.hi   # replicas its quota holds alone
        why = [0, 0, 0, 0, 0, 0]
        for a in sorted(job.speed, key=rank.__getitem__):
            pools = by_accel.get(a, ())
            if not pools:
                why[0] += 1
                continue
            sp = job.speed[a]
            for p in pools:
                g = pool_reg[p]
                if regions is not None and g not in regions:
                    why[1] += 1
                    continue
                if pool_dmax[p] < d:
                    why[2] += 1
                    continue
                if qcap < i.lo:
                    why[5] += 1
                    continue
                hi = min(i.hi, rcap[p], qcap)
                if allowed is not None:
                    k = bisect_right(allowed, hi) - 1
                    hi = allowed[k] if k >= 0 else 0
                if hi < i.lo:
                    why[3] += 1
                    continue
                same = src == g
                gb = link[max(src, 0)][g]
                if has_src and not same and gb <= 0:
                    why[4] += 1
                    continue
                xfer = 0.0 if same or not has_src else ck / (gb if gb > 0 else 1.0)
                s_dst = ck / storage[g]
                if i.running:
                    pause = O + ck / storage[max(src, 0)] + xfer + s_dst
                else:
                    pause = O + xfer + s_dst if has_src else O
                loc = 1.0 - pen if dr >= 0 and dr != g else 1.0
                unit = w * d * sp * loc
                add(j, p, False, i.lo, hi, unit, unit * (1.0 - min(pause, T) / T), d,
                    ck if has_src and not same else 0.0)
        bounds.append(len(c_job))
        if bounds[-1] == bounds[-2]:
            reasons[j] = _no_option_reason(inst, j, dict(zip(REASONS, why)))
    return Options(np.array(c_job, dtype=np.int64), np.array(c_pool, dtype=np.int64), np.array(c_keep, dtype=bool),
                   np.array(c_lo, dtype=np.int64), np.array(c_hi, dtype=np.int64), np.array(c_unit, dtype=float),
                   np.array(c_coef, dtype=float), np.array(c_dpr, dtype=np.int64), np.array(c_mig, dtype=float),
                   job_slices(np.array(bounds, dtype=np.int64)), reasons)
