"""Backfill plans (contract v1.1, `policy.mode: "backfill"`): act on an arrival or a freed node at once,
without disturbing running work.

Between two epochs a control plane asks for a plan that keeps every *qualifying* running job exactly
where it is (same cluster, accelerator and node map; no action) and places only the rest onto the
devices left free. A running job qualifies when its `current` nodes all exist and are up and its
placement is valid on its own (count within `[min, max]` and in `replicas.allowed` when set, its
cluster's region in `regions` when set), unless the qualifying jobs of its `(tenant, tier)` together
exceed that quota: then that quota's jobs are planned as usual. Jobs not running, jobs whose nodes
went down and running jobs that do not qualify are planned as usual.

The engine does this by restriction, not by a second planner: a pinned job keeps only its *keep*
option and becomes protected (it must stay placed), so every stage (greedy, bound, CP-SAT, packing,
the canonical scorer, the reasons) works unchanged on a model whose every plan is a valid backfill
plan, and whose bound is a bound over backfill plans. What makes it fast is that little is left to
decide: when no unpinned job can fit into the free room, or when more than `SEARCH_MAX_OPTIONS`
options are unpinned, the plan is one greedy pass (pinned jobs kept first, then the rest by value per
device) priced by the zero-price Lagrangian bound, with no LP, subgradient or CP-SAT; otherwise the
usual pipeline runs on the small model that is left.
"""

from __future__ import annotations

from collections import defaultdict

import numpy as np

from models.request import Policy
from models.response import Unplaced
from placement.candidates import Options
from placement.greedy import _place_best, grow_all, protected_first
from placement.instance import Instance
from placement.packing import Packing
from placement.reasons import unplaced_reasons

MODE = "backfill"
# Above this many options of unpinned jobs, a backfill plan is the greedy's (priced by the cheap
# bound): a backfill acts on a handful of arrivals or freed devices, and must answer in milliseconds.
SEARCH_MAX_OPTIONS = 400


def asks_backfill(policy: Policy) -> bool:
    return getattr(policy, "mode", "epoch") == MODE


def is_backfill(inst: Instance) -> bool:
    return asks_backfill(inst.request.policy)


def pinned_jobs(inst: Instance) -> np.ndarray:
    """Per job: whether a backfill plan must keep it exactly where it runs (the contract's rule)."""
    qual = np.zeros(len(inst.jobs), dtype=bool)
    use: dict[tuple[str, str], int] = defaultdict(int)
    for i in inst.jobs:
        if not i.keepable:
            continue
        allowed = getattr(i.job.replicas, "allowed", None)    # v1.1 replicas.allowed, where the model has it
        if allowed is not None and i.r0 not in allowed:
            continue
        qual[i.index] = True
        use[i.key] += i.r0 * i.dpr
    over = {k for k, u in use.items() if k in inst.quotas and u > inst.quotas[k]}
    if over:
        for i in inst.jobs:
            if qual[i.index] and i.key in over:
                qual[i.index] = False
    return qual


def restrict(inst: Instance, opts: Options) -> tuple[Options, np.ndarray]:
    """The options of a backfill plan: a pinned job keeps only its keep option and is protected, and an
    unpinned job's option goes where its fewest replicas cannot fit whole in the free room of its pool's
    nodes (per node `free // dpr` replicas): no valid plan can take it, and left in, the LP took fractions
    of gangs that fit nowhere (apart gangs seed 0 as a backfill: LP 783,881, 561,636 without them, the
    node-level optimum 560,654). Mutates `inst` (its pinned jobs become protected); returns the options
    and the pinned mask."""
    pin = pinned_jobs(inst)
    for j in np.flatnonzero(pin):
        inst.jobs[int(j)].protected = True
    inst.derived.clear()   # anything derived from the jobs' flags before this is stale (columns included)
    if len(opts) == 0:
        return opts, pin
    mask = ~pin[opts.job] | opts.keep
    free = free_room(inst, pin)
    fits = _fits_whole(inst, opts, free)
    mask &= opts.keep | fits
    out = opts.restrict(np.flatnonzero(mask))
    gone = [j for j in np.unique(opts.job[~fits & ~opts.keep & ~pin[opts.job]]).tolist()
            if len(out.by_job[j]) == 0 and j not in opts.no_option_reason]
    if gone:
        out.no_option_reason = dict(opts.no_option_reason)
        for j in gone:
            out.no_option_reason[j] = _no_whole_room(inst, opts, free, j)
    return out, pin


def _no_whole_room(inst: Instance, opts: Options, free: np.ndarray, j: int) -> tuple[str, str]:
    """Why job `j` has no option left once those whose fewest replicas fit no free room whole are gone:
    where one of its pools has the devices free but not whole on nodes, that pool (the most free first)."""
    ol = opts.by_job[j]
    free_in = [int(free[inst.pools[int(opts.pool[o])].nodes].sum()) for o in ol]
    k = int(np.argmax(free_in))
    o = int(ol[k])
    need, dpr = int(opts.lo[o] * opts.dpr[o]), int(opts.dpr[o])
    if free_in[k] >= need:
        pool = inst.pools[int(opts.pool[o])]
        whole = int((free[pool.nodes] // dpr).sum())
        short = (f"no node has {dpr} free for one replica" if whole == 0 else
                 f"only {whole} of its fewest {int(opts.lo[o])} replicas of {dpr} fit whole on its nodes")
        return ("fragmented", (f"{free_in[k]} devices free in {pool.cluster}/{pool.accelerator}, but {short} "
                               f"until running jobs finish"))
    return ("no_capacity", _no_room_reason(int((opts.lo[ol] * opts.dpr[ol]).min())))


def _fits_whole(inst: Instance, opts: Options, free: np.ndarray) -> np.ndarray:
    """Per option, whether its fewest replicas fit whole in the free room of its pool's up nodes."""
    span = int(opts.dpr.max()) + 1
    pairs, at = np.unique(opts.pool.astype(np.int64) * span + opts.dpr, return_inverse=True)
    slots = np.array([int((free[inst.pools[int(k // span)].nodes] // int(k % span)).sum()) for k in pairs.tolist()])
    return slots[at.ravel()] >= opts.lo


def slot_rows(inst: Instance, opts: Options, pin: np.ndarray) -> list[tuple[int, int, int]]:
    """(pool, d, replicas) for the LP: per pool and replica size d among the unpinned jobs' options there,
    at most `replicas` replicas of d devices or more fit, `free // d` per node of the free room. Valid for
    every plan (a replica sits whole on one node); only rows the options' most replicas could break.
    The pool's device row alone let the LP fill 4-device holes with 8-device replicas (apart gangs seed 5
    as a backfill: LP 30,717, 29,083 with these rows, the pool-level integer optimum 29,072)."""
    change = np.flatnonzero(~opts.keep & ~pin[opts.job]) if len(opts) else np.zeros(0, dtype=np.int64)
    if len(change) == 0:
        return []
    free = free_room(inst, pin)
    out: list[tuple[int, int, int]] = []
    pools, dprs, his = opts.pool[change], opts.dpr[change], opts.hi[change]
    for p in np.unique(pools).tolist():
        at = pools == p
        nodes = inst.pools[p].nodes
        for d in np.unique(dprs[at]).tolist():
            cap = int((free[nodes] // d).sum())
            if cap < int(his[at & (dprs >= d)].sum()):
                out.append((p, d, cap))
    return out


def _no_room_reason(devices: int) -> str:
    return (f"no free room for its fewest replicas ({devices} devices) in any pool it may use until running "
            f"jobs finish")


def free_room(inst: Instance, pin: np.ndarray) -> np.ndarray:
    """Free devices per node once the pinned jobs sit where they run (0 on down nodes)."""
    free = np.where(inst.node_up, inst.node_devices, 0).astype(np.int64)
    for j in np.flatnonzero(pin):
        info = inst.jobs[int(j)]
        for n, k in info.cur_nodes.items():
            free[n] -= k * info.dpr
    return free


def anything_fits(inst: Instance, opts: Options, pin: np.ndarray) -> bool:
    """Whether some unpinned job has an option with room for its fewest replicas in the free room
    (per node `free // dpr` replicas, summed over its pool; quotas aside, so this never says no
    wrongly). When none has, the backfill plan is the pinned jobs alone."""
    free_opts = np.flatnonzero(~pin[opts.job]) if len(opts) else np.zeros(0, dtype=np.int64)
    if len(free_opts) == 0:
        return False
    return bool(_fits_whole(inst, opts, free_room(inst, pin))[free_opts].any())


def search_worth_it(opts: Options, pin: np.ndarray) -> bool:
    """Whether the optimizer (LP, CP-SAT) runs on a backfill plan: only where the unpinned jobs'
    options are few enough to answer in milliseconds."""
    return int((~pin[opts.job]).sum()) <= SEARCH_MAX_OPTIONS if len(opts) else False


def greedy_backfill(inst: Instance, opts: Options) -> tuple[Packing, set[int]]:
    """The greedy (`placement.greedy`) for a backfill: the pinned (protected) jobs kept first, then the
    others by value per device, each tried only when one of its pools still has room for its fewest
    replicas (a backfill has little room and many waiting jobs: most are skipped at a glance). Returns
    the packing and the jobs skipped so."""
    pk, gain, others = protected_first(inst, opts, None)
    need = opts.lo * opts.dpr
    skipped: set[int] = set()
    for j in others.tolist():
        ol = opts.by_job[j]
        if len(ol) and bool((pk.pool_free[opts.pool[ol]] >= need[ol]).any()):
            _place_best(pk, j, gain, require_positive=False)
        else:
            skipped.add(j)
    for j in list(pk.reserved):
        pk.release(j)
    grow_all(pk)
    return pk, skipped


def backfill_reasons(inst: Instance, opts: Options, pk: Packing, skipped: set[int]) -> list[Unplaced]:
    """The engine's reasons for the unplaced jobs the greedy tried; for the ones it skipped (no pool of
    theirs had room for their fewest replicas), that reason, in job order."""
    tried = unplaced_reasons(inst, opts, pk, only={i.index for i in inst.jobs if i.index not in skipped})
    by_id = {u.job: u for u in tried}
    out: list[Unplaced] = []
    for info in inst.jobs:
        j = info.index
        if j in pk.choice:
            continue
        if j in skipped:
            if j in opts.no_option_reason:
                code, why = opts.no_option_reason[j]
            else:
                ol = opts.by_job[j]
                code, why = "no_capacity", _no_room_reason(int((opts.lo[ol] * opts.dpr[ol]).min()))
            out.append(Unplaced(job=info.job.id, reason=why, code=code))
        else:
            out.append(by_id[info.job.id])
    return out
