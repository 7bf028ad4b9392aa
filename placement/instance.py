"""A validated request compiled into indexed arrays: the form every stage of the engine reads.

Pools are (cluster, accelerator) pairs with at least one up node: the unit of capacity the
optimizer reasons about. Nodes keep their names for the final packing and the response.
"""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np

from models.fleet_index import FleetIndex, fleet_index
from models.request import Job, PlanRequest
from placement import contract


@dataclass
class Pool:
    index: int
    cluster: str
    accelerator: str
    region: str
    nodes: list[int]            # up node indices
    capacity: int               # up devices
    dmax: int                   # largest up node


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
    fleet: FleetIndex
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
    # (job, cluster, accelerator, replicas) -> the job's placement-independent terms there
    # (`placement.score.job_terms`): the search scores the same few placements again and again
    term_cache: dict = field(default_factory=dict, repr=False, compare=False)
    # values derived from the whole instance once and read by many stages (the quota rows: placement.bound._keys;
    # each quota's members: quota_members)
    derived: dict = field(default_factory=dict, repr=False, compare=False)
    # values derived from the fleet alone (placement.candidates' region tables and replicas per pool), shared
    # by every instance of the same fleet: the control plane asks about one fleet epoch after epoch
    fleet_derived: dict = field(default_factory=dict, repr=False, compare=False)

    def column(self, name: str) -> np.ndarray:
        """One attribute of every job (`preempt_cost`, `protected`, `running`) as a read-only array, built
        once per instance: the bounds, the fill and the score each built it again from 20,000 jobs at
        planet size. A stage that changes a job's attribute after compiling (backfill pins jobs) clears
        `derived`, the columns with it."""
        cols = self.derived.setdefault("columns", {})
        got = cols.get(name)
        if got is None:
            got = cols[name] = np.array([getattr(i, name) for i in self.jobs])
            got.setflags(write=False)
        return got

    def quota_members(self, key: tuple[str, str]) -> list[int]:
        """The indices of the jobs of one (tenant, tier), in job order (the search's quota swaps). Found per
        key asked, once, from the quota rows where the bounds computed them: a search asks for the few keys
        whose quota binds, and the whole map of a planet request took 10-25 ms to build."""
        members = self.derived.setdefault("quota_members", {})
        got = members.get(key)
        if got is None:
            rows = self.derived.get("quota_rows")   # placement.bound._keys: each job's quota row, where computed
            if rows is not None and key in self.quotas:
                got = np.flatnonzero(rows[1] == rows[0].index(key)).tolist()
            else:
                got = [info.index for info in self.jobs if info.key == key]
            members[key] = got
        return got

    def pause_to(self, info: JobInfo, region: str) -> float | None:
        """Seconds a job pauses to run at a new placement in `region`; None if it cannot get there."""
        job = info.job
        kind = "start" if job.current is None else "move"   # resize, move and migrate pause alike
        return contract.pause_s(self.fleet, self.overhead_s, kind, job.checkpoint_gb, info.cur_region, region)

    def rate(self, job: Job, cluster: str, accel: str, replicas: int) -> float:
        loc = contract.locality(job.data_region, self.cluster_region[cluster], self.remote_penalty)
        return contract.rate(replicas, job.devices_per_replica, job.speed[accel], loc)


@dataclass(frozen=True)
class FleetArrays:
    """The part of an instance that depends on the fleet alone. Shared by every instance compiled from
    the same fleet index (`fleet_index` returns one object while the fleet's content is the same), so
    its arrays are read-only and its pools are never changed."""

    fleet: FleetIndex
    node_devices: np.ndarray
    node_up: np.ndarray
    node_pool: np.ndarray
    pools: list[Pool]
    pool_of: dict[tuple[str, str], int]
    derived: dict


_last_fleet: FleetArrays | None = None


def fleet_arrays(fx: FleetIndex) -> FleetArrays:
    """The fleet's arrays and pools; the last ones built are reused for the same index. On a small
    request they were a tenth of the plan, built again for every request of an unchanged fleet."""
    global _last_fleet
    last = _last_fleet
    if last is not None and last.fleet is fx:
        return last
    node_devices = np.asarray(fx.devices, dtype=np.int64)
    node_up = np.asarray(fx.up, dtype=bool)
    node_pool = np.full(len(fx.names), -1, dtype=np.int64)
    pool_of: dict[tuple[str, str], int] = {}
    pools: list[Pool] = []
    for (c, a), idx in fx.pool_nodes.items():
        p = len(pools)
        pool_of[(c, a)] = p
        node_pool[idx] = p
        pools.append(Pool(p, c, a, fx.region_of[c], list(idx), int(node_devices[idx].sum()), fx.pool_dmax[(c, a)]))
    for arr in (node_devices, node_up, node_pool):
        arr.flags.writeable = False
    out = _last_fleet = FleetArrays(fx, node_devices, node_up, node_pool, pools, pool_of, {})
    return out


def compile_instance(req: PlanRequest, fleet: FleetIndex | None = None) -> Instance:
    """Index a validated request. Linear in nodes + jobs. `fleet` is the fleet's index where the
    caller holds it already (a warm re-plan keeps it with the previous solve: placement/replan.py)."""
    pol = req.policy
    fx = fleet if fleet is not None else fleet_index(req.fleet)
    cluster_region = fx.region_of
    node_index = fx.index
    fa = fleet_arrays(fx)
    node_up = fa.node_up
    pool_of = fa.pool_of

    tw = pol.tier_weights
    tier_weight = {t: getattr(tw, t) for t in ("premium", "standard", "basic")}
    T = req.epoch_s
    up = fx.up   # a list: the loop below reads it per node (a numpy scalar read each cost more)
    jobs: list[JobInfo] = []
    for ji, j in enumerate(req.jobs):
        w = tier_weight[j.tier] * j.priority
        rep = j.replicas
        if rep.allowed is None:
            info = JobInfo(ji, j, w, j.devices_per_replica, rep.min, rep.max, (j.tenant, j.tier))
        else:
            info = JobInfo(ji, j, w, j.devices_per_replica, rep.bottom, rep.top, (j.tenant, j.tier),
                           np.array(sorted(rep.allowed), dtype=np.int64))
        cur = j.current
        if cur is not None:
            info.running = True
            info.cur_region = cluster_region[cur.cluster]
            info.cur_nodes = {node_index[n]: k for n, k in cur.nodes.items()}
            info.r0 = sum(cur.nodes.values())
            all_up = all(up[n] for n in info.cur_nodes)
            info.cur_pool = pool_of.get((cur.cluster, cur.accelerator))
            region_ok = j.regions is None or info.cur_region in j.regions
            info.keepable = all_up and rep.grants(info.r0) and region_ok and info.cur_pool is not None
            info.protected = (j.tier == "premium" and not pol.premium_preemptible and all_up)
            loc = contract.locality(j.data_region, info.cur_region, pol.remote_data_penalty)
            rate0 = contract.rate(info.r0, j.devices_per_replica, j.speed[cur.accelerator], loc)
            p = contract.pause_s(fx, pol.restart_overhead_s, "preempt", j.checkpoint_gb, info.cur_region, None)
            info.preempt_cost = contract.disruption(w * rate0, p, T)
        else:
            info.cur_region = j.checkpoint_region
        jobs.append(info)

    quotas = {(q.tenant, q.tier): q.devices for q in req.quotas}
    return Instance(req, fx, T, pol.restart_overhead_s, pol.remote_data_penalty, pol.spread_penalty, fx.storage,
                    fx.links, cluster_region, fx.names, node_index, fx.cluster, fx.accelerator, fa.node_devices, node_up,
                    fa.node_pool, fa.pools, pool_of, jobs, quotas, pol.migration_budget_gb, fleet_derived=fa.derived)


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
