"""Edits to a fleet and to a job stream, for what-if scenarios: add or remove node groups, scale demand.

- `add_nodes`: a node group per entry, added to `cluster` (created in `region` when the fleet has no
  such cluster); its nodes are named `CLUSTER-addK-i` (K: the cluster's group count before the add).
- `remove_nodes`: removes `count` nodes of that accelerator from the cluster, from its last node
  groups first (the highest-numbered nodes of a group go first).
- `scale_demand(specs, k, seed)`: every job is kept and copied `floor(k) - 1` more times, plus once
  more with probability `k - floor(k)`; below 1 each job is kept with probability `k`. The draws hash
  the job id with the seed, so an edit is repeatable; copies arrive with their original (`#n`
  suffixed id).
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import replace

from pydantic import BaseModel, ConfigDict, Field

from datasets.attributes import JobSpec, hash_unit
from datasets.fleets import parse_fleet
from datasets.sharing import split_type
from models import Fleet


class FleetEditError(ValueError):
    """An edit the fleet cannot take: names the edit (`add_nodes[i].cluster`, ...) and the value."""


class _Edit(BaseModel):
    model_config = ConfigDict(extra="forbid", strict=True, frozen=True)


class AddNodes(_Edit):
    cluster: str = Field(min_length=1)
    accelerator: str = Field(min_length=1)
    devices: int = Field(ge=1, description="devices per node")
    count: int = Field(ge=1)
    region: str | None = Field(None, description="where to create the cluster if the fleet lacks it")


class RemoveNodes(_Edit):
    cluster: str = Field(min_length=1)
    accelerator: str = Field(min_length=1)
    count: int = Field(ge=1)


def edit_fleet(fleet: Fleet, add: Sequence[AddNodes] = (), remove: Sequence[RemoveNodes] = ()) -> Fleet:
    """The fleet with node groups added, then nodes removed; FleetEditError for an edit it cannot take."""
    data = fleet.model_dump()
    clusters = {c["name"]: c for c in data["clusters"]}
    regions = {r["name"] for r in data["regions"]}
    for i, a in enumerate(add):
        if "|" in a.accelerator:   # the rule `replay.inputs.load_fleet_arg` holds the fleet's own groups to
            raise FleetEditError(f"add_nodes[{i}].accelerator: must not contain '|' (a trace's '|' separates "
                                 f"alternative GPU types, so no job could match it), got {a.accelerator!r}")
        try:
            split_type(a.accelerator)
        except ValueError as exc:
            raise FleetEditError(f"add_nodes[{i}].accelerator: {exc}") from None
        c = clusters.get(a.cluster)
        if c is None:
            if a.region not in regions:
                raise FleetEditError(f"add_nodes[{i}].cluster: no cluster {a.cluster!r} (give region: to create it)")
            c = {"name": a.cluster, "region": a.region, "node_groups": []}
            data["clusters"].append(c)
            clusters[c["name"]] = c
        c["node_groups"].append({"prefix": f"{a.cluster}-add{len(c['node_groups'])}-", "count": a.count,
                                 "accelerator": a.accelerator, "devices": a.devices})
    for i, r in enumerate(remove):
        c = clusters.get(r.cluster)
        if c is None:
            raise FleetEditError(f"remove_nodes[{i}].cluster: no cluster {r.cluster!r}")
        left = r.count
        for g in reversed(c["node_groups"]):
            if g["accelerator"] == r.accelerator and left:
                k = min(left, g["count"])
                g["count"] -= k
                left -= k
        if left:
            raise FleetEditError(f"remove_nodes[{i}].count: {r.cluster} has {r.count - left} "
                                 f"{r.accelerator} nodes, not {r.count}")
    return parse_fleet(data)


def scale_demand(specs: Sequence[JobSpec], k: float, seed: int) -> list[JobSpec]:
    """Demand scaled by k (see the module docstring): whole copies plus a seeded fractional draw."""
    if k == 1.0:
        return list(specs)
    out: list[JobSpec] = []
    whole, frac = math.floor(k), k - math.floor(k)
    for s in specs:
        n = whole + (1 if hash_unit(seed, "demand:" + s.id) < frac else 0)
        for c in range(n):
            out.append(s if c == 0 else replace(s, id=f"{s.id}#{c}"))
    return sorted(out, key=lambda s: s.submit_s)
