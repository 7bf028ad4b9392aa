"""A what-if file on the local process pool and on a local Ray cluster: the same summaries, both wall times.

    unshare -n sh -c 'ip link set lo up; exec .venv/bin/python bench/whatif_ray.py [FILE.yaml] [--nodes 2]'

Runs every scenario of FILE (default `examples/whatif.yaml`, four scenarios) first on `--nodes` local
processes (`--jobs`), then as Ray tasks on a `ray.cluster_utils.Cluster` of `--nodes` nodes with one CPU
each; prints both wall times (and the load average beside each), whether every summary is the same
apart from measured seconds (wall, CPU, planner timings), and one JSON line. Ray listens on every
interface: run it only inside `unshare -n` (it refuses otherwise).
"""

from __future__ import annotations

import argparse
import json
import os
import socket
import sys
import time
from pathlib import Path

import yaml

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from replay.runner import local_runner
from replay.scenarios import parse_scenarios
from replay.whatif import check_inputs, run_scenarios


def deterministic(summary: dict) -> dict:
    if isinstance(summary, list):
        return [deterministic(v) for v in summary]
    if not isinstance(summary, dict):
        return summary
    return {k: deterministic(v) for k, v in summary.items()
            if "wall_s" not in k and "cpu_s" not in k and not k.startswith("planner_s")}


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("file", nargs="?", default="examples/whatif.yaml")
    ap.add_argument("--nodes", type=int, default=2, help="local processes, and Ray nodes of one CPU (default 2)")
    args = ap.parse_args()
    others = [name for _, name in socket.if_nameindex() if name != "lo"]
    if others:
        print(f"interfaces other than loopback exist ({', '.join(others)}): run inside "
              "unshare -n sh -c 'ip link set lo up; exec ...'", file=sys.stderr)
        return 2
    scenarios, _ = parse_scenarios(yaml.safe_load(Path(args.file).read_text()))
    check_inputs(scenarios)
    out: dict = {"file": args.file, "scenarios": [s.name for s in scenarios], "nodes": args.nodes}

    load0 = os.getloadavg()[0]
    t0 = time.perf_counter()
    local = run_scenarios(scenarios, None, args.nodes, runner=local_runner(args.nodes))    # rows: means over replications
    out["local_wall_s"], out["local_load"] = time.perf_counter() - t0, [load0, os.getloadavg()[0]]
    print(f"local pool, {args.nodes} processes: {out['local_wall_s']:.1f} s (load {load0:.1f} -> "
          f"{os.getloadavg()[0]:.1f})", flush=True)

    os.environ["RAY_USAGE_STATS_ENABLED"] = "0"
    import ray
    from ray.cluster_utils import Cluster

    from replay.ray_runner import OBJECT_STORE_BYTES, spec_runner

    t_up = time.perf_counter()
    node = {"num_cpus": 1, "object_store_memory": OBJECT_STORE_BYTES, "node_ip_address": "127.0.0.1"}
    cluster = Cluster(initialize_head=True, head_node_args={**node, "include_dashboard": False})
    for _ in range(args.nodes - 1):
        cluster.add_node(**node)
    ray.init(address=cluster.address, log_to_driver=False, logging_level="warning", _node_ip_address="127.0.0.1")
    cluster.wait_for_nodes(timeout=120)
    out["ray_start_s"] = time.perf_counter() - t_up
    try:
        load0 = os.getloadavg()[0]
        t0 = time.perf_counter()
        on_ray = run_scenarios(scenarios, None, args.nodes, runner=spec_runner("auto"))
        out["ray_wall_s"], out["ray_load"] = time.perf_counter() - t0, [load0, os.getloadavg()[0]]
    finally:
        ray.shutdown()
        cluster.shutdown()
    print(f"Ray, {args.nodes} nodes of 1 CPU: {out['ray_wall_s']:.1f} s (load {load0:.1f} -> "
          f"{os.getloadavg()[0]:.1f}; cluster start {out['ray_start_s']:.1f} s not included)", flush=True)
    out["same_summaries"] = [deterministic(s) for s in local] == [deterministic(s) for s in on_ray]
    out["ratio_ray_to_local"] = out["ray_wall_s"] / out["local_wall_s"]
    for s, r in zip(local, on_ray):
        wall_l, wall_r = s.get("wall_s_total", s.get("wall_s", 0.0)), r.get("wall_s_total", r.get("wall_s", 0.0))
        print(f"  {s['scenario']:<24} mean JCT {s['avg_jct_s']:>9.0f} / {r['avg_jct_s']:>9.0f} s   "
              f"wall {wall_l:6.1f} / {wall_r:6.1f} s   same: {deterministic(s) == deterministic(r)}")
    print(f"same summaries: {out['same_summaries']}; Ray / local wall time {out['ratio_ray_to_local']:.2f}")
    print(json.dumps(out))
    return 0 if out["same_summaries"] else 1


if __name__ == "__main__":
    sys.exit(main())
