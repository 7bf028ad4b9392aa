"""Node-level state of a plan under construction: free devices, quotas, migration budget.

Every stage that commits jobs to nodes goes through `Packing`, so whatever it builds obeys
the hard constraints by construction (node capacity, quotas, the link rule via options,
the migration budget). Running jobs that may stay put hold *soft* reservations on their
nodes: others use that room only when nothing else fits, and then the running job can no
longer stay exactly where it is.
"""

from __future__ import annotations

from collections.abc import Iterable

import numpy as np

from placement.candidates import Options
from placement.instance import Instance, snap_down


def _empty_fleet(inst: Instance) -> tuple[np.ndarray, list[np.ndarray], np.ndarray, np.ndarray]:
    """(free devices per node, each pool's up nodes, each node's position in its pool's array (-1: none),
    free devices per pool) of the empty fleet: the fleet's alone, so kept with its arrays
    (`Instance.fleet_derived`) for every packing of every request of that fleet. Read, never change."""
    got = inst.fleet_derived.get("empty_fleet")
    if got is None:
        free = np.where(inst.node_up, inst.node_devices, 0).astype(np.int64)
        pool_nodes = [np.asarray(p.nodes, dtype=np.int64) for p in inst.pools]
        node_pos = np.full(len(free), -1, dtype=np.int64)   # position of a node in its pool's array
        for arr in pool_nodes:
            node_pos[arr] = np.arange(len(arr))
        pool_free = np.array([int(free[a].sum()) for a in pool_nodes], dtype=np.int64)
        for arr in (free, node_pos, pool_free, *pool_nodes):
            arr.flags.writeable = False
        got = inst.fleet_derived["empty_fleet"] = (free, pool_nodes, node_pos, pool_free)
    return got


class Packing:
    def __init__(self, inst: Instance, opts: Options):
        self.inst = inst
        self.opts = opts
        free, self.pool_nodes, self.node_pos, pool_free = _empty_fleet(inst)
        self.free = free.copy()
        self.soft = np.zeros_like(self.free)          # devices held by running jobs not yet decided
        self.soft_owner: dict[int, set[int]] = {}     # node -> undecided keepable jobs on it
        self.pool_free = pool_free.copy()
        self.pool_soft = np.zeros(len(self.pool_nodes), dtype=np.int64)
        self.quota_used: dict[tuple[str, str], int] = {k: 0 for k in inst.quotas}
        self.mig_used = 0.0
        self.choice: dict[int, int] = {}              # job -> option index
        self.nodes: dict[int, dict[int, int]] = {}    # job -> {node index: replicas}
        self.broken: set[int] = set()                 # keepable jobs whose nodes were taken
        self.reserved: set[int] = set()
        # per job: its keep option (-1: none) and that option's value per device, looked up often
        kept = np.flatnonzero(opts.keep)
        self.keep_opt = np.full(len(inst.jobs), -1, dtype=np.int64)
        self.keep_opt[opts.job[kept]] = kept
        self.keep_density = np.zeros(len(inst.jobs))
        self.keep_density[opts.job[kept]] = opts.coef[kept] / opts.dpr[kept]

    def copy(self) -> Packing:
        """An independent copy (node maps are replaced, never edited, so they are shared)."""
        c = Packing.__new__(Packing)
        c.__dict__.update(self.__dict__)
        c.free, c.soft = self.free.copy(), self.soft.copy()
        c.pool_free, c.pool_soft = self.pool_free.copy(), self.pool_soft.copy()
        c.soft_owner = {n: set(v) for n, v in self.soft_owner.items() if v}
        c.quota_used = dict(self.quota_used)
        c.choice, c.nodes = dict(self.choice), dict(self.nodes)
        c.broken, c.reserved = set(self.broken), set(self.reserved)
        return c

    # -- soft reservations of running jobs -------------------------------------------------
    def reserve_running(self, jobs: list[int]) -> None:
        """Hold the current nodes of keepable running jobs until they are decided."""
        nodes: list[int] = []
        devices: list[int] = []
        owner = self.soft_owner
        for j in jobs:
            info = self.inst.jobs[j]
            if not info.keepable or j in self.choice:
                continue
            self.reserved.add(j)
            for n, k in info.cur_nodes.items():   # keepable: every current node is up
                nodes.append(n)
                devices.append(k * info.dpr)
                if n in owner:
                    owner[n].add(j)
                else:
                    owner[n] = {j}
        if nodes:   # one vectorised update: at planet size a scalar numpy update per node took 0.3 s
            idx = np.asarray(nodes, dtype=np.int64)
            dev = np.asarray(devices, dtype=np.int64)
            np.add.at(self.soft, idx, dev)
            np.add.at(self.pool_soft, self.inst.node_pool[idx], dev)

    def release(self, j: int) -> None:
        if j not in self.reserved:
            return
        self.reserved.discard(j)
        info = self.inst.jobs[j]
        for n, k in info.cur_nodes.items():
            if not self.inst.node_up[n]:
                continue
            self.soft[n] -= k * info.dpr
            self.pool_soft[self.inst.node_pool[n]] -= k * info.dpr
            owners = self.soft_owner[n]
            owners.discard(j)
            if not owners:   # (no empty entries: every copy of the packing walks this map)
                del self.soft_owner[n]

    # -- limits ----------------------------------------------------------------------------
    def quota_room(self, j: int) -> int | None:
        key = self.inst.jobs[j].key
        if key not in self.inst.quotas:
            return None
        return self.inst.quotas[key] - self.quota_used[key]

    def budget_ok(self, o: int) -> bool:
        gb = self.opts.mig_gb[o]
        if gb <= 0 or self.inst.budget_gb is None:
            return True
        return self.mig_used + gb <= self.inst.budget_gb * (1 + 1e-12) + 1e-12

    # -- commits ---------------------------------------------------------------------------
    def try_keep(self, j: int) -> bool:
        """Keep a running job exactly where it is, if its nodes still have room and its quota allows."""
        info = self.inst.jobs[j]
        ko = int(self.keep_opt[j])
        if ko < 0 or j in self.choice:
            return False
        room = self.quota_room(j)
        if room is not None and room < info.r0 * info.dpr:
            return False
        mine = j in self.reserved
        for n, k in info.cur_nodes.items():
            have = self.free[n] - self.soft[n] + (k * info.dpr if mine else 0)
            if have < k * info.dpr:
                return False
        self.release(j)
        self._commit(j, ko, dict(info.cur_nodes))
        return True

    def keep_many(self, jobs: list[int]) -> list[int]:
        """`try_keep` of each job in `jobs`, in order; returns those not kept. Where they all fit at once
        (their nodes' room and their quotas hold them together, none reserved) it is one whole-array
        pass: a warm re-plan keeps thousands of running jobs (placement/replan.py), and a call each took
        a tenth of a second at planet size."""
        inst = self.inst
        ko = self.keep_opt.tolist()
        choice = self.choice
        todo = [j for j in jobs if ko[j] >= 0 and j not in choice]
        if self.reserved and not self.reserved.isdisjoint(todo):
            return [j for j in jobs if not self.try_keep(j)]
        nodes: list[int] = []
        devs: list[int] = []
        need: dict[tuple[str, str], int] = {}
        quota_keys = self.quota_used
        infos = inst.jobs
        for j in todo:
            info = infos[j]
            d = info.dpr
            cur = info.cur_nodes
            if len(cur) == 1:   # most jobs run on one node
                for n, k in cur.items():
                    nodes.append(n)
                    devs.append(k * d)
            else:
                nodes.extend(cur)
                devs.extend(k * d for k in cur.values())
            if info.key in quota_keys:
                need[info.key] = need.get(info.key, 0) + info.r0 * d
        idx = np.asarray(nodes, dtype=np.int64)
        dev = np.asarray(devs, dtype=np.int64)
        demand = np.bincount(idx, weights=dev, minlength=len(self.free)).astype(np.int64) if len(idx) else \
            np.zeros_like(self.free)
        fits = bool(np.all(self.free - self.soft >= demand)) and all(
            inst.quotas[k] - self.quota_used[k] >= v for k, v in need.items())
        if not fits:
            return [j for j in jobs if not self.try_keep(j)]
        self.free -= demand
        self.pool_free -= np.bincount(inst.node_pool[idx], weights=dev, minlength=len(self.pool_free)).astype(np.int64)
        for k, v in need.items():
            self.quota_used[k] += v
        nodes_of = self.nodes
        for j in todo:
            choice[j] = ko[j]
            nodes_of[j] = dict(infos[j].cur_nodes)
        if len(todo) == len(jobs):
            return []
        kept = set(todo)
        return [j for j in jobs if j not in kept]

    def place_exact(self, o: int, placement: dict[int, int]) -> bool:
        """Place option `o` (a change) on exactly `placement` (node -> replicas), if every node is up, in
        the option's pool and has the room (not counting others' reservations), the count is one the
        option grants and the quota and the budget allow: a previous plan's placement carried over by a
        warm re-plan (placement/replan.py)."""
        opts = self.opts
        j = int(opts.job[o])
        if j in self.choice or opts.keep[o]:
            return False
        info = self.inst.jobs[j]
        d = info.dpr
        r = sum(placement.values())
        if not opts.lo[o] <= r <= opts.hi[o] or (info.allowed is not None and r not in info.allowed):
            return False
        room = self.quota_room(j)
        if (room is not None and room < r * d) or not self.budget_ok(o):
            return False
        p = int(opts.pool[o])
        mine = info.cur_nodes if j in self.reserved else {}
        for n, k in placement.items():
            if k <= 0 or self.inst.node_pool[n] != p or \
                    self.free[n] - self.soft[n] + mine.get(n, 0) * d < k * d:
                return False
        self.release(j)
        self._commit(j, o, dict(placement))
        return True

    def try_option(self, o: int, target: int | None = None, lo: int | None = None, use_soft: bool = True,
                   displace_below: float | None = None) -> int:
        """Place option `o` (a change) with as many replicas as fit up to `target`; 0 if fewer than `lo`.

        With `use_soft`, room held by undecided running jobs counts too (only that of jobs whose
        value per device is below `displace_below`, when given); the jobs whose room is taken lose
        their reservation (`broken`), cheapest first."""
        ol = self.opts.lists()   # (scalar reads from lists: the search's moves call this tens of thousands of times)
        j = ol.job[o]
        if j in self.choice:
            return 0
        info = self.inst.jobs[j]
        d = ol.dpr[o]
        lo = ol.lo[o] if lo is None else lo
        hi = ol.hi[o] if target is None else min(int(target), ol.hi[o])
        room = self.quota_room(j)
        if room is not None:
            hi = min(hi, room // d)
        if hi < lo or hi <= 0 or not self.budget_ok(o):
            return 0
        p = ol.pool[o]
        mine = j in self.reserved and info.cur_pool == p
        own_total = info.r0 * d if mine else 0
        room = self.pool_free[p] - (0 if use_soft else self.pool_soft[p] - own_total)
        if room < lo * d:
            return 0
        nodes = self.pool_nodes[p]
        free = self.free[nodes]
        hard = free - self.soft[nodes]
        if mine:   # a running job may reuse its own room
            own = np.zeros(len(nodes), dtype=np.int64)
            for n, k in info.cur_nodes.items():
                if self.node_pos[n] >= 0 and self.inst.node_pool[n] == p:
                    own[self.node_pos[n]] = k * d
            hard += own
        if use_soft:   # nodes that need no one's reservation are preferred
            total = free if displace_below is None else hard + self._cheap_soft(nodes, j, displace_below)
            cap, prefer = total // d, hard // d
        else:
            cap, prefer = hard // d, None
        if info.allowed is not None:   # v1.1: the largest allowed count that fits
            hi = int(snap_down(info, min(hi, int(np.maximum(cap, 0).sum()))))
            if hi < lo or hi <= 0:
                return 0
        if len(nodes) <= FIT_SMALL:
            got = _fit_small(cap.tolist(), hi, None if prefer is None else prefer.tolist())
            if got is None:
                return 0
            pos, counts = got
            placed = sum(counts)
            ids = nodes.tolist()
            chosen = [ids[i] for i in pos]
        else:
            got = _fit(cap, hi, prefer=prefer)
            if got is None:
                return 0
            idx, counts = got
            placed = int(counts.sum())
            chosen, counts = nodes[idx].tolist(), counts.tolist()
        if placed < lo:
            return 0
        placement = {n: c for n, c in zip(chosen, counts) if c > 0}
        self.release(j)
        self._commit(j, o, placement)
        for n in placement:   # reservations that no longer fit give way, cheapest first
            if self.free[n] < self.soft[n]:
                for other in sorted(self.soft_owner.get(n, ()), key=lambda k: (self._keep_density(k), k)):
                    self.release(other)
                    self.broken.add(other)
                    if self.free[n] >= self.soft[n]:
                        break
        return placed

    def _keep_density(self, j: int) -> float:
        """A running job's value per device where it runs now (its keep option)."""
        return float(self.keep_density[j])

    def _cheap_soft(self, nodes: np.ndarray, j: int, below: float) -> np.ndarray:
        """Per node, the room reserved by other running jobs worth less than `below` per device."""
        out = np.zeros(len(nodes), dtype=np.int64)
        held = np.flatnonzero(self.soft[nodes] > 0)   # only nodes with a reservation have owners
        for idx, n in zip(held.tolist(), nodes[held].tolist()):
            for other in self.soft_owner.get(n, ()):
                if other != j and self._keep_density(other) < below:
                    out[idx] += self.inst.jobs[other].cur_nodes[n] * self.inst.jobs[other].dpr
        return out

    def grow(self, j: int, extra_max: int) -> int:
        """Add replicas to a placed, changing job on free room of its pool (never on soft room)."""
        o = self.choice.get(j)
        if o is None or self.opts.keep[o]:
            return 0
        info = self.inst.jobs[j]
        d = info.dpr
        cur = dict(self.nodes[j])   # copy on write: copies of this packing share node maps
        r = sum(cur.values())
        add = min(extra_max, int(self.opts.hi[o]) - r)
        room = self.quota_room(j)
        if room is not None:
            add = min(add, room // d)
        if add <= 0:
            return 0
        p = int(self.opts.pool[o])
        nodes = self.pool_nodes[p]
        cap = (self.free[nodes] - self.soft[nodes]) // d
        # the job's own nodes first (no spread cost), then the largest gaps (marked by their positions in
        # the pool's array: `np.isin` here was a tenth of the search's insertion moves)
        mine = np.zeros(len(nodes), dtype=bool)
        node_pool = self.inst.node_pool
        mine[[int(self.node_pos[n]) for n in cur if node_pool[n] == p]] = True
        order = np.lexsort((-cap, ~mine))
        adds: list[tuple[int, int]] = []
        placed = 0
        for i in order:
            if placed >= add or cap[i] <= 0:
                continue
            if not mine[i] and not self._worth_new_node(j, o, min(int(cap[i]), add - placed)):
                continue
            c = min(int(cap[i]), add - placed)
            adds.append((int(nodes[i]), c))
            placed += c
        if info.allowed is not None:   # v1.1: grow only to an allowed count, dropping the last additions
            excess = placed - (int(snap_down(info, r + placed)) - r)
            placed -= excess
            while excess > 0:
                n, c = adds.pop()
                if c > excess:
                    adds.append((n, c - excess))
                excess -= c
        for n, c in adds:
            cur[n] = cur.get(n, 0) + c
            self.free[n] -= c * d
            self.pool_free[self.inst.node_pool[n]] -= c * d
        if placed > 0:
            self.nodes[j] = cur
            key = info.key
            if key in self.quota_used:
                self.quota_used[key] += placed * d
        return placed

    def _worth_new_node(self, j: int, o: int, c: int) -> bool:
        info = self.inst.jobs[j]
        speed = info.job.speed[self.inst.pools[int(self.opts.pool[o])].accelerator]
        spread = self.inst.spread_penalty * info.weight * info.dpr * speed
        return self.opts.coef[o] * c > spread

    def unplace(self, j: int) -> None:
        o = self.choice.pop(j, None)
        if o is None:
            return
        info = self.inst.jobs[j]
        placement = self.nodes.pop(j)
        r = sum(placement.values())
        for n, c in placement.items():
            self.free[n] += c * info.dpr
            self.pool_free[self.inst.node_pool[n]] += c * info.dpr
        if info.key in self.quota_used:
            self.quota_used[info.key] -= r * info.dpr
        self.mig_used -= float(self.opts.mig_gb[o])

    def _commit(self, j: int, o: int, placement: dict[int, int]) -> None:
        info = self.inst.jobs[j]
        r = sum(placement.values())
        for n, c in placement.items():
            self.free[n] -= c * info.dpr
            self.pool_free[self.inst.node_pool[n]] -= c * info.dpr
        if info.key in self.quota_used:
            self.quota_used[info.key] += r * info.dpr
        self.mig_used += float(self.opts.mig_gb[o])
        self.choice[j] = o
        self.nodes[j] = placement

    def protected_placed(self, jobs: Iterable[int] | None = None) -> bool:
        """Whether every protected job (among `jobs`, job indices; all where None) is placed: constraint 5,
        which no plan, move or repair may break."""
        info = self.inst.jobs
        return all(k in self.choice for k in (range(len(info)) if jobs is None else jobs) if info[k].protected)

    def placement_of(self, j: int) -> tuple[str, str, dict[str, int]] | None:
        o = self.choice.get(j)
        if o is None:
            return None
        pool = self.inst.pools[int(self.opts.pool[o])]
        return (pool.cluster, pool.accelerator,
                {self.inst.node_names[n]: c for n, c in sorted(self.nodes[j].items())})

    def placed_map(self) -> dict[int, tuple[str, str, dict[str, int]]]:
        inst = self.inst
        out = {}
        for j, o in self.choice.items():
            pool = inst.pools[int(self.opts.pool[o])]
            out[j] = (pool.cluster, pool.accelerator, {inst.node_names[n]: c for n, c in sorted(self.nodes[j].items())})
        return out


def _fit(cap: np.ndarray, want: int, prefer: np.ndarray | None = None) -> tuple[np.ndarray, np.ndarray] | None:
    """Choose nodes for up to `want` replicas given per-node replica room `cap`, on as few nodes as
    possible: one best-fitting node if any holds all; else the roomiest nodes first, the last
    one best-fitting. Returns (node positions, replicas each) or None if no room at all."""
    total = int(cap.sum())
    if total <= 0:
        return None
    want = min(want, total)
    fits = np.flatnonzero(cap >= want)
    if len(fits):
        if prefer is not None:   # among nodes that fit, take one that needs no soft room if any
            good = fits[prefer[fits] >= want]
            if len(good):
                fits = good
        i = fits[np.argmin(cap[fits])]
        return np.array([i]), np.array([want])
    order = np.argsort(-cap, kind="stable")
    csum = np.cumsum(cap[order])
    k = int(np.searchsorted(csum, want))        # nodes order[0..k] reach `want`
    chosen = order[: k + 1].copy()
    counts = cap[chosen].copy()
    before = int(csum[k - 1]) if k > 0 else 0
    rest = want - before
    # the last node: the tightest among the remaining that holds `rest`
    remaining = order[k:]
    ok = remaining[cap[remaining] >= rest]
    last = ok[np.argmin(cap[ok])]
    chosen[-1] = last
    counts[-1] = rest
    return chosen, counts


FIT_SMALL = 64   # pools of at most this many nodes are fitted in plain Python (`_fit_small`)


def _fit_small(cap: list[int], want: int, prefer: list[int] | None = None) -> tuple[list[int], list[int]] | None:
    """`_fit` on lists: the same nodes and counts in the same order, without the dozen numpy calls that
    cost more than the work on a pool of a few dozen nodes (the search's moves fit tens of thousands of
    jobs a second)."""
    total = sum(cap)
    if total <= 0:
        return None
    want = min(want, total)
    at = cap.__getitem__
    fits = [i for i, c in enumerate(cap) if c >= want]
    if fits:
        if prefer is not None:   # among nodes that fit, take one that needs no soft room if any
            good = [i for i in fits if prefer[i] >= want]
            if good:
                fits = good
        return [min(fits, key=at)], [want]
    order = sorted(range(len(cap)), key=lambda i: -cap[i])   # stable, as argsort's "stable"
    before = 0
    k = 0
    while before + cap[order[k]] < want:   # nodes order[0..k] reach `want`
        before += cap[order[k]]
        k += 1
    rest = want - before
    # the last node: the tightest among the remaining that holds `rest`
    last = min((i for i in order[k:] if cap[i] >= rest), key=at)
    chosen = order[:k] + [last]
    return chosen, [cap[i] for i in order[:k]] + [rest]


def could_fit(pk: Packing, jobs: np.ndarray) -> np.ndarray:
    """Per job in `jobs` (not placed): whether any of its options has its fewest replicas' devices
    free in its pool and within its quota. A necessary condition for placing it, and room only
    shrinks while a pass fills it, so a pass asks before each chunk of jobs and skips the jobs
    failing it without a try (at planet size most waiting jobs fit nowhere, and trying each cost
    about a second). Reads only the options of `jobs`."""
    opts, inst = pk.opts, pk.inst
    if not len(jobs):
        return np.zeros(0, dtype=bool)
    parts = [opts.by_job[j] for j in jobs.tolist()]
    counts = np.array([len(p) for p in parts], dtype=np.int64)
    if not counts.sum():
        return np.zeros(len(jobs), dtype=bool)
    idx = np.concatenate(parts)
    need = opts.lo[idx] * opts.dpr[idx]
    ok = pk.pool_free[opts.pool[idx]] >= need
    if pk.quota_used:
        big = np.iinfo(np.int64).max
        room = np.array([inst.quotas[k] - pk.quota_used[k] if k in pk.quota_used else big
                         for k in (inst.jobs[j].key for j in jobs.tolist())], dtype=np.int64)
        ok &= np.repeat(room, counts) >= need
    owner = np.repeat(np.arange(len(jobs)), counts)
    fits = np.zeros(len(jobs), dtype=bool)
    fits[owner[ok]] = True
    return fits


def fill_order(pk: Packing, jobs: np.ndarray, chunk: int = 64):
    """`jobs` in order, less those that fit nowhere, asked a chunk at a time (see `could_fit`)."""
    for k in range(0, len(jobs), chunk):
        part = jobs[k:k + chunk]
        yield from part[could_fit(pk, part)].tolist()
