"""What-if capacity planning: scenarios are a base (trace, fleet, policy, window) plus changes, replayed
in parallel processes; `find_min_capacity` searches the least added capacity that meets SLA targets.

Scenario file (YAML):

```yaml
base:                         # everything a replay needs; each scenario may override any key
  trace: synthetic:2          # a trace path (with format:) or synthetic[:DAYS]
  format: philly
  fleet: synthetic:2          # FLEET.json, single:NODESxDEVICES, philly:MACHINES.csv, synthetic[:REGIONS]
  policy: cpsat               # cpsat | fifo | las
  start_day: null             # window, as `meridian replay`
  days: null
  warmup_days: 3
  epoch_s: 300
  seed: 0
  time_limit_s: 0.5
  sla_targets: {premium: 0.95, standard: 0.70}
scenarios:
  - name: today
  - name: more-h100
    add_nodes: [{cluster: r1c0, accelerator: H100, devices: 8, count: 8}]
  - name: shrink
    remove_nodes: [{cluster: r0c0, accelerator: A100, count: 4}]
  - name: region-0-down
    outages: ["region:region-0@0.5"]          # TARGET@START_DAY[+HOURS], as --fail
  - name: busier
    demand_scale: 1.5
find_min_capacity:            # used by --find-min-capacity
  scenario: today             # the scenario to add capacity to (default: the first)
  cluster: r1c0               # where the nodes go (an existing cluster, or a new one with region:)
  accelerator: H100
  devices: 8                  # devices per added node
  max_nodes: 64
  targets: {premium: 0.99, standard: 0.70}
```

Changes:
- `add_nodes`: a node group per entry, added to `cluster` (created in `region` if it does not exist).
- `remove_nodes`: removes `count` nodes of that accelerator from the cluster (highest-numbered first).
- `outages`: nodes, clusters or regions down from a day (for some hours, or for good).
- `demand_scale: k`: every job is kept and copied `floor(k) - 1` more times, plus once more with
  probability `k - floor(k)`; below 1 each job is kept with probability `k`. The draws hash the job id
  with the seed, so a scenario is repeatable; copies arrive with their original (`#n` suffixed id).
- `find_min_capacity` assumes more nodes never hurt attainment and searches the node count with
  `workers` replays per round in parallel (a k-ary search), reporting the least count that meets
  every tier's target and the summary it got.
"""

from __future__ import annotations

import math
import multiprocessing
import os
from collections.abc import Callable, Sequence
from concurrent.futures import ProcessPoolExecutor
from dataclasses import dataclass, field, replace
from typing import Any

from datasets.attributes import JobSpec, hash_unit
from models import Fleet
from replay.report import Plotter, Reporter

# Fresh worker processes (not forks): a fork of a process that has run the solver's threads is not safe.
_SPAWN = multiprocessing.get_context("spawn")
BASE_KEYS = {"trace": str, "format": str, "fleet": str, "policy": str, "start_day": (int, float, type(None)),
             "days": (int, float, type(None)), "warmup_days": (int, float), "epoch_s": (int, float), "seed": int,
             "time_limit_s": (int, float), "sla_targets": dict, "replan_every": int, "max_days": (int, float),
             "equal_priorities": bool}
CHANGE_KEYS = {"name", "add_nodes", "remove_nodes", "outages", "demand_scale"}


class ScenarioError(ValueError):
    """A scenario file mistake: names the field path and the value."""


@dataclass
class Scenario:
    name: str
    base: dict[str, Any]
    add_nodes: list[dict[str, Any]] = field(default_factory=list)
    remove_nodes: list[dict[str, Any]] = field(default_factory=list)
    outages: list[str] = field(default_factory=list)
    demand_scale: float = 1.0


@dataclass
class CapacitySearch:
    scenario: str
    cluster: str
    accelerator: str
    devices: int
    max_nodes: int
    targets: dict[str, float]
    region: str | None = None


def parse_scenarios(data: Any) -> tuple[list[Scenario], CapacitySearch | None]:
    """Validate a decoded scenario file; ScenarioError names the first wrong field."""
    if not isinstance(data, dict):
        raise ScenarioError("(file): a scenario file is a mapping with base: and scenarios:")
    unknown = set(data) - {"base", "scenarios", "find_min_capacity"}
    if unknown:
        raise ScenarioError(f"{min(unknown)}: unknown key (expected base, scenarios, find_min_capacity)")
    base = data.get("base") or {}
    _check_base(base, "base")
    raw = data.get("scenarios")
    if not isinstance(raw, list) or not raw:
        raise ScenarioError("scenarios: expected a non-empty list")
    out: list[Scenario] = []
    names: set[str] = set()
    for i, s in enumerate(raw):
        p = f"scenarios[{i}]"
        if not isinstance(s, dict) or not isinstance(s.get("name"), str) or not s["name"]:
            raise ScenarioError(f"{p}.name: every scenario needs a name")
        if s["name"] in names:
            raise ScenarioError(f"{p}.name: duplicate {s['name']!r}")
        names.add(s["name"])
        over = {k: v for k, v in s.items() if k not in CHANGE_KEYS}
        _check_base(over, p)
        merged = {**base, **over}
        for key in ("trace", "fleet"):
            if key not in merged:
                raise ScenarioError(f"{p}.{key}: required (in base: or the scenario)")
        sc = Scenario(name=s["name"], base=merged)
        for j, a in enumerate(_list(s, "add_nodes", p)):
            sc.add_nodes.append(_node_change(a, f"{p}.add_nodes[{j}]", adding=True))
        for j, r in enumerate(_list(s, "remove_nodes", p)):
            sc.remove_nodes.append(_node_change(r, f"{p}.remove_nodes[{j}]", adding=False))
        for j, o in enumerate(_list(s, "outages", p)):
            from replay.outages import parse_outage

            try:
                parse_outage(o if isinstance(o, str) else "")
            except ValueError as exc:
                raise ScenarioError(f"{p}.outages[{j}]: {exc}") from None
            sc.outages.append(o)
        if "demand_scale" in s:
            k = s["demand_scale"]
            if not isinstance(k, (int, float)) or isinstance(k, bool) or not 0 < k <= 100:
                raise ScenarioError(f"{p}.demand_scale: expected a number in (0, 100], got {k!r}")
            sc.demand_scale = float(k)
        out.append(sc)
    search = None
    fm = data.get("find_min_capacity")
    if fm is not None:
        p = "find_min_capacity"
        if not isinstance(fm, dict):
            raise ScenarioError(f"{p}: expected a mapping")
        target_sc = fm.get("scenario", out[0].name)
        if target_sc not in names:
            raise ScenarioError(f"{p}.scenario: no scenario named {target_sc!r}")
        ch = _node_change({k: fm[k] for k in ("cluster", "accelerator", "devices", "region") if k in fm} | {"count": 1},
                          p, adding=True)
        mx = fm.get("max_nodes", 64)
        if not isinstance(mx, int) or isinstance(mx, bool) or mx < 1:
            raise ScenarioError(f"{p}.max_nodes: expected an integer >= 1, got {mx!r}")
        targets = fm.get("targets")
        if not isinstance(targets, dict) or not targets or any(
                t not in ("premium", "standard", "basic") or not isinstance(v, (int, float)) or not 0 < v <= 1
                for t, v in targets.items()):
            raise ScenarioError(f"{p}.targets: expected {{tier: share in (0, 1]}}, got {targets!r}")
        search = CapacitySearch(target_sc, ch["cluster"], ch["accelerator"], ch["devices"], mx,
                                {t: float(v) for t, v in targets.items()}, ch.get("region"))
    return out, search


def _list(s: dict, key: str, p: str) -> list:
    v = s.get(key, [])
    if not isinstance(v, list):
        raise ScenarioError(f"{p}.{key}: expected a list, got {v!r}")
    return v


def _check_base(d: Any, p: str) -> None:
    if not isinstance(d, dict):
        raise ScenarioError(f"{p}: expected a mapping")
    for k, v in d.items():
        if k not in BASE_KEYS:
            raise ScenarioError(f"{p}.{k}: unknown key")
        types = BASE_KEYS[k]
        if not isinstance(v, types) or (isinstance(v, bool) and types is not bool):
            raise ScenarioError(f"{p}.{k}: wrong type, got {v!r}")
    if "policy" in d and d["policy"] not in ("cpsat", "fifo", "las"):
        raise ScenarioError(f"{p}.policy: expected cpsat, fifo or las, got {d['policy']!r}")


def _node_change(a: Any, p: str, adding: bool) -> dict[str, Any]:
    if not isinstance(a, dict):
        raise ScenarioError(f"{p}: expected a mapping")
    allowed = {"cluster", "accelerator", "count"} | ({"devices", "region"} if adding else set())
    for k in a:
        if k not in allowed:
            raise ScenarioError(f"{p}.{k}: unknown key")
    for k in ("cluster", "accelerator"):
        if not isinstance(a.get(k), str) or not a[k]:
            raise ScenarioError(f"{p}.{k}: required text, got {a.get(k)!r}")
    for k in ("count",) + (("devices",) if adding else ()):
        v = a.get(k)
        if not isinstance(v, int) or isinstance(v, bool) or v < 1:
            raise ScenarioError(f"{p}.{k}: expected an integer >= 1, got {v!r}")
    return dict(a)


def apply_fleet_changes(fleet: Fleet, add: Sequence[dict], remove: Sequence[dict]) -> Fleet:
    """The fleet with node groups added and nodes removed; ScenarioError for a cluster it lacks."""
    data = fleet.model_dump()
    clusters = {c["name"]: c for c in data["clusters"]}
    regions = {r["name"] for r in data["regions"]}
    for i, a in enumerate(add):
        c = clusters.get(a["cluster"])
        if c is None:
            if a.get("region") not in regions:
                raise ScenarioError(f"add_nodes[{i}].cluster: no cluster {a['cluster']!r} (give region: to create it)")
            c = {"name": a["cluster"], "region": a["region"], "node_groups": []}
            data["clusters"].append(c)
            clusters[c["name"]] = c
        c["node_groups"].append({"prefix": f"{a['cluster']}-add{len(c['node_groups'])}-", "count": a["count"],
                                 "accelerator": a["accelerator"], "devices": a["devices"]})
    for i, r in enumerate(remove):
        c = clusters.get(r["cluster"])
        if c is None:
            raise ScenarioError(f"remove_nodes[{i}].cluster: no cluster {r['cluster']!r}")
        left = r["count"]
        for g in reversed(c["node_groups"]):
            if g["accelerator"] == r["accelerator"] and left:
                k = min(left, g["count"])
                g["count"] -= k
                left -= k
        if left:
            raise ScenarioError(f"remove_nodes[{i}].count: {r['cluster']} has {r['count'] - left} "
                                f"{r['accelerator']} nodes, not {r['count']}")
    from datasets.fleets import parse_fleet

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


def run_scenario(sc: Scenario, out_dir: str | None, plotter: Plotter | None, extra_nodes: int = 0,
                 search: CapacitySearch | None = None, reporter: Reporter | None = None) -> dict:
    """One scenario's replay (in a worker process); its summary, with the scenario's name."""
    from replay.harness import ReplaySetup, Window
    from replay.inputs import load_fleet_arg, load_specs
    from replay.outages import outage_schedule, parse_outage
    from replay.report import replay_and_report

    b = sc.base
    seed = int(b.get("seed", 0))
    fleet = load_fleet_arg(b["fleet"], seed)
    add = list(sc.add_nodes)
    if extra_nodes and search is not None:
        add.append({"cluster": search.cluster, "accelerator": search.accelerator, "devices": search.devices,
                    "count": extra_nodes, "region": search.region})
    fleet = apply_fleet_changes(fleet, add, sc.remove_nodes)
    specs, _ = load_specs(b["trace"], b.get("format", "philly"), seed)
    specs = scale_demand(specs, sc.demand_scale, seed)
    outages = outage_schedule(fleet, [parse_outage(o) for o in sc.outages]) if sc.outages else None
    targets = dict(b.get("sla_targets", {"premium": 0.95, "standard": 0.70}))
    if search is not None:
        targets.update(search.targets)
    setup = ReplaySetup(policy=b.get("policy", "cpsat"), epoch_s=float(b.get("epoch_s", 300)), seed=seed,
                        time_limit_s=float(b.get("time_limit_s", 0.5)), replan_every=int(b.get("replan_every", 3)),
                        equal_priorities=bool(b.get("equal_priorities", False)),
                        max_days=float(b.get("max_days", 60)), outages=outages, sla_targets=targets)
    window = Window(b.get("start_day"), b.get("days"), float(b.get("warmup_days", 3)))
    summary = replay_and_report(specs, fleet, setup, window, out_dir, plotter=plotter, label=sc.name,
                                reporter=reporter)
    summary["scenario"] = sc.name
    summary["devices"] = sum(g.count * g.devices for c in fleet.clusters for g in c.node_groups)
    summary["added_nodes"] = extra_nodes
    return summary


def run_scenarios(scenarios: Sequence[Scenario], out_dir: str | None, workers: int, plotter: Plotter | None = None,
                  reporter: Reporter | None = None) -> list[dict]:
    """Every scenario in its own process (up to `workers` at once), in file order."""
    dirs = [os.path.join(out_dir, _safe(s.name)) if out_dir else None for s in scenarios]
    if workers <= 1 or len(scenarios) == 1:
        return [run_scenario(s, d, plotter, reporter=reporter) for s, d in zip(scenarios, dirs)]
    with ProcessPoolExecutor(max_workers=workers, mp_context=_SPAWN) as pool:
        futs = [pool.submit(run_scenario, s, d, plotter, reporter=reporter) for s, d in zip(scenarios, dirs)]
        return [f.result() for f in futs]


def meets(summary: dict, targets: dict[str, float]) -> bool:
    """Whether every tier's attainment (share of jobs at or above its SLA ratio target) reaches its target."""
    att = summary.get("sla_attainment", {})
    return all(att.get(t) is not None and att[t] >= v - 1e-12 for t, v in targets.items())


def find_min_capacity(sc: Scenario, search: CapacitySearch, workers: int,
                      evaluate: Callable[[int], dict] | None = None) -> tuple[int | None, dict[int, dict]]:
    """The least number of added nodes (0..max_nodes) whose replay meets the targets, or None when even
    `max_nodes` does not; with every evaluated count's summary. k-ary search, `workers` counts per round."""
    tried: dict[int, dict] = {}

    def run_many(counts: list[int]) -> None:
        counts = [c for c in counts if c not in tried]
        if not counts:
            return
        if evaluate is not None:
            for c in counts:
                tried[c] = evaluate(c)
        elif workers <= 1 or len(counts) == 1:
            for c in counts:
                tried[c] = run_scenario(sc, None, None, c, search)
        else:
            with ProcessPoolExecutor(max_workers=min(workers, len(counts)), mp_context=_SPAWN) as pool:
                futs = {c: pool.submit(run_scenario, sc, None, None, c, search) for c in counts}
                for c, f in futs.items():
                    tried[c] = f.result()

    run_many([0, search.max_nodes])
    if meets(tried[0], search.targets):
        return 0, tried
    if not meets(tried[search.max_nodes], search.targets):
        return None, tried
    lo, hi = 0, search.max_nodes          # lo fails, hi meets
    k = max(1, workers)
    while hi - lo > 1:
        step = (hi - lo) / (k + 1)
        probes = sorted({min(hi - 1, max(lo + 1, lo + round(step * (i + 1)))) for i in range(k)})
        run_many(probes)
        for c in probes:
            if meets(tried[c], search.targets):
                hi = min(hi, c)
        lo = max([lo] + [c for c in probes if c < hi and not meets(tried[c], search.targets)])
    return hi, tried


def _safe(name: str) -> str:
    return "".join(ch if ch.isalnum() or ch in "-_." else "_" for ch in name)
