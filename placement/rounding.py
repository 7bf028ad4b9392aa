"""The LP rounding made to fit: a rounded choice trimmed to every pool's devices and every quota.

Why: rounding each job to the option the LP leans on, at the LP's replicas per unit of choice,
overfills the pools and quotas where the LP is fractional (a job chosen at x = 0.6 with 0.6 of
its maximum replicas rounds up to its maximum). The packer then meets the overflow job by job in
its own order (largest replicas first), and what it drops is whatever comes last, not what is
worth least: on the request family that cost 2-6 % of the objective, a premium job of weight 100
unplaced while basic jobs ran. Trimming the rounding first, lowest value per device first (a job
shrinks toward its minimum; then, while still over, jobs leave in the same order), hands the packer a choice that
fits; what it took out is offered again by the packer's fill pass wherever room is left.
"""

from __future__ import annotations

import numpy as np

from placement.candidates import Options
from placement.instance import Instance, snap_down


def fit_to_limits(inst: Instance, opts: Options, choice: dict[int, tuple[int, int]],
                  shrink_first: bool = True) -> dict[int, tuple[int, int]]:
    """`choice` (job -> option, replicas) with no pool's devices and no quota exceeded in total:
    the jobs of an overfull pool or quota shrink or leave, least value per device first. Protected
    jobs are never taken out (a keep stays whole; a change may shrink to its minimum). Totals only:
    the packer still meets fragmentation node by node. `shrink_first`: every job of the group shrinks
    toward its minimum before any leaves; else each in turn shrinks by the overflow or, below its
    minimum, leaves (which of the two packs better differs from request to request: the engine
    packs both)."""
    out = dict(choice)
    if not out:
        return out
    jobs = np.fromiter(out, dtype=np.int64, count=len(out))
    o = np.array([out[j][0] for j in jobs.tolist()], dtype=np.int64)
    r = np.array([out[j][1] for j in jobs.tolist()], dtype=np.int64)
    d = opts.dpr[o].astype(np.int64)
    pool_use = np.bincount(opts.pool[o], weights=r * d, minlength=len(inst.pools))
    cap = np.array([p.capacity for p in inst.pools], dtype=float)
    keys = list(inst.quotas)
    qpos = {k: i for i, k in enumerate(keys)}
    jq = np.array([qpos.get(inst.jobs[j].key, -1) for j in jobs.tolist()], dtype=np.int64)
    qcap = np.array([inst.quotas[k] for k in keys], dtype=float)
    quota_use = np.bincount(jq[jq >= 0], weights=(r * d)[jq >= 0], minlength=len(keys)) if keys else np.zeros(0)
    if not (pool_use > cap).any() and not (quota_use > qcap).any():
        return out
    density = opts.coef[o] / np.maximum(d, 1)
    protected = np.array([inst.jobs[j].protected for j in jobs.tolist()], dtype=bool)
    order = np.lexsort((jobs, density, protected))   # unprotected first, least value per device first
    groups = [("pool", int(p), np.flatnonzero(opts.pool[o] == p)) for p in np.flatnonzero(pool_use > cap)]
    groups += [("quota", int(q), np.flatnonzero(jq == q)) for q in np.flatnonzero(quota_use > qcap)]
    rank = np.empty(len(order), dtype=np.int64)
    rank[order] = np.arange(len(order))
    for kind, g, members in groups:
        members = members[np.argsort(rank[members])]
        # shrink_first: every job shrinks (toward its minimum), then, while still over, jobs leave
        for leave in ((False, True) if shrink_first else (None,)):
            for k in members.tolist():
                over = (pool_use[g] - cap[g]) if kind == "pool" else (quota_use[g] - qcap[g])
                if over <= 0:
                    break
                if r[k] == 0:
                    continue
                info = inst.jobs[int(jobs[k])]
                if opts.keep[o[k]]:
                    if leave is False or protected[k]:
                        continue   # a keep stays whole or leaves (never a protected one)
                    fewer = 0
                elif leave is None:   # shrunk by the overflow where its minimum allows, else out
                    fewer = int(snap_down(info, int(r[k]) - int(-(-over // d[k]))))
                    if fewer == 0 and protected[k]:
                        fewer = int(snap_down(info, int(opts.lo[o[k]]))) or int(r[k])
                elif not leave:
                    fewer = int(snap_down(info, max(int(opts.lo[o[k]]), int(r[k]) - int(-(-over // d[k])))))
                else:
                    fewer = int(r[k]) if protected[k] else 0
                drop = int(r[k]) - fewer
                if drop <= 0:
                    continue
                pool_use[opts.pool[o[k]]] -= drop * d[k]
                if jq[k] >= 0:
                    quota_use[jq[k]] -= drop * d[k]
                r[k] = fewer
    for k, j in enumerate(jobs.tolist()):
        if r[k] == 0:
            del out[j]
        elif r[k] != out[j][1]:
            out[j] = (int(o[k]), int(r[k]))
    return out
