"""The fleet, indexed once: node names, what each node is, where each cluster is, pools and totals.

Contract v1 names the nodes of a node group `prefix + str(i)` for i in 0..count-1; this module is
the one place that rule is written. Validation, the engine's compiler, the simulator, the loop,
the baseline schedulers, the fast path and outages all read the fleet through `fleet_index`, so
none can name, count or place a node differently from another.

The index is pure data built from a validated `Fleet` (validation itself uses only `node_name`,
since it must report duplicate names rather than index them). `fleet_index` keeps the last index
it built, keyed by the fleet's content, so every stage that reads one request shares one index.
"""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass

from models.request import Fleet, NodeGroup


def node_name(prefix: str, i: int) -> str:
    """The contract's name of node `i` of a node group."""
    return f"{prefix}{i}"


def group_nodes(group: NodeGroup) -> Iterator[str]:
    """The names of a node group's nodes, in order."""
    return (node_name(group.prefix, i) for i in range(group.count))


def fleet_nodes(fleet: Fleet) -> int:
    """Nodes in the fleet, down nodes included, counted without naming them."""
    return sum(g.count for c in fleet.clusters for g in c.node_groups)


def fleet_devices(fleet: Fleet) -> int:
    """Devices in the fleet, down nodes included, counted without naming the nodes."""
    return sum(g.count * g.devices for c in fleet.clusters for g in c.node_groups)


@dataclass(frozen=True)
class FleetIndex:
    """Lookups over one fleet. Node lists are in fleet order (clusters, then groups, then i).
    Shared between callers: read it, never change it."""

    names: list[str]                                  # node index -> name
    index: dict[str, int]                             # name -> node index
    cluster: list[str]                                # node index -> cluster
    accelerator: list[str]                            # node index -> accelerator
    devices: list[int]                                # node index -> devices
    up: list[bool]                                    # node index -> not in down_nodes
    region_of: dict[str, str]                         # cluster -> region
    storage: dict[str, float]                         # region -> storage GB/s
    links: dict[tuple[str, str], float]               # (a, b) and (b, a) -> GB/s
    pool_nodes: dict[tuple[str, str], list[int]]      # (cluster, accelerator) -> up nodes, pools in order of first up node
    pool_dmax: dict[tuple[str, str], int]             # (cluster, accelerator) -> devices of its largest up node
    total_devices: int                                # down nodes included

    def node(self, name: str) -> tuple[str, str, int] | None:
        """(cluster, accelerator, devices) of a node, or None when the fleet has no such node."""
        i = self.index.get(name)
        return None if i is None else (self.cluster[i], self.accelerator[i], self.devices[i])

    def node_table(self) -> dict[str, tuple[str, str, int]]:
        """name -> (cluster, accelerator, devices), every node."""
        return {n: (self.cluster[i], self.accelerator[i], self.devices[i]) for i, n in enumerate(self.names)}


def build_fleet_index(fleet: Fleet) -> FleetIndex:
    """Index a validated fleet. Linear in nodes."""
    down = set(fleet.down_nodes)
    names: list[str] = []
    cluster: list[str] = []
    accel: list[str] = []
    devices: list[int] = []
    for c in fleet.clusters:
        for g in c.node_groups:
            names.extend(group_nodes(g))
            cluster.extend([c.name] * g.count)
            accel.extend([g.accelerator] * g.count)
            devices.extend([g.devices] * g.count)
    up = [n not in down for n in names]
    pool_nodes: dict[tuple[str, str], list[int]] = {}
    for i, ok in enumerate(up):
        if ok:
            pool_nodes.setdefault((cluster[i], accel[i]), []).append(i)
    links: dict[tuple[str, str], float] = {}
    for link in fleet.links:
        links[(link.a, link.b)] = links[(link.b, link.a)] = link.gbps
    return FleetIndex(
        names=names, index={n: i for i, n in enumerate(names)}, cluster=cluster, accelerator=accel,
        devices=devices, up=up, region_of={c.name: c.region for c in fleet.clusters},
        storage={r.name: r.storage_gbps for r in fleet.regions}, links=links, pool_nodes=pool_nodes,
        pool_dmax={k: max(devices[i] for i in idx) for k, idx in pool_nodes.items()},
        total_devices=sum(devices))


_last: tuple[tuple, FleetIndex] | None = None


def _fingerprint(fleet: Fleet) -> tuple:
    """Everything the index depends on, without naming the nodes (cheap: groups, not nodes)."""
    return (tuple((r.name, r.storage_gbps) for r in fleet.regions),
            tuple((lk.a, lk.b, lk.gbps) for lk in fleet.links),
            tuple((c.name, c.region, tuple((g.prefix, g.count, g.accelerator, g.devices) for g in c.node_groups))
                  for c in fleet.clusters),
            tuple(fleet.down_nodes))


def fleet_index(fleet: Fleet) -> FleetIndex:
    """The index of `fleet`; the last one built is reused while the fleet's content is the same
    (a replay's epochs and the stages of one plan share it)."""
    global _last
    key = _fingerprint(fleet)
    last = _last
    if last is not None and last[0] == key:
        return last[1]
    idx = build_fleet_index(fleet)
    _last = (key, idx)
    return idx
