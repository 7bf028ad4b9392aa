"""A validated request compiled into indexed arrays: the form every stage of the engine reads.

Pools are (cluster, accelerator) pairs with at least one up node: the unit of capacity the
optimizer reasons about. Nodes keep their names for the final packing and the response.
"""

from __future__ import annotations

import math
from collections import defaultdict
from dataclasses import dataclass, field

import numpy as np

from models.request import Job, PlanRequest


@dataclass
class Pool:
    index: int
    cluster: str
    accelerator: str
    region: str
    nodes: list[int]            # up node indices
    capacity: int               # up devices
    dmax: int                   # largest up node

    def replica_capacity(self, node_devices: np.ndarray, dpr: int) -> int:
        """Most replicas of `dpr` devices this pool holds, alone: no plan puts more here."""
        return int((node_devices[self.nodes] // dpr).sum())


@dataclass
class JobInfo:
    index: int
    job: Job
    weight: float                       # tier weight * priority
    dpr: int
    lo: int
    hi: int
    key: tuple[str, str]                # (tenant, tier) for quotas
    allowed: np.ndarray | None = None   # contract v1.1: the only counts a plan may grant, sorted (lo, hi their ends)
    cur_pool: int | None = None         # pool of the current placement (if that pool exists)
    cur_region: str | None = None       # region of `current`, else checkpoint_region
    cur_nodes: dict[int, int] = field(default_factory=dict)   # node index -> replicas, current placement
    r0: int = 0
    keepable: bool = False              # current placement can stay exactly as it is
    protected: bool = False             # premium job that must stay placed (constraint 5)
    preempt_cost: float = 0.0           # disruption if not placed (running jobs)
    running: bool = False


@dataclass
class Instance:
    request: PlanRequest
    T: float
    overhead_s: float
    remote_penalty: float
    spread_penalty: float
    storage: dict[str, float]
    links: dict[tuple[str, str], float]
    cluster_region: dict[str, str]
    node_names: list[str]
    node_index: dict[str, int]
    node_cluster: list[str]
    node_accel: list[str]
    node_devices: np.ndarray
    node_up: np.ndarray
    node_pool: np.ndarray               # pool index, -1 for down nodes
    pools: list[Pool]
    pool_of: dict[tuple[str, str], int]
    jobs: list[JobInfo]
    quotas: dict[tuple[str, str], int]
    budget_gb: float | None

    def link_s(self, job: Job, a: str, b: str) -> float | None:
        """X(a, b): seconds to move the job's checkpoint between regions; None if no link."""
        if a == b:
            return 0.0
        gbps = self.links.get((a, b))
        return None if gbps is None else job.checkpoint_gb / gbps

    def storage_s(self, job: Job, region: str) -> float:
        return job.checkpoint_gb / self.storage[region]

    def pause_to(self, info: JobInfo, region: str) -> float | None:
        """Seconds a job pauses to run at a new placement in `region`; None if it cannot get there."""
        job = info.job
        if job.current is not None:
            g0 = self.cluster_region[job.current.cluster]
            x = self.link_s(job, g0, region)
            return None if x is None else self.overhead_s + self.storage_s(job, g0) + x + self.storage_s(job, region)
        g0 = job.checkpoint_region
        if g0 is None:
            return self.overhead_s
        x = self.link_s(job, g0, region)
        return None if x is None else self.overhead_s + x + self.storage_s(job, region)

    def locality(self, job: Job, region: str) -> float:
        return 1.0 - self.remote_penalty if job.data_region is not None and job.data_region != region else 1.0

    def rate(self, job: Job, cluster: str, accel: str, replicas: int) -> float:
        region = self.cluster_region[cluster]
        return replicas * job.devices_per_replica * job.speed[accel] * self.locality(job, region)


def compile_instance(req: PlanRequest) -> Instance:
    """Index a validated request. Linear in nodes + jobs."""
    pol = req.policy
    fleet = req.fleet
    storage = {r.name: r.storage_gbps for r in fleet.regions}
    links: dict[tuple[str, str], float] = {}
    for link in fleet.links:
        links[(link.a, link.b)] = links[(link.b, link.a)] = link.gbps
    cluster_region = {c.name: c.region for c in fleet.clusters}
    down = set(fleet.down_nodes)

    names: list[str] = []
    ncl: list[str] = []
    nacc: list[str] = []
    ndev: list[int] = []
    for c in fleet.clusters:
        for g in c.node_groups:
            for i in range(g.count):
                names.append(f"{g.prefix}{i}")
                ncl.append(c.name)
                nacc.append(g.accelerator)
                ndev.append(g.devices)
    node_index = {n: i for i, n in enumerate(names)}
    node_devices = np.asarray(ndev, dtype=np.int64)
    node_up = np.asarray([n not in down for n in names], dtype=bool)
    node_pool = np.full(len(names), -1, dtype=np.int64)

    pool_of: dict[tuple[str, str], int] = {}
    pools: list[Pool] = []
    by_pool: dict[tuple[str, str], list[int]] = defaultdict(list)
    for i in range(len(names)):
        if node_up[i]:
            by_pool[(ncl[i], nacc[i])].append(i)
    for (c, a), idx in by_pool.items():
        p = len(pools)
        pool_of[(c, a)] = p
        node_pool[idx] = p
        pools.append(Pool(p, c, a, cluster_region[c], idx, int(node_devices[idx].sum()), int(node_devices[idx].max())))

    tw = pol.tier_weights
    T = req.epoch_s
    jobs: list[JobInfo] = []
    for ji, j in enumerate(req.jobs):
        w = getattr(tw, j.tier) * j.priority
        rep = j.replicas
        info = JobInfo(ji, j, w, j.devices_per_replica, rep.bottom, rep.top, (j.tenant, j.tier),
                       None if rep.allowed is None else np.array(sorted(rep.allowed), dtype=np.int64))
        cur = j.current
        if cur is not None:
            info.running = True
            info.cur_region = cluster_region[cur.cluster]
            info.cur_nodes = {node_index[n]: k for n, k in cur.nodes.items()}
            info.r0 = sum(cur.nodes.values())
            all_up = all(node_up[n] for n in info.cur_nodes)
            info.cur_pool = pool_of.get((cur.cluster, cur.accelerator))
            region_ok = j.regions is None or info.cur_region in j.regions
            info.keepable = all_up and rep.grants(info.r0) and region_ok and info.cur_pool is not None
            info.protected = (j.tier == "premium" and not pol.premium_preemptible and all_up)
            rate0 = info.r0 * j.devices_per_replica * j.speed[cur.accelerator] * (
                1.0 - pol.remote_data_penalty if j.data_region is not None and j.data_region != info.cur_region else 1.0)
            p = pol.restart_overhead_s + j.checkpoint_gb / storage[info.cur_region]
            info.preempt_cost = w * rate0 * min(p, T) / T
        else:
            info.cur_region = j.checkpoint_region
        jobs.append(info)

    quotas = {(q.tenant, q.tier): q.devices for q in req.quotas}
    return Instance(req, T, pol.restart_overhead_s, pol.remote_data_penalty, pol.spread_penalty, storage, links,
                    cluster_region, names, node_index, ncl, nacc, node_devices, node_up, node_pool, pools, pool_of,
                    jobs, quotas, pol.migration_budget_gb)


def snap_down(info: JobInfo, r: np.ndarray | int) -> np.ndarray | int:
    """The largest count the job may be granted that is at most `r` (elementwise), 0 where none is:
    every stage that sizes a job within [lo, hi] passes its count through here (v1.1 `allowed`)."""
    if info.allowed is None:
        return np.where(np.asarray(r) >= info.lo, np.minimum(r, info.hi), 0) if isinstance(r, np.ndarray) \
            else (min(int(r), info.hi) if r >= info.lo else 0)
    al = info.allowed
    k = np.searchsorted(al, r, side="right") - 1
    if isinstance(r, np.ndarray):
        return np.where(k >= 0, al[np.maximum(k, 0)], 0)
    return int(al[k]) if k >= 0 else 0


def min_nodes(replicas: int, dmax: int, dpr: int) -> int:
    """n_min of the spread term: the fewest nodes that can hold `replicas` on the pool's largest node."""
    per = dmax // dpr
    return math.ceil(replicas / per) if per > 0 else 0
