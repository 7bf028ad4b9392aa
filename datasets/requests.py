"""Seeded generator of hard plan requests, shaped like production (bench/plan_scale.py, bench/service_load.py, tests).

Demand is at least 1.2x capacity, gang sizes mix (devices_per_replica 3 and 6 do not divide
8-device nodes), about half the jobs already run (on valid, non-overlapping placements),
quotas bind, a migration budget is set, some nodes are down (with jobs on them), several
accelerator types, links between some regions only.
"""

from __future__ import annotations

import random
from typing import Any

SIZES = {
    "medium": {"devices": 1_500, "jobs": 600, "regions": 3},
    "large": {"devices": 15_000, "jobs": 5_000, "regions": 6},
    "planet": {"devices": 90_000, "jobs": 20_000, "regions": 12},
}

ACCELS = [("H100", 8, 1.0), ("A100", 8, 0.6), ("V100", 4, 0.3), ("A100-3g.40gb", 2, 0.25)]
TIERS = [("premium", 0.10), ("standard", 0.50), ("basic", 0.40)]
DPR = [(1, 0.45), (2, 0.2), (4, 0.15), (8, 0.1), (3, 0.05), (6, 0.05)]


def _pick(rng: random.Random, table: list[tuple[Any, float]]) -> Any:
    x = rng.random()
    for v, p in table:
        x -= p
        if x <= 0:
            return v
    return table[-1][0]


def generate(devices: int, jobs: int, regions: int, seed: int = 0, time_limit_s: float = 10.0) -> dict:
    rng = random.Random(seed)
    region_names = [f"r{i}" for i in range(regions)]
    fleet_regions = [{"name": r, "storage_gbps": rng.choice([1.0, 2.0, 4.0])} for r in region_names]
    links = []
    for i in range(regions):   # a ring plus a few chords: some pairs have no link
        links.append({"a": region_names[i], "b": region_names[(i + 1) % regions], "gbps": rng.choice([0.5, 1.0, 2.0])})
    for _ in range(regions // 3):
        a, b = rng.sample(region_names, 2)
        if not any({l["a"], l["b"]} == {a, b} for l in links):
            links.append({"a": a, "b": b, "gbps": 0.25})
    if regions <= 2:   # a ring of one region is a self-link, of two a duplicate
        links = links[: regions - 1]

    clusters = []
    nodes: list[tuple[str, str, str, int]] = []   # (name, cluster, accel, devices)
    per_region = devices / regions
    for r in region_names:
        n_clusters = rng.choice([2, 3])
        for c in range(n_clusters):
            cname = f"{r}-c{c}"
            groups = []
            types = rng.sample(ACCELS, 2)
            budget = per_region / n_clusters
            for k, (acc, dev, _) in enumerate(types):
                share = 0.65 if k == 0 else 0.35
                count = max(1, round(budget * share / dev))
                prefix = f"{cname}-{acc.lower().replace('.', '')}-"
                groups.append({"prefix": prefix, "count": count, "accelerator": acc, "devices": dev})
                nodes += [(f"{prefix}{i}", cname, acc, dev) for i in range(count)]
            clusters.append({"name": cname, "region": r, "node_groups": groups})
    down = set(rng.sample([n[0] for n in nodes], max(1, len(nodes) // 100)))
    capacity = sum(n[3] for n in nodes)

    tenants = [f"t{i}" for i in range(max(3, jobs // 60))]
    speed_of = {a: s for a, _, s in ACCELS}
    free = {n[0]: n[3] for n in nodes}
    by_pool: dict[tuple[str, str], list[str]] = {}
    for name, c, a, _ in nodes:
        by_pool.setdefault((c, a), []).append(name)
    region_of = {c["name"]: c["region"] for c in clusters}

    out_jobs = []
    demand = 0
    for i in range(jobs):
        tier = _pick(rng, TIERS)
        dpr = _pick(rng, DPR)
        hi = rng.choice([1, 1, 2, 2, 4, 4, 8, 16]) if dpr <= 2 else rng.choice([1, 2, 2, 4])
        lo = hi if rng.random() < 0.3 else max(1, hi // 4)
        n_types = rng.choice([1, 2, 2, 3])
        accs = rng.sample([a for a, _, _ in ACCELS if a != "A100-3g.40gb" or dpr <= 2], min(n_types, 3))
        speed = {a: round(speed_of[a] * rng.uniform(0.8, 1.2), 3) for a in accs}
        data_region = rng.choice(region_names + [None])
        job: dict[str, Any] = {
            "id": f"j{i}", "tenant": rng.choice(tenants), "tier": tier,
            "priority": round(rng.choice([1.0, 1.0, 1.0, 0.5, 2.0]) * rng.uniform(0.8, 1.2), 3),
            "replicas": {"min": lo, "max": hi}, "devices_per_replica": dpr, "speed": speed,
            "data_region": data_region, "checkpoint_gb": round(rng.uniform(1, 200), 1),
        }
        if rng.random() < 0.15:
            job["regions"] = rng.sample(region_names, max(1, regions // 3))
        demand += hi * dpr
        if rng.random() < 0.5:   # running: try to place it somewhere valid
            acc = rng.choice(accs)
            pools = [k for k in by_pool if k[1] == acc and (job.get("regions") is None or region_of[k[0]] in job["regions"])]
            rng.shuffle(pools)
            r = rng.randint(lo, hi)
            for pk in pools[:3]:
                got: dict[str, int] = {}
                need = r
                for nname in by_pool[pk]:
                    k = min(need, free[nname] // dpr)
                    if k > 0:
                        got[nname] = k
                        need -= k
                    if need == 0:
                        break
                if need == 0:
                    for nname, k in got.items():
                        free[nname] -= k * dpr
                    job["current"] = {"cluster": pk[0], "accelerator": acc, "nodes": got}
                    break
        elif rng.random() < 0.3:
            job["checkpoint_region"] = rng.choice(region_names)
        out_jobs.append(job)
    # demand at least 1.2 x capacity: scale elastic maxima up where short
    j = 0
    while demand < 1.2 * capacity and out_jobs:
        job = out_jobs[j % len(out_jobs)]
        if job["replicas"]["min"] < job["replicas"]["max"] or "current" not in job:
            job["replicas"]["max"] += 1
            demand += job["devices_per_replica"]
        j += 1

    quotas = []
    use: dict[tuple[str, str], int] = {}
    for job in out_jobs:
        key = (job["tenant"], job["tier"])
        use[key] = use.get(key, 0) + job["replicas"]["max"] * job["devices_per_replica"]
    for (t, tier), u in sorted(use.items()):
        if tier != "premium" and rng.random() < 0.5:
            running = sum(sum(jb["current"]["nodes"].values()) * jb["devices_per_replica"] for jb in out_jobs
                          if "current" in jb and jb["tenant"] == t and jb["tier"] == tier)
            quotas.append({"tenant": t, "tier": tier, "devices": max(running, int(u * 0.6))})
    total_ckpt = sum(jb["checkpoint_gb"] for jb in out_jobs)
    return {
        "epoch_s": 300,
        "fleet": {"regions": fleet_regions, "links": links, "clusters": clusters, "down_nodes": sorted(down)},
        "jobs": out_jobs,
        "quotas": quotas,
        "policy": {"migration_budget_gb": round(total_ckpt * 0.02, 1), "time_limit_s": time_limit_s},
    }


def generate_size(size: str, seed: int = 0, time_limit_s: float | None = None) -> dict:
    limits = {"medium": 1.0, "large": 5.0, "planet": 10.0}
    return generate(**SIZES[size], seed=seed, time_limit_s=time_limit_s or limits[size])
