"""Why each unplaced job waits, specific enough for an operator to act on (Kueue-style reasons)."""

from __future__ import annotations

from collections import Counter

import numpy as np

from models.response import Unplaced, built
from placement.candidates import Options, job_max
from placement.instance import Instance
from placement.packing import Packing


def unplaced_reasons(inst: Instance, opts: Options, pk: Packing, only: set[int] | None = None) -> list[Unplaced]:
    """A reason for every unplaced job (or for those in `only`), in job order.

    What each reason reads (the fewest devices a job needs, its best option, whether every option
    moves its checkpoint, its quota room) is taken for every job in whole-array passes over the
    options, which are grouped by job: at planet size 10,000 jobs wait, and a loop of numpy calls
    per job took most of a second of the response."""
    n = len(inst.jobs)
    waiting = np.ones(n, dtype=bool)
    if pk.choice:
        waiting[np.fromiter(pk.choice, dtype=np.int64, count=len(pk.choice))] = False
    if only is not None:
        sel = np.zeros(n, dtype=bool)
        if only:
            sel[np.fromiter(only, dtype=np.int64, count=len(only))] = True
        waiting &= sel
    jobs = np.flatnonzero(waiting)
    if not len(jobs):
        return []
    pool_used = _pool_users(inst, opts, pk)
    free_sum = pk.pool_free
    free_max = np.array([int(pk.free[a].max()) if len(a) else 0 for a in pk.pool_nodes], dtype=np.int64)
    # per job over its options (contiguous in `opts`): fewest devices, the best option, all migrating
    start = np.searchsorted(opts.job, np.arange(n))
    count = np.searchsorted(opts.job, np.arange(n), side="right") - start
    has = count > 0
    need = np.zeros(n, dtype=np.int64)
    best = np.zeros(n, dtype=np.int64)
    all_mig = np.zeros(n, dtype=bool)
    if len(opts):
        st = start[has]
        need[has] = np.minimum.reduceat(opts.lo * opts.dpr, st)
        all_mig[has] = np.logical_and.reduceat(opts.mig_gb > 0, st)
        top = job_max(opts.job, opts.coef, n)[1]   # per job: highest coef, first of ties
        best[has] = top[has]
    facts = _Facts(need.tolist(), best.tolist(), all_mig.tolist(), pool_used, free_sum, free_max)
    out: list[Unplaced] = []
    for j in jobs.tolist():
        code, reason = _reason(inst, opts, pk, j, facts)
        out.append(built(Unplaced, {"job": inst.jobs[j].job.id, "reason": reason, "code": code}))
    return out


class _Facts:
    """What the reasons read, per job and per pool, computed once for all waiting jobs."""

    def __init__(self, need: list[int], best: list[int], all_mig: list[bool], users: dict[int, Counter],
                 free_sum: np.ndarray, free_max: np.ndarray):
        self.need, self.best, self.all_mig = need, best, all_mig
        self.users, self.free_sum, self.free_max = users, free_sum, free_max


def _pool_users(inst: Instance, opts: Options, pk: Packing) -> dict[int, Counter]:
    """Per pool, devices held by placed jobs, by tier (summed in arrays, one Counter per pool)."""
    if not pk.choice:
        return {}
    tiers = ("premium", "standard", "basic")
    tier_ix = {t: k for k, t in enumerate(tiers)}
    jobs = np.fromiter(pk.choice, dtype=np.int64, count=len(pk.choice))
    chosen = np.fromiter(pk.choice.values(), dtype=np.int64, count=len(jobs))
    pools = opts.pool[chosen]
    # a keep option holds exactly its replicas (lo = hi); only the other jobs' node maps are summed
    dev = opts.lo[chosen] * opts.dpr[chosen]
    moved = np.flatnonzero(~opts.keep[chosen])
    dev[moved] = [sum(pk.nodes[j].values()) * inst.jobs[j].dpr for j in jobs[moved].tolist()]
    tier_of = inst.derived.get("tier_ix")
    if tier_of is None:
        tier_of = inst.derived["tier_ix"] = np.array([tier_ix[i.job.tier] for i in inst.jobs], dtype=np.int64)
    tier = tier_of[jobs]
    held = np.zeros((len(inst.pools), len(tiers)), dtype=np.int64)
    seen = np.zeros((len(inst.pools), len(tiers)), dtype=bool)
    np.add.at(held, (pools, tier), dev)
    seen[pools, tier] = True
    return {int(p): Counter({tiers[t]: int(held[p, t]) for t in range(len(tiers)) if seen[p, t]})
            for p in np.flatnonzero(seen.any(axis=1))}


def _reason(inst: Instance, opts: Options, pk: Packing, j: int, facts: _Facts) -> tuple[str, str]:
    info = inst.jobs[j]
    job = info.job
    if j in opts.no_option_reason:
        return opts.no_option_reason[j]
    need = facts.need[j]
    room = pk.quota_room(j)
    if room is not None and room < need:
        limit = inst.quotas[info.key]
        return ("quota", (f"{job.tier} quota of {job.tenant} is full ({limit - room}/{limit} devices; "
                         f"it needs {need})"))
    if inst.budget_gb is not None and facts.all_mig[j]:
        left = inst.budget_gb - pk.mig_used
        if left < job.checkpoint_gb:
            return ("migration_budget", (f"migration budget spent ({pk.mig_used:g}/{inst.budget_gb:g} GB moved "
                                        f"this epoch; its checkpoint is {job.checkpoint_gb:g} GB)"))
    # the pool where it would have been worth most
    best = facts.best[j]
    p = int(opts.pool[best])
    pool = inst.pools[p]
    free_devices = int(facts.free_sum[p])
    per_replica = int(opts.dpr[best])
    if free_devices >= need:
        largest = int(facts.free_max[p])
        if largest < per_replica:
            return ("fragmented", (f"{free_devices} devices free in {pool.cluster}/{pool.accelerator}, but no node has "
                                  f"{per_replica} free for one replica"))
        verb = "stay preempted" if job.current is None else "be restarted"
        return ("not_worth_restart", (f"not worth the pause to {verb}: the free room in {pool.cluster}/"
                                     f"{pool.accelerator} is worth more to jobs already placed"))
    tiers = facts.users.get(p, Counter())
    rank = {"premium": 0, "standard": 1, "basic": 2}
    higher = [t for t in tiers if rank[t] < rank[job.tier]]
    holders = ", ".join(f"{t} {tiers[t]}" for t in sorted(tiers, key=rank.get))
    lead = "outbid by higher-tier jobs" if higher else "outbid by jobs of higher value per device"
    verb = "preempted" if job.current is not None else "waits"
    counts = "" if info.allowed is None else (
        f"; its allowed replica counts ({', '.join(map(str, info.allowed.tolist()))}) need at least {need} devices")
    return ("outbid", (f"{verb}: {lead}: {pool.cluster}/{pool.accelerator} is full "
                      f"({free_devices} of {pool.capacity} devices free; held by {holders or 'nobody'}), "
                      f"and so are its other options{counts}"))


def infeasible_reasons(inst: Instance, opts: Options) -> list[Unplaced]:
    """Name the protected premium jobs and the constraints that stop them all staying placed."""
    out: list[Unplaced] = []
    prot = [i for i in inst.jobs if i.protected]
    need: Counter = Counter()
    for info in prot:
        if len(opts.by_job[info.index]):
            need[info.key] += int(min(opts.lo[o] * opts.dpr[o] for o in opts.by_job[info.index]))
    over = {k: v for k, v in need.items() if k in inst.quotas and v > inst.quotas[k]}
    for info in prot:
        job = info.job
        j = info.index
        if j in opts.no_option_reason:
            _code, why = opts.no_option_reason[j]
            out.append(Unplaced(job=job.id, code="infeasible",
                                reason=f"protected premium job cannot stay placed: {why}"))
        elif info.key in over:
            out.append(Unplaced(job=job.id, code="infeasible",
                                reason=f"protected premium job cannot stay placed: protected premium jobs of "
                                       f"{job.tenant} need at least {over[info.key]} devices but the premium quota "
                                       f"is {inst.quotas[info.key]}"))
        else:
            out.append(Unplaced(job=job.id, code="infeasible",
                                reason="protected premium jobs together do not fit: capacity of the pools they may "
                                       f"use ({_pool_list(inst, opts, j)}) is less than their minimum replicas need"))
    for info in inst.jobs:
        if not info.protected:
            out.append(Unplaced(job=info.job.id, code="infeasible",
                                reason="not planned: the request is infeasible (protected premium jobs conflict)"))
    return out


def _pool_list(inst: Instance, opts: Options, j: int) -> str:
    names = sorted({f"{inst.pools[int(opts.pool[o])].cluster}/{inst.pools[int(opts.pool[o])].accelerator}"
                    for o in opts.by_job[j]})
    return ", ".join(names[:4]) + (", ..." if len(names) > 4 else "")
