"""Lumpy gangs first into whole nodes: a constructive move the search tries before its models.

Why: a gang of 8-device replicas needs whole nodes, and in a fragmented pool every node holds
some small running job. The move clears the nodes cheapest to clear (free ones first, then
those whose occupants lose least, each job counted by its share of the node: one spread over two
nodes costs half of its loss on each, and nothing more once it is out; a protected job's too where it
can move, and it must then find a place again; never one that can only stay), puts the gang there, gives
the nodes the move leaves to running jobs that can return to them exactly, places the evicted jobs again
wherever they fit best, and fills what is left. Of several pools worth as much to a lumpy gang it takes
the one where it displaces least. It costs milliseconds, so the search tries it on every job short of
what the LP gives it (`gang_moves`), then on each job's best few options, its own included where it could
grow (`option_moves`), and keeps it only when the canonical objective improves. The option moves price
the jobs in the way by what they lose at their next best place rather than unplaced, leave a job pushed
off some of its nodes on the rest before any other is placed again, and try every count of a lumpy gang.
The same holds for running jobs the packing moved although they could stay: `keep_moves` puts
them back on their nodes, the jobs in the way placed again (a move pays a full checkpoint-restore).
On the family's medium requests these moves, not the CP-SAT neighbourhoods, close most of the gap.
"""

from __future__ import annotations

import heapq

import numpy as np

from placement.candidates import Options
from placement.greedy import _place_best
from placement.instance import Instance, snap_down
from placement.packing import Packing
from placement.score import improves, job_terms, net_of, option_terms

CHAIN_OPTIONS = 3   # a chained repair tries a pushed-out job on this many of its most valuable options
CHAIN_JOBS = 4      # and repairs at most this many pushed-out jobs


Occupancy = dict[int, dict[int, tuple[list[tuple[int, float]], float]]]


def pool_occupancy(inst: Instance, opts: Options, pk: Packing, pools: set[int] | None = None,
                   next_best: bool = False) -> Occupancy:
    """Per pool (of `pools`, default all), per node: the jobs on it in the plan's order, each with what it
    loses there if cleared (its loss unplaced per replica, x its replicas there; a protected job's as any
    other's where it has somewhere else to go, since it is cleared where that pays and must then be placed
    again, which the insertion checks; infinite for one that can only stay, a backfill's pinned jobs), and
    their sum in that order (infinite where such a job sits): what `insert_gang` orders nodes by. Why
    protected jobs too: the chain a better plan needs often moves running premium jobs off the nodes a
    gang wants (apart alibaba seed 13 at 1 s: 7.8 % below the bound, 1.1 % once protected jobs may move; ordered after
    every other node instead, 2.0 %). Computed once per plan and shared by every insertion tried on it; after
    a kept move only the pools it touched are computed again. Why the shares are here: an insertion visits
    most of a pool's nodes once, and working each job's share out at every visit was a tenth of the moves'
    time (medium family seeds 11 and 29); the jobs in `pools` are picked in one array pass, as a chained repair asks for the pools of
    one job's few options and a loop over every job per call was another eighth. With `next_best`, each job
    priced by what it loses at its next best place instead (`priced_by_next_best`)."""
    if next_best:
        return priced_by_next_best(inst, opts, pk, pool_occupancy(inst, opts, pk), pools)
    out: dict[int, dict[int, list[tuple[int, float]]]] = {}
    ol = opts.lists()
    opool, coef = ol.pool, ol.coef
    jobs = inst.jobs
    nodes = pk.nodes
    if pools is None:
        items = pk.choice.items()
    else:
        js = np.fromiter(pk.choice, dtype=np.int64, count=len(pk.choice))
        os_ = np.fromiter(pk.choice.values(), dtype=np.int64, count=len(pk.choice))
        wanted = np.zeros(len(inst.pools), dtype=bool)
        wanted[list(pools)] = True
        mask = wanted[opts.pool[os_]]
        items = zip(js[mask].tolist(), os_[mask].tolist())
    inf = float("inf")
    movable = opts.movable()
    for k, ok in items:
        p = opool[ok]
        on_pool = out.get(p)
        if on_pool is None:
            on_pool = out[p] = {}
        nk = nodes[k]
        info = jobs[k]
        per = inf if info.protected and not movable[k] else coef[ok] + info.preempt_cost / sum(nk.values())
        for n, c in nk.items():
            share = per if per == inf else per * c
            on = on_pool.get(n)
            if on is None:
                on_pool[n] = [(k, share)]
            else:
                on.append((k, share))
    got: Occupancy = {p: {} for p in pools} if pools is not None else {p.index: {} for p in inst.pools}
    for p, on_pool in out.items():
        mine = got[p]
        for n, on in on_pool.items():
            if len(on) == 1:
                mine[n] = (on, on[0][1])
            else:
                mine[n] = (on, _in_order(on))
    return got


def priced_by_next_best(inst: Instance, opts: Options, pk: Packing, raw: Occupancy,
                        pools: set[int] | None = None,
                        slot_costs: dict[tuple[int, int], list[float]] | None = None) -> Occupancy:
    """`raw` (every pool's occupancy, each job priced by what it loses unplaced) with each job priced instead
    by what it loses moving to its next best place: its best option in another pool on as many replicas,
    less what clearing that many replica slots there costs (free slots first, then the nodes cheapest to
    clear, read off `raw`: one level deep). Why: a running premium gang on the nodes a gang wants to grow
    on looks dearer than a new premium gang beside it, though it loses a little moving to another pool
    and the new gang loses most of its value (fresh apart gangs-48: the insertion cleared the new gang,
    which lost 6,883, where moving the running one costs 1,600). `slot_costs`, where given, keeps each
    (pool, devices) list of cumulative slot costs between calls on the same plan's successors: the caller
    drops a pool's lists when a move changes it (on a fleet of hundreds of pools, rebuilding every list for
    each kept move took a third of the option moves' time: apart `alibaba-5` in eight copies)."""
    ol = opts.lists()
    opool, coef, lo, hi = ol.pool, ol.coef, ol.lo, ol.hi
    node_devices = _node_devices(inst)
    free = pk.free
    prefix: dict[tuple[int, int], list[float]] = {} if slot_costs is None else slot_costs

    def slots(p: int, d: int) -> list[float]:
        """Cumulative cost of the cheapest replica slots of d devices in pool p."""
        got = prefix.get((p, d))
        if got is None:
            costs: list[float] = []
            on = raw.get(p, {})
            for n in inst.pools[p].nodes:
                total = node_devices[n] // d
                if total == 0:
                    continue
                f = min(total, int(free[n]) // d)
                costs.extend([0.0] * f)
                if total > f:
                    c = on[n][1] if n in on else 0.0
                    if c != float("inf"):
                        costs.extend([c / (total - f)] * (total - f))
            costs.sort()
            acc, got = 0.0, []
            for c in costs:
                acc += c
                got.append(acc)
            prefix[(p, d)] = got
        return got

    inf = float("inf")
    moved: dict[int, float] = {}   # job -> its price per replica on its nodes now
    want = set(raw) if pools is None else pools
    out: Occupancy = {}
    for p in want:
        mine = out[p] = {}
        for n, (on, _) in raw.get(p, {}).items():
            priced = []
            for k, share in on:
                if share == inf:
                    priced.append((k, share))
                    continue
                per = moved.get(k)
                if per is None:
                    ok = pk.choice[k]
                    reps = sum(pk.nodes[k].values())
                    info = inst.jobs[k]
                    lost = coef[ok] * reps + info.preempt_cost
                    alt = 0.0
                    for o2 in opts.by_job[k].tolist():
                        p2 = opool[o2]
                        if p2 == p or coef[o2] <= 0:
                            continue
                        r = max(lo[o2], min(reps, hi[o2]))
                        pre = slots(p2, info.dpr)
                        if len(pre) >= r:
                            alt = max(alt, coef[o2] * r - pre[r - 1])
                    per = moved[k] = max(0.0, lost - alt) / max(1, reps)
                priced.append((k, per * pk.nodes[k][n]))
            mine[n] = (priced, _in_order(priced))
    return out


def _in_order(on: list[tuple[int, float]]) -> float:
    """The shares of `on` summed in order as `insert_gang`'s node key sums them (infinite with a job that
    can only stay)."""
    cost = 0.0
    for _, share in on:
        if share == float("inf"):
            return share
        cost += share
    return cost


def insert_gang(inst: Instance, opts: Options, base: Packing, j: int, o: int, target: int,
                gain: np.ndarray, occupancy: Occupancy | None = None,
                keep_protected: bool = True, in_place: bool = False) -> tuple[Packing, set[int]] | None:
    """`base` with job j placed by option o on `target` replicas (fewer if the pool cannot clear
    that many, never below the option's minimum), occupants evicted and placed again; None when
    it does not fit; with the plan, the jobs it touched. The caller compares objectives.
    `occupancy` is `pool_occupancy(base)`, or some of its pools (the pool asked for is added), where the caller
    tries many insertions on one plan. With `keep_protected` False, a protected job pushed out that finds
    no free place stays out of the plan returned, for the caller to place again with room cleared
    (`_chained`) or drop the move."""
    info = inst.jobs[j]
    d = info.dpr
    pool = inst.pools[int(opts.pool[o])]
    pk = base.copy()
    pk.release(j)
    pk.unplace(j)
    target = int(min(target, opts.hi[o]))
    gone: set[int] = set()   # jobs of j's quota taken out to make it room
    room = make_quota_room(inst, pk, j, target * d, _worth_per_device(inst, base, j, float(opts.coef[o]), d, target),
                           gone)
    if room is not None:
        target = min(target, room // d)
    if info.allowed is not None:   # contract v1.1: aim at a listed count
        target = int(snap_down(info, target))
    if target < opts.lo[o] or not pk.budget_ok(o):
        return None
    occupants = occupancy.get(pool.index) if occupancy is not None else None
    if occupants is None:
        occupants = pool_occupancy(inst, opts, base, {pool.index})[pool.index]
        if occupancy is not None:
            occupancy[pool.index] = occupants
    node_devices = _node_devices(inst)
    free = pk.free
    choice = pk.choice
    inf = float("inf")

    def key(n: int) -> tuple[bool, float, int]:
        """Free slots first; then what clearing node n costs per slot, each job still on it counted by
        its share (what it loses unplaced, per replica, x its replicas there), never one that can only stay."""
        cost = 0.0
        for k, share in occupants[n][0] if n in occupants else ():
            if k in choice:
                if share == inf:
                    return (int(free[n]) // d == 0, inf, n)
                cost += share
        return (int(free[n]) // d == 0, cost / max(1, node_devices[n] // d), n)

    # the first visit of a node with every job on it still placed reads the sum of their shares as it stands
    out = {n for k in gone | {j} if k in base.choice for n in base.nodes[k]}

    def first_key(n: int) -> tuple[bool, float, int]:
        if n in out:
            return key(n)
        cost = occupants[n][1] if n in occupants else 0.0
        return (int(free[n]) // d == 0, inf if cost == inf else cost / max(1, node_devices[n] // d), n)

    heap = [first_key(n) for n in pool.nodes if node_devices[n] >= d]
    heapq.heapify(heap)
    done: set[int] = set()
    placement: dict[int, int] = {}
    evicted: set[int] = set(gone)
    got = 0
    while heap and got < target:
        top = heapq.heappop(heap)
        n = top[2]
        if n in done:
            continue
        now = key(n)
        if now != top:     # an earlier eviction or placement changed it
            heapq.heappush(heap, now)
            continue
        done.add(n)
        if pk.free[n] < d:
            if now[1] == float("inf"):
                continue
            for k, _ in occupants[n][0] if n in occupants else ():
                if k in pk.choice:
                    evicted.add(k)
                    others = [m for m in base.nodes[k] if m != n and m not in done]
                    pk.release(k)
                    pk.unplace(k)
                    for m in others:   # the job's other nodes are cheaper to clear now
                        heapq.heappush(heap, key(m))
        c = min(int(pk.free[n] // d), target - got)
        if c > 0:
            placement[n] = c
            got += c
            pk.free[n] -= c * d       # held until the commit below
    for n, c in placement.items():
        pk.free[n] += c * d
    if info.allowed is not None and snap_down(info, got) < got:   # fewer cleared: down to a listed count
        excess = got - int(snap_down(info, got))
        got -= excess
        for n in reversed(list(placement)):
            take = min(excess, placement[n])
            placement[n] -= take
            excess -= take
            if placement[n] == 0:
                del placement[n]
            if excess == 0:
                break
    if got < opts.lo[o]:
        return None
    pk._commit(j, o, placement)
    # the nodes j and the jobs pushed out leave: first to running jobs that can go back exactly where they run
    left_nodes = {n for k in evicted | {j} if k in base.choice for n in base.nodes[k]}.difference(placement)
    home = return_home(inst, opts, pk, left_nodes, skip={j})
    if in_place:
        for k in sorted(evicted - gone, key=lambda k: (-float(opts.coef[base.choice[k]]) * sum(base.nodes[k].values()), k)):
            if k not in pk.choice:
                _shrink_in_place(inst, opts, base, pk, k)
    for k in sorted(evicted, key=lambda k: (not inst.jobs[k].protected, k)):
        if k not in pk.choice:
            _place_best(pk, k, gain, require_positive=False)
    if keep_protected and not pk.protected_placed(evicted):
        return None
    for k in sorted(evicted | {j}):   # room left on the cleared nodes goes to the jobs just moved
        ok = pk.choice.get(k)
        if ok is not None and not opts.keep[ok] and opts.coef[ok] > 0:
            pk.grow(k, int(opts.hi[ok]))
    return pk, evicted | {j} | home


def _shrink_in_place(inst: Instance, opts: Options, base: Packing, pk: Packing, k: int) -> bool:
    """Place job k, pushed off some of its nodes in `base`, on what is left of them where it still has room,
    on the same pool (a resize where it ran; its option otherwise): whether it was. Why: an elastic gang that
    lost one node of sixteen loses one node's replicas, not its place; placed again wherever fits best after
    a protected job it was evicted beside, it found its own nodes taken (fresh apart gangs-48: a new premium
    gang of 8-32 x 4 lost 9,033 for one node)."""
    ok = base.choice[k]
    p = int(opts.pool[ok])
    o = ok
    if opts.keep[ok]:   # a running job that stays: its resize on the same pool
        same = [x for x in opts.by_job[k].tolist() if not opts.keep[x] and int(opts.pool[x]) == p]
        if not same:
            return False
        o = max(same, key=lambda x: (float(opts.coef[x]), -x))
    info = inst.jobs[k]
    d = info.dpr
    mine = info.cur_nodes if k in pk.reserved else {}
    nodes = {}
    for n, c in base.nodes[k].items():
        fit = min(c, int(pk.free[n] - pk.soft[n] + mine.get(n, 0) * d) // d)
        if fit > 0:
            nodes[n] = fit
    r = sum(nodes.values())
    hi = int(opts.hi[o])
    if info.allowed is not None:
        hi = min(hi, int(snap_down(info, r)))
    if r > hi:
        nodes = _fewer(nodes, hi)
        r = hi
    if r < opts.lo[o]:
        return False
    return pk.place_exact(o, nodes)


def _node_devices(inst: Instance) -> list[int]:
    """Devices per node as a list (read per node in `insert_gang`'s ordering), built once per request."""
    got = inst.derived.get("node_devices_list")
    if got is None:
        got = inst.derived["node_devices_list"] = inst.node_devices.tolist()
    return got


def _net(inst: Instance, pk: Packing, j: int, memo: dict | None) -> float:
    """`net_of(inst, pk, (j,))` through `memo` (None: none), keyed by the job's placement in `pk`: a move and
    its chained repairs score the same placements of the same jobs many times over (a fifth of the moves'
    time), and a job's share depends on its own placement only."""
    if memo is None:
        return net_of(inst, pk, (j,))
    o = pk.choice.get(j)
    key = (j, o, tuple(pk.nodes[j].items())) if o is not None else j
    got = memo.get(key)
    if got is None:
        got = memo[key] = net_of(inst, pk, (j,))
    return got


def _keeps_on(inst: Instance, opts: Options) -> dict[int, list[int]]:
    """Per node, the running jobs that could stay on it exactly (a keep option), built once per request."""
    got = inst.derived.get("keeps_on_node")
    if got is None:
        got = {}
        for o in np.flatnonzero(opts.keep).tolist():
            k = int(opts.job[o])
            for n in inst.jobs[k].cur_nodes:
                got.setdefault(n, []).append(k)
        inst.derived["keeps_on_node"] = got
    return got


def return_home(inst: Instance, opts: Options, pk: Packing, nodes: set[int], skip: set[int]) -> set[int]:
    """Running jobs with a current node among `nodes` that `pk` moves, resizes or stops, put back exactly where
    they run wherever the room there is free now and that is worth more to them (most at stake first); returns
    them. Why: a move that takes a job off its nodes (a gang relocated to an equal-value pool) pays only once the
    running jobs it had displaced there return, which judged alone, one move at a time, it never does (medium
    family seed 29: a rigid gang of 56 devices held nodes of eight running jobs in one pool where the same gang
    in the next pool displaces fewer)."""
    keeps_on = _keeps_on(inst, opts)
    cands = {k for n in nodes for k in keeps_on.get(n, ()) if k not in skip}
    wants = []
    for k in cands:
        ko = int(pk.keep_opt[k])
        if ko < 0 or pk.choice.get(k) == ko:
            continue
        info = inst.jobs[k]
        stake = float(opts.coef[ko]) * info.r0 - net_of(inst, pk, (k,))
        if improves(stake):
            wants.append((-stake, k))
    back: set[int] = set()
    for _, k in sorted(wants):
        info = inst.jobs[k]
        mine = pk.nodes.get(k, {})
        if any(pk.free[n] - pk.soft[n] + mine.get(n, 0) * info.dpr < c * info.dpr for n, c in info.cur_nodes.items()):
            continue
        room = pk.quota_room(k)
        if room is not None and room + sum(mine.values()) * info.dpr < info.r0 * info.dpr:
            continue
        was = pk.choice.get(k)
        pk.unplace(k)
        if pk.try_keep(k):
            back.add(k)
        elif was is not None:   # (its nodes held room the packing reserves for another running job)
            pk._commit(k, was, mine)
    return back


def _worth_per_device(inst: Instance, base: Packing, j: int, per_replica: float, d: int, reps: int) -> float:
    """What job j placed on `reps` replicas worth `per_replica` each gains per device over where `base`
    has it (a running job that `base` stops gains its preemption cost back too)."""
    return (per_replica * reps - net_of(inst, base, (j,))) / max(1, reps * d)


def make_quota_room(inst: Instance, pk: Packing, j: int, need: int, worth: float, out: set[int]) -> int | None:
    """Job j's quota room in `pk` (None: no quota), after taking out jobs of the same (tenant, tier),
    least lost per device first, until `need` devices are free (never a protected job): each losing
    less per device than `worth`, or, where it loses more and the quota has room to spare, while all the
    jobs taken out lose less than j gains on its `need` devices (`worth * need`). Why: where a quota binds, a job worth more per
    device gets in only in place of one worth less (on the family's medium requests a standard job of
    18 replicas waited while standard jobs worth less held the tier's quota); and where the quota has
    room to spare, a gang worth less per device than the jobs in it still pays in all (medium family
    seed 37: a rigid gang of 136 devices waited beside 64 devices of its tier's quota left unused,
    as the jobs in the other 101 were each worth more per device). The jobs taken out are unplaced in
    `pk` and added to `out`, for the caller to place again; the caller keeps the move only when the
    objective improves."""
    room = pk.quota_room(j)
    if room is None or room >= need:
        return room
    losses = []
    for k in inst.quota_members(inst.jobs[j].key):
        info = inst.jobs[k]
        if k == j or info.protected or k not in pk.choice:
            continue
        devs = sum(pk.nodes[k].values()) * info.dpr
        v, dis, _ = job_terms(inst, k, None)
        losses.append(((net_of(inst, pk, (k,)) - (v - dis)) / max(1, devs), k, devs))
    # a job worth less per device than one it displaces still pays where what j gains on all `need`
    # devices beats what the jobs taken out lose in all, on a full quota too (apart philly-11: a new premium
    # gang of 16 devices waited where its tenant's full premium quota needed a one-device job worth 163 out
    # beside six worth less, 919 lost in all against 1,468 gained)
    budget = worth * need
    lost = 0.0
    for per, k, devs in sorted(losses):
        if room >= need:
            break
        if per >= worth and lost + per * devs >= budget:
            continue
        pk.release(k)
        pk.unplace(k)
        out.add(k)
        room += devs
        lost += per * devs
    if room < need:
        room = _shrink_for_quota(inst, pk, j, need, worth, room, out, budget - lost)
    return room


def _shrink_for_quota(inst: Instance, pk: Packing, j: int, need: int, worth: float, room: int,
                      out: set[int], budget: float = 0.0) -> int:
    """Job j's quota room after resizing the elastic jobs of its (tenant, tier) still placed down to their
    fewest replicas in the pool they are on, least lost per device freed first, each where it loses
    less per device than `worth` or while all the resizes lose less than `budget` (what j gains on the
    devices it needs less what the jobs taken out lose): protected jobs too, since they must stay placed, not stay whole. Why: on
    an unseen request a premium gang of 16 devices waited beside its tier's quota of 20, 13 of it held by a
    protected premium job on 6 devices that could run on 2 (the integer steps found that resize only when
    their time allowed: a loaded machine lost 7 % of the objective). The jobs resized stay placed and are
    added to `out` with the jobs taken out, so the caller counts what they lose (and may grow them again);
    it keeps the move only when the objective improves. The in-all rule: apart alibaba-37's premium gang of
    6 devices (84 each) waited where its tier's quota needed a protected job's second device (127) beside
    three jobs taken out (82 in all)."""
    opts = pk.opts
    steps = []
    for k in inst.quota_members(inst.jobs[j].key):
        o = pk.choice.get(k)
        if k == j or o is None:
            continue
        info = inst.jobs[k]
        have = sum(pk.nodes[k].values())
        pool = int(opts.pool[o])
        for o2 in opts.by_job[k].tolist():
            # (the migration budget holds: the job moves no more than it does now, and gives that back first;
            # apart alibaba-5: the budget test read a protected job's resize in the pool it moved to as a second move)
            if opts.keep[o2] or int(opts.pool[o2]) != pool or opts.mig_gb[o2] > opts.mig_gb[o]:
                continue
            low = int(opts.lo[o2])
            if info.allowed is not None:   # contract v1.1: the fewest listed replicas the option may take
                at = int(np.searchsorted(info.allowed, low))
                low = int(info.allowed[at]) if at < len(info.allowed) else have
            if low < have:
                steps.append((k, o2, low, have))
            break
    moves = []
    for k, o2, low, have in steps:
        nodes = _fewer(pk.nodes[k], low)
        v, d, p = option_terms(inst, k, inst.pools[int(opts.pool[o2])], nodes)
        devs = (have - low) * inst.jobs[k].dpr
        moves.append(((net_of(inst, pk, (k,)) - (v - d - p)) / devs, k, o2, nodes, devs))
    lost = 0.0
    for per, k, o2, nodes, devs in sorted(moves, key=lambda m: (m[0], m[1])):
        if room >= need:
            break
        if per >= worth and lost + per * devs >= budget:
            continue
        lost += per * devs
        pk.release(k)
        pk.unplace(k)
        pk._commit(k, o2, nodes)
        out.add(k)
        room += devs
    return room


def _fewer(nodes: dict[int, int], low: int) -> dict[int, int]:
    """A node map cut to `low` replicas, those on the nodes holding fewest of them going first."""
    out = dict(nodes)
    extra = sum(out.values()) - low
    for n in sorted(out, key=lambda n: (out[n], n)):
        take = min(extra, out[n])
        out[n] -= take
        extra -= take
        if extra == 0:
            break
    return {n: c for n, c in out.items() if c > 0}


def gang_moves(inst: Instance, opts: Options, best: Packing, lp_x: np.ndarray | None, lp_n: np.ndarray | None,
               gain: np.ndarray, deadline: float, min_dpr: int = 4,
               max_tries: int | None = None) -> tuple[Packing, int, float]:
    """Try `insert_gang` on each lumpy gang short of its LP share (or unplaced), most value
    missing first; keep each that improves. Returns the plan, how many moves were kept and what
    they gained."""
    wants = []
    for info in inst.jobs:
        olist = opts.by_job[info.index]
        if info.dpr < min_dpr or len(olist) == 0:
            continue
        r = sum(best.nodes[info.index].values()) if info.index in best.choice else 0
        if lp_x is not None and lp_x[olist].max() > 1e-6:
            k = int(np.argmax(lp_x[olist]))
            o = int(olist[k])
            goal = int(opts.hi[o])
        else:
            o = int(olist[int(np.argmax(opts.coef[olist] * opts.hi[olist]))])
            goal = int(opts.hi[o])
        if goal > r and opts.coef[o] > 0:
            wants.append((-float(opts.coef[o]) * (goal - r), info.index, o, goal))
    return _insertions(inst, opts, best, sorted(wants), gain, deadline, max_tries)


def option_moves(inst: Instance, opts: Options, best: Packing, gain: np.ndarray, deadline: float,
                 per_job: int = 3, max_tries: int | None = None,
                 next_best: bool = False, in_place: bool = False, every_target: int = 0,
                 grow: bool = False) -> tuple[Packing, int, float]:
    """Try `insert_gang` for every job below what its best options could give, on each of its
    `per_job` most valuable change options (value per replica x most replicas; with `grow`, the option it
    is on too, where it could hold more replicas), most value missing first; keep each that improves. Why: the LP points each job at one option, and where packing
    cannot give it that one (its nodes held by running jobs, its quota full) the job's next best
    pool, with the jobs worth least cleared out of the way, closes most of what is left (on the
    family's medium requests about half of the gap to the pool-level integer bound)."""
    # in whole-array passes (at planet size a loop over 20,000 jobs scoring each took most of a second):
    # a job's worth now is its option's value per replica x its replicas (the canonical value less the
    # disruption, without the spread term), against each option's at most replicas
    if not len(opts):
        return best, 0, 0.0
    n_jobs = len(inst.jobs)
    cur = np.zeros(n_jobs)
    if best.choice:
        js = np.fromiter(best.choice, dtype=np.int64, count=len(best.choice))
        os_ = np.fromiter(best.choice.values(), dtype=np.int64, count=len(best.choice))
        reps = np.fromiter((sum(best.nodes[j].values()) for j in js.tolist()), dtype=np.int64, count=len(js))
        cur[js] = opts.coef[os_] * reps
    chosen = np.full(n_jobs, -1, dtype=np.int64)
    if best.choice:
        chosen[js] = os_
    idx = np.arange(len(opts))
    pot = opts.coef * opts.hi
    ok = ~opts.keep & (opts.coef > 0) & (pot > cur[opts.job] + 1e-9 * np.maximum(1.0, np.abs(cur[opts.job])))
    if not grow:
        ok &= chosen[opts.job] != idx
    cand = idx[ok]
    cand = cand[np.lexsort((cand, -pot[cand], opts.job[cand]))]          # per job, most valuable first
    first = np.ones(len(cand), dtype=bool)
    first[1:] = opts.job[cand][1:] != opts.job[cand][:-1]
    start = np.maximum.accumulate(np.where(first, np.arange(len(cand)), 0))
    cand = cand[np.arange(len(cand)) - start < per_job]
    missing = pot[cand] - cur[opts.job[cand]]
    cand = cand[np.lexsort((cand, -missing))]                             # most value missing first
    wants = [(0.0, int(opts.job[o]), int(o), int(opts.hi[o])) for o in cand.tolist()]
    return _insertions(inst, opts, best, wants, gain, deadline, max_tries, clear_protected=True, next_best=next_best,
                       in_place=in_place, every_target=every_target)


def _insertions(inst: Instance, opts: Options, best: Packing, wants: list[tuple[float, int, int, int]],
                gain: np.ndarray, deadline: float, max_tries: int | None,
                clear_protected: bool = False, next_best: bool = False,
                in_place: bool = False, every_target: int = 0) -> tuple[Packing, int, float]:
    """Insert each wanted (job, option, goal) in turn, at its goal, half-way, then its minimum (one
    replica more than it has, where it runs on that option already), or with `every_target` at every count
    between for a gang of 4+ devices a replica whose range is at most that wide; keep the first that improves
    the objective. With `next_best` the jobs in the way are priced by their next best place
    (`priced_by_next_best`), with `in_place` a job pushed off some of its nodes stays on the rest first. Stops at `deadline` or after `max_tries` insertions (the deterministic budget). With
    `clear_protected`, a protected job an insertion pushes out and no free room takes is placed again with
    room cleared for it (`_chained`): apart alibaba-17's new premium gang takes the A100 nodes of a running
    premium gang that moves to V100 nodes held by jobs worth less. Only the option moves ask for it: in the
    gang moves, the first insertions' chains took nodes the next gangs were worth more on (alibaba-20)."""
    import time

    kept = 0
    gained = 0.0
    spent = [0]   # insertions tried, chained repairs included
    raw = pool_occupancy(inst, opts, best)
    slot_costs: dict[tuple[int, int], list[float]] = {}   # (pool, devices) -> cumulative slot costs, kept per pool
    occupancy = priced_by_next_best(inst, opts, best, raw, slot_costs=slot_costs) if next_best else raw
    memo: dict = {}   # each job's share of the objective per placement (`_net`)
    for _, j, o, goal in wants:
        if time.perf_counter() > deadline or (max_tries is not None and spent[0] >= max_tries):
            break
        have = sum(best.nodes[j].values()) if best.choice.get(j) == o else 0
        if have >= goal:
            continue   # an earlier move gave it already
        # a job on this option already grows: its goal, half-way there, one replica more (a gang of 15
        # that should run 17 gets its two nodes without clearing the four its goal of 19 would take)
        low = have + 1 if have else int(opts.lo[o])
        targets = (goal, low + (goal - low) // 2, low)
        if every_target and int(opts.dpr[o]) >= 4 and goal - low <= every_target:
            targets = tuple(range(goal, low - 1, -1))   # a lumpy gang: each count clears different whole nodes
        for target in dict.fromkeys(targets):
            spent[0] += 1
            won = _won(inst, opts, best, insert_gang(inst, opts, best, j, o, target, gain, occupancy, not clear_protected, in_place), gain,
                       spent, memo)
            if won is not None:
                for o2 in _twins(opts, j, o, target):   # an equal pool where the gang displaces less
                    spent[0] += 1
                    alt = _won(inst, opts, best, insert_gang(inst, opts, best, j, o2, target, gain, occupancy, not clear_protected, in_place),
                               gain, spent, memo)
                    if alt is not None and alt[1] > won[1]:
                        won = alt
                touched = {int(opts.pool[b.choice[k]]) for b in (best, won[0]) for k in won[2] if k in b.choice}
                best, delta = won[0], won[1]
                kept += 1
                gained += delta
                if next_best:   # (the other pools' prices keep the room their jobs had elsewhere before)
                    raw.update(pool_occupancy(inst, opts, best, touched))
                    for key in [key for key in slot_costs if key[0] in touched]:
                        del slot_costs[key]   # (a move changes the room and the prices of the pools it touched only)
                    occupancy.update(priced_by_next_best(inst, opts, best, raw, touched, slot_costs=slot_costs))
                else:
                    occupancy.update(pool_occupancy(inst, opts, best, touched))
                break
    return best, kept, gained


def _twins(opts: Options, j: int, o: int, target: int, min_dpr: int = 4) -> list[int]:
    """The other change options of job j worth as much per replica as option o and holding `target` replicas,
    where j is a lumpy gang (`min_dpr` devices a replica or more). Why: such a gang in one of several equal
    pools (same accelerator, same region) fits wherever whole nodes can be cleared, and the first pool tried
    is not the one that displaces least: on the family's medium requests a rigid gang of 56 devices took the
    pool whose nodes held the most running work (medium seed 29)."""
    if int(opts.dpr[o]) < min_dpr:
        return []
    ol = opts.by_job[j]
    c = float(opts.coef[o])
    same = ~opts.keep[ol] & (ol != o) & (opts.hi[ol] >= target) & (opts.lo[ol] <= target) & (
        np.abs(opts.coef[ol] - c) <= 1e-9 * max(1.0, abs(c)))
    return ol[same].tolist()


def _won(inst: Instance, opts: Options, best: Packing, moved: tuple[Packing, set[int]] | None,
         gain: np.ndarray, spent: list[int], memo: dict | None = None) -> tuple[Packing, float, set[int]] | None:
    """A move's packing, its gain and the jobs it changed when it improves on `best` (judged on those
    jobs), else the move chained with one repair (`_chained`) when that improves, else None; a move that
    left a protected job out is taken only once a repair placed it again. `memo`: see `_net`."""
    if moved is None:
        return None
    pk, changed = moved
    deltas = {k: _net(inst, pk, k, memo) - _net(inst, best, k, memo) for k in changed}
    delta = sum(deltas.values())
    if improves(delta) and pk.protected_placed(changed):
        return pk, delta, set(changed)
    return _chained(inst, opts, best, pk, deltas, gain, spent, memo=memo)


def _chained(inst: Instance, opts: Options, best: Packing, pk: Packing, deltas: dict[int, float],
             gain: np.ndarray, spent: list[int], per_job: int = CHAIN_OPTIONS,
             depth: int = CHAIN_JOBS, memo: dict | None = None) -> tuple[Packing, float, set[int]] | None:
    """A move that loses because the jobs it pushed out found no place as good, repaired: each of them
    (most lost first, at most `depth`) inserted again on its best options with the jobs worth least
    cleared out of the way, while winning back what the rest lost could still make the move pay. Why:
    on the family a gang of 8-device replicas grows into a node only once the small jobs there move to
    other pools in place of jobs worth less (a premium job and four standard ones, on medium seed 0),
    and a premium gang pushed off its nodes needs whole nodes cleared elsewhere. Each insertion tried
    is counted in `spent[0]` (the deterministic budget counts them)."""
    total = sum(deltas.values())
    touched = set(deltas)
    # a protected job left out first: no move stands without it
    losers = [k for k in sorted(deltas, key=lambda i: (not (inst.jobs[i].protected and i not in pk.choice), deltas[i], i))
              if deltas[k] < 0][:depth]
    cur = pk
    occupancy: Occupancy = {}   # `pool_occupancy(cur)` of the pools `insert_gang` asked for so far
    for n, k in enumerate(losers):
        rest = sum(min(0.0, _net(inst, cur, i, memo) - _net(inst, best, i, memo)) for i in losers[n:])
        if not improves(total - rest):
            return None   # even every loss won back would not pay
        olist = opts.by_job[k]
        # a running job pushed out wins back its preemption cost anywhere, even where a move is worth
        # nothing more (a restart pause as long as the epoch)
        olist = olist[~opts.keep[olist] & ((opts.coef[olist] > 0) | (inst.jobs[k].preempt_cost > 0))]
        if not len(olist):
            continue
        olist = olist[np.lexsort((olist, -opts.coef[olist] * opts.hi[olist]))][:per_job]
        want = {int(p) for p in opts.pool[olist].tolist()}.difference(occupancy)
        if want:   # (one pass for the pools of all its options)
            occupancy.update(pool_occupancy(inst, opts, cur, want))
        top = None
        for o in olist.tolist():
            spent[0] += 1
            again = insert_gang(inst, opts, cur, k, o, int(opts.hi[o]), gain, occupancy)
            if again is None:
                continue
            t2 = touched | again[1]
            d2 = sum(_net(inst, again[0], i, memo) - _net(inst, best, i, memo) for i in t2)
            if improves(d2 - total) and (top is None or d2 > top[0]):
                top = (d2, again[0], t2)
        if top is not None:
            total, cur, touched = top
            occupancy = {}
            if improves(total) and cur.protected_placed(touched):
                return cur, total, touched
        elif inst.jobs[k].protected and k not in cur.choice:
            return None   # a protected job left out found no place
    return None


def restore_keep(inst: Instance, opts: Options, base: Packing, j: int, gain: np.ndarray) -> tuple[Packing, set[int]] | None:
    """`base` with running job j back exactly where it runs (its keep option: no disruption), the
    jobs now on its nodes that stand in the way moved out (least value per device first, protected ones
    last) and placed again wherever they fit best; None when that cannot be done, or a protected job
    moved out finds no place. With the plan, the jobs it touched. The caller compares objectives. Why
    protected ones too: a premium gang that starts or moves into a pool takes whole nodes, and where
    they are a running premium gang's, that one moves within the pool at a full checkpoint-restore
    although the two could swap nodes (apart alibaba seed 20: 589 of a 1 s plan's 3 % gap)."""
    info = inst.jobs[j]
    ko = int(base.keep_opt[j])
    if ko < 0 or base.choice.get(j) == ko:
        return None
    pk = base.copy()
    pk.release(j)
    pk.unplace(j)
    evicted: set[int] = set()
    need = info.r0 * info.dpr
    room = make_quota_room(inst, pk, j, need, _worth_per_device(inst, base, j, float(opts.unit[ko]), info.dpr, info.r0),
                           evicted)
    if (room is not None and room < need) or not pk.budget_ok(ko):
        return None
    on: dict[int, list[int]] = {}
    mine = info.cur_nodes.keys()
    for k, nodes in pk.nodes.items():
        if mine.isdisjoint(nodes):   # (most jobs: one test in C instead of a loop over their nodes)
            continue
        for n in nodes:
            if n in mine:
                on.setdefault(n, []).append(k)
    for n, c in info.cur_nodes.items():
        need = c * info.dpr
        if pk.free[n] >= need:
            continue
        ks = sorted((k for k in on.get(n, []) if k not in evicted),
                    key=lambda k: (inst.jobs[k].protected,
                                   float(opts.coef[pk.choice[k]]) / max(1, int(opts.dpr[pk.choice[k]])), k))
        for k in ks:
            if pk.free[n] >= need:
                break
            evicted.add(k)
            pk.release(k)
            pk.unplace(k)
        if pk.free[n] < need:
            return None
    pk._commit(j, ko, dict(info.cur_nodes))
    for k in sorted(evicted, key=lambda k: (not inst.jobs[k].protected, k)):
        _place_best(pk, k, gain, require_positive=False)
    if not pk.protected_placed(evicted):
        return None
    for k in sorted(evicted):
        ok = pk.choice.get(k)
        if ok is not None and not opts.keep[ok] and opts.coef[ok] > 0:
            pk.grow(k, int(opts.hi[ok]))
    return pk, evicted | {j}


def keep_moves(inst: Instance, opts: Options, best: Packing, gain: np.ndarray, deadline: float,
               max_tries: int | None = None) -> tuple[Packing, int, float]:
    """Try `restore_keep` on each running job the plan moves, resizes or stops although it could
    stay, most disruption at stake first; keep each that improves. Why: packing a pool-level plan
    breaks a running job's reservation whenever a job worth more per device wants its nodes, and
    then pays that job's full checkpoint-restore cycle (on the family, one standard job of 21
    replicas moved within its own pool cost 1 % of the objective). Returns the plan, how many
    moves were kept and what they gained."""
    import time

    wants = []
    for info in inst.jobs:
        if not info.keepable:
            continue
        ko = int(best.keep_opt[info.index])
        if ko < 0 or best.choice.get(info.index) == ko:
            continue
        stake = float(opts.coef[ko]) * info.r0 + info.preempt_cost - net_of(inst, best, (info.index,))
        if stake > 0:
            wants.append((-stake, info.index))
    kept = 0
    gained = 0.0
    spent = [0]   # moves tried, chained repairs included
    memo: dict = {}   # each job's share of the objective per placement (`_net`)
    for _, j in sorted(wants):
        if time.perf_counter() > deadline or (max_tries is not None and spent[0] >= max_tries):
            break
        spent[0] += 1
        won = _won(inst, opts, best, restore_keep(inst, opts, best, j, gain), gain, spent, memo)
        if won is not None:
            best, delta = won[0], won[1]
            kept += 1
            gained += delta
    return best, kept, gained
