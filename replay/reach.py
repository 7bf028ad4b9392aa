"""What an outage cuts off: the fleet's regions and links as a graph (networkx), with failed regions removed.

A region has failed at a moment when it has nodes and every one of them is down. For each outage, at its
start (with every other outage active then):
- `regions_down`: the failed regions;
- `cut_off`: for each region still up, the regions it could reach over links (possibly through others)
  before and cannot now, because every path went through a failed region;
- `jobs_data_unreachable`: the jobs whose `data_region` has failed, whose data no placement can read
  until it returns.
Reachability here is for reporting: the contract still requires a direct link for a migration.
"""

from __future__ import annotations

from collections.abc import Sequence

import networkx as nx

from datasets.attributes import JobSpec
from models import Fleet
from replay.outages import Outage, outage_nodes, outage_schedule


def region_graph(fleet: Fleet) -> nx.Graph:
    """Regions as vertices, links as edges (attribute `gbps`)."""
    g = nx.Graph()
    g.add_nodes_from(r.name for r in fleet.regions)
    g.add_edges_from((link.a, link.b, {"gbps": link.gbps}) for link in fleet.links)
    return g


def region_nodes(fleet: Fleet) -> dict[str, set[str]]:
    """Each region's node names (empty for a region without compute)."""
    out: dict[str, set[str]] = {r.name: set() for r in fleet.regions}
    for c in fleet.clusters:
        if any(grp.count for grp in c.node_groups):
            out[c.region] |= outage_nodes(fleet, f"cluster:{c.name}")
    return out


def cut_off(graph: nx.Graph, failed: set[str]) -> dict[str, list[str]]:
    """For each surviving region, the surviving regions it reached before and no longer reaches."""
    before = {r: comp for comp in nx.connected_components(graph) for r in comp}
    after_graph = graph.subgraph(set(graph) - failed)
    after = {r: comp for comp in nx.connected_components(after_graph) for r in comp}
    out = {}
    for r in sorted(after):
        lost = sorted(before[r] - after[r] - failed)
        if lost:
            out[r] = lost
    return out


def outage_reach(fleet: Fleet, outages: Sequence[Outage], specs: Sequence[JobSpec]) -> list[dict]:
    """One entry per outage, in order: the regions down, the regions cut off, the jobs whose data is lost."""
    graph = region_graph(fleet)
    nodes = region_nodes(fleet)
    down_at = outage_schedule(fleet, outages)
    out = []
    for o in outages:
        down = down_at(o.start_s)
        failed = {r for r, ns in nodes.items() if ns and ns <= down}
        out.append({
            "target": o.target, "start_s": o.start_s, "end_s": o.end_s,
            "regions_down": sorted(failed),
            "cut_off": cut_off(graph, failed),
            "jobs_data_unreachable": sum(1 for s in specs if s.data_region in failed),
        })
    return out


def describe(entry: dict) -> str:
    """One line for a person: `region:r0 from day 0.5: regions down r0; r1 cut off from r2; 12 jobs' data ...`."""
    parts = [f"regions down {', '.join(entry['regions_down']) or 'none'}"]
    parts += [f"{r} cut off from {', '.join(lost)}" for r, lost in entry["cut_off"].items()]
    parts.append(f"{entry['jobs_data_unreachable']} jobs' data unreachable")
    return f"{entry['target']} from day {entry['start_s'] / 86400:g}: " + "; ".join(parts)
