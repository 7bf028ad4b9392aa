"""What a plan's page shows, computed from its record alone: pools grouped region -> cluster -> pool with
devices used of available, the actions with the pause the contract charges for each, and the jobs left
waiting with their reasons. Pure functions of the stored request and response; nothing here plans."""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from typing import Any

from models.fleet_index import node_name
from service.app.store import PlanRecord

TIERS = ("premium", "standard", "basic")


@dataclass
class PoolUse:
    """One pool (cluster, accelerator type): its devices and who uses them."""

    region: str
    cluster: str
    accelerator: str
    devices: int = 0                 # on every node of the pool
    up: int = 0                      # on the nodes not down
    used_by_tier: dict[str, int] = field(default_factory=lambda: dict.fromkeys(TIERS, 0))
    jobs: list[dict[str, Any]] = field(default_factory=list)

    @property
    def used(self) -> int:
        return sum(self.used_by_tier.values())

    @property
    def share(self) -> float:
        return self.used / self.up if self.up else 0.0


@dataclass
class PlanView:
    record: PlanRecord
    response: dict[str, Any]
    regions: dict[str, dict[str, list[PoolUse]]]       # region -> cluster -> pools
    actions: list[dict[str, Any]]
    unplaced: list[dict[str, Any]]
    jobs: int
    devices_used: int
    devices_up: int

    @property
    def pools(self) -> list[PoolUse]:
        return [p for clusters in self.regions.values() for pools in clusters.values() for p in pools]


def build(rec: PlanRecord) -> PlanView:
    request = json.loads(rec.request)
    response = json.loads(rec.response)
    fleet = request.get("fleet") or {}
    jobs = {j["id"]: j for j in request.get("jobs") or []}
    down = set(fleet.get("down_nodes") or [])
    pools: dict[tuple[str, str], PoolUse] = {}
    regions: dict[str, dict[str, list[PoolUse]]] = {}
    for cluster in fleet.get("clusters") or []:
        by_cluster = regions.setdefault(cluster["region"], {}).setdefault(cluster["name"], [])
        for group in cluster.get("node_groups") or []:
            key = (cluster["name"], group["accelerator"])
            pool = pools.get(key)
            if pool is None:
                pool = pools[key] = PoolUse(cluster["region"], cluster["name"], group["accelerator"])
                by_cluster.append(pool)
            for i in range(group["count"]):
                pool.devices += group["devices"]
                if node_name(group["prefix"], i) not in down:
                    pool.up += group["devices"]
    for a in response.get("assignments") or []:
        job = jobs.get(a["job"], {})
        replicas = sum(a["nodes"].values())
        devices = replicas * int(job.get("devices_per_replica", 1))
        pool = pools.get((a["cluster"], a["accelerator"]))
        if pool is None:            # cannot happen for a valid plan; show it rather than hide it
            pool = pools[(a["cluster"], a["accelerator"])] = PoolUse("?", a["cluster"], a["accelerator"])
            regions.setdefault("?", {}).setdefault(a["cluster"], []).append(pool)
        tier = job.get("tier", "standard")
        pool.used_by_tier[tier if tier in TIERS else "standard"] += devices
        pool.jobs.append({"job": a["job"], "tier": tier, "tenant": job.get("tenant", "default"),
                          "replicas": replicas, "devices": devices, "nodes": a["nodes"]})
    all_pools = list(pools.values())
    return PlanView(record=rec, response=response, regions=regions, actions=_actions(request, response),
                    unplaced=[dict(u, tier=jobs.get(u["job"], {}).get("tier", "")) for u in
                              response.get("unplaced") or []],
                    jobs=len(jobs), devices_used=sum(p.used for p in all_pools),
                    devices_up=sum(p.up for p in all_pools))


def _actions(request: dict[str, Any], response: dict[str, Any]) -> list[dict[str, Any]]:
    """Each action with its modelled pause: the engine's own pause arithmetic, applied to the stored request."""
    raw = response.get("actions") or []
    if not raw:
        return []
    from models import PlanRequest
    from models.response import Action
    from placement import pause_for_action

    req = PlanRequest.model_validate(request)
    out = []
    for a in raw:
        try:
            pause: float | None = pause_for_action(req, Action.model_validate(a))
        except Exception:  # noqa: BLE001 - a page must render even for a record it cannot price
            pause = None
        out.append({"job": a["job"], "kind": a["kind"], "from": _where(a.get("from")), "to": _where(a.get("to")),
                    "pause_s": pause})
    return out


def _where(p: dict[str, Any] | None) -> str:
    if not p:
        return "-"
    replicas = sum(p["nodes"].values())
    return f"{p['cluster']} {p['accelerator']} x{replicas} on {len(p['nodes'])} node(s)"
