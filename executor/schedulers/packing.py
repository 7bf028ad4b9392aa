"""Free-capacity bookkeeping and gang packing for the baseline schedulers (not the planner).

A job's replicas need `devices_per_replica` devices each on one node, all in one cluster on one
accelerator type, and a count in `replicas.allowed` when the job lists it (contract v1.1).
`FreeMap.place` packs best-fit: the fullest single node that holds the whole gang, else the
emptiest nodes first (fewest nodes); pools are tried with the job's data region first, then the
fewest nodes used. Quotas, allowed regions and the link a checkpoint needs are respected.
Buckets are insertion-ordered dicts, so packing is deterministic for a given request.
"""

from __future__ import annotations

from collections.abc import Callable

from models import Job, Placement, PlanRequest
from models.fleet_index import fleet_index


class _Pool:
    __slots__ = ("accelerator", "buckets", "cluster", "free", "region", "size", "sizes")

    def __init__(self, cluster: str, region: str, accelerator: str):
        self.cluster, self.region, self.accelerator = cluster, region, accelerator
        self.free: dict[str, int] = {}
        self.buckets: dict[int, dict[str, None]] = {}   # free devices -> nodes with exactly that many
        self.sizes: list[int] = []                        # devices of each up node
        self.size: dict[str, int] = {}                    # node -> its devices

    def add(self, node: str, devices: int) -> None:
        self.free[node] = devices
        self.sizes.append(devices)
        self.size[node] = devices
        self.buckets.setdefault(devices, {})[node] = None

    def set_free(self, node: str, value: int) -> None:
        old = self.free[node]
        del self.buckets[old][node]
        self.free[node] = value
        self.buckets.setdefault(value, {})[node] = None

    def fit(self, dpr: int, r: int) -> dict[str, int] | None:
        """Replicas per node for `r` replicas of `dpr` devices, or None."""
        need = r * dpr
        for value in sorted(self.buckets):                  # best fit: the fullest node that holds all
            if value >= need and self.buckets[value]:
                return {next(iter(self.buckets[value])): r}
        out: dict[str, int] = {}
        left = r
        for value in sorted(self.buckets, reverse=True):    # else the emptiest nodes first
            slots = value // dpr
            if slots == 0:
                break
            for node in self.buckets[value]:
                k = min(slots, left)
                out[node] = k
                left -= k
                if left == 0:
                    return out
        return None


class FreeMap:
    """What is free on the up nodes of a request's fleet, and the devices each quota has left."""

    def __init__(self, request: PlanRequest):
        fx = fleet_index(request.fleet)
        self.region_of = fx.region_of
        self.pool_dmax = fx.pool_dmax           # (cluster, accelerator) -> largest up node
        self.pools: dict[tuple[str, str], _Pool] = {}
        self.node_pool: dict[str, _Pool] = {}
        for c in request.fleet.clusters:        # every pool the fleet names, in its order
            for g in c.node_groups:
                self.pools.setdefault((c.name, g.accelerator), _Pool(c.name, c.region, g.accelerator))
        for i, name in enumerate(fx.names):
            if fx.up[i]:
                pool = self.pools[(fx.cluster[i], fx.accelerator[i])]
                pool.add(name, fx.devices[i])
                self.node_pool[name] = pool
        self.links = {frozenset((lk.a, lk.b)) for lk in request.fleet.links}
        self.quota_left = {(q.tenant, q.tier): q.devices for q in request.quotas}

    def can_keep(self, job: Job, placement: Placement) -> bool:
        """Whether `placement` (usually the job's current one) is still up and has room."""
        pool = self.pools.get((placement.cluster, placement.accelerator))
        if pool is None or not job.replicas.grants(placement.replicas) or not self.quota_ok(job, placement.replicas):
            return False
        return all(n in pool.free and pool.free[n] >= k * job.devices_per_replica for n, k in placement.nodes.items())

    def take(self, job: Job, placement: Placement) -> None:
        pool = self.pools[(placement.cluster, placement.accelerator)]
        for n, k in placement.nodes.items():
            pool.set_free(n, pool.free[n] - k * job.devices_per_replica)
        key = (job.tenant, job.tier)
        if key in self.quota_left:
            self.quota_left[key] -= placement.replicas * job.devices_per_replica

    def want(self, job: Job) -> int:
        """`max` replicas (the largest `allowed` count when set), capped at the most any eligible pool
        could hold with every up node empty (so a job whose `max` exceeds the fleet still runs, at the
        largest size it could ever get)."""
        most = 0
        for pool in self.pools.values():
            if pool.accelerator in job.speed and (job.regions is None or pool.region in job.regions):
                most = max(most, sum(d // job.devices_per_replica for d in pool.sizes))
        got = job.replicas.largest_at_most(most)
        return job.replicas.bottom if got is None else got

    def place(self, job: Job, replicas: int, from_region: str | None) -> Placement | None:
        """A placement for `replicas` replicas (not taken yet), or None if none fits now."""
        if not self.quota_ok(job, replicas):
            return None
        best: tuple[tuple, Placement] | None = None
        for (cluster, acc), pool in self.pools.items():
            if acc not in job.speed or (job.regions is not None and pool.region not in job.regions):
                continue
            if from_region is not None and from_region != pool.region and \
                    frozenset((from_region, pool.region)) not in self.links:
                continue
            nodes = pool.fit(job.devices_per_replica, replicas)
            if nodes is None:
                continue
            remote = job.data_region is not None and job.data_region != pool.region
            key = (remote, -job.speed[acc], len(nodes))
            if best is None or key < best[0]:
                best = (key, Placement(cluster=cluster, accelerator=acc, nodes=nodes))
        return best[1] if best else None

    def reserve(self, job: Job, replicas: int, from_region: str | None,
                drain_s: Callable[[str, int], float] | None = None) -> Placement | None:
        """Hold back, for a job that does not fit now, the nodes it will start on (returned as the
        placement it would get there; None when no pool could ever hold it): in each pool it may use,
        the freest nodes until they would hold `replicas`, and of those pools the one missing the
        fewest devices (then local to its data, fastest, fewest nodes). With `drain_s(node, devices)`
        (an estimate of how long the node takes to have that many devices free) the nodes expected
        to drain soonest come first instead (the freest on ties), and of the pools the one whose
        last node drains soonest. The devices it needs there are taken from the map, so nothing
        placed after it lands on them and they only drain."""
        best: tuple[tuple, _Pool, dict[str, int]] | None = None
        dpr = job.devices_per_replica
        for (_cluster, acc), pool in self.pools.items():
            if acc not in job.speed or (job.regions is not None and pool.region not in job.regions):
                continue
            if from_region is not None and from_region != pool.region and \
                    frozenset((from_region, pool.region)) not in self.links:
                continue
            cands = [n for n in pool.free if pool.size[n] >= dpr]
            if drain_s is None:
                wait = dict.fromkeys(cands, 0.0)
            else:
                wait = {n: drain_s(n, min(pool.size[n] // dpr, replicas) * dpr) for n in cands}
            order = sorted(cands, key=lambda n: (wait[n], -pool.free[n]))
            nodes: dict[str, int] = {}
            left, missing, longest = replicas, 0, 0.0
            for n in order:
                k = min(pool.size[n] // dpr, left)
                nodes[n] = k
                missing += max(0, k * dpr - (pool.free[n] // dpr) * dpr)
                longest = max(longest, wait[n])
                left -= k
                if left == 0:
                    break
            if left:
                continue
            remote = job.data_region is not None and job.data_region != pool.region
            key = (longest, missing, remote, -job.speed[acc], len(nodes))
            if best is None or key < best[0]:
                best = (key, pool, nodes)
        if best is None:
            return None
        _key, pool, nodes = best
        for n, k in nodes.items():
            pool.set_free(n, max(0, pool.free[n] - k * dpr))
        return Placement(cluster=pool.cluster, accelerator=pool.accelerator, nodes=nodes)

    def quota_ok(self, job: Job, replicas: int) -> bool:
        left = self.quota_left.get((job.tenant, job.tier))
        return left is None or left >= replicas * job.devices_per_replica
