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



def _first_fit(names: list[str], free: dict[str, int], replicas: int, dpr: int) -> dict[str, int] | None:
    """A running job's node map: `replicas` of `dpr` devices onto `names` in order, as many per node as fit,
    taken from `free`; None (nothing taken) when they do not all fit."""
    got: dict[str, int] = {}
    need = replicas
    for name in names:
        k = min(need, free[name] // dpr)
        if k > 0:
            got[name] = k
            need -= k
        if need == 0:
            break
    if need:
        return None
    for name, k in got.items():
        free[name] -= k * dpr
    return got


def _demand_by_tenant_tier(jobs: list[dict]) -> dict[tuple[str, str], int]:
    """Devices each (tenant, tier) would hold at every job's max: what the generators size quotas from."""
    use: dict[tuple[str, str], int] = {}
    for job in jobs:
        key = (job["tenant"], job["tier"])
        use[key] = use.get(key, 0) + job["replicas"]["max"] * job["devices_per_replica"]
    return use

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
                got = _first_fit(by_pool[pk], free, r, dpr)
                if got is not None:
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
    use = _demand_by_tenant_tier(out_jobs)
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


# ---------------------------------------------------------------------------------------------
# The family: request shapes drawn per seed, so that the engine is measured on fleets it was not
# tuned to (issue 10). `generate` above stays as it is: tests and the service benchmark use it.

FAMILY_SIZES = {
    "medium": {"devices": (1_500, 2_000), "jobs": 600, "regions": (2, 3), "time_limit_s": 1.0},
    "large": {"devices": (14_000, 16_000), "jobs": 5_000, "regions": (4, 6), "time_limit_s": 5.0},
    "planet": {"devices": (86_000, 90_000), "jobs": 20_000, "regions": (10, 12), "time_limit_s": 10.0},
}

# (name, relative speed): one MIG slice, one not NVIDIA
FAMILY_ACCELS = [("H100", 1.0), ("A100", 0.6), ("L40S", 0.45), ("V100", 0.3), ("A100-1g.10gb", 0.12), ("MI300X", 0.9)]


def family_shape(seed: int) -> dict[str, Any]:
    """The shape parameters of one family member: everything a fleet or a workload may vary in."""
    rng = random.Random(f"shape-{seed}")
    return {
        "node_sizes": rng.sample([[2, 4, 8], [4, 8], [8], [2, 8], [4, 8, 8]], 1)[0],
        "groups_per_cluster": rng.randint(1, 3),       # most groups per cluster
        "clusters_per_region": (4, rng.randint(5, 8)),
        "types_per_job": rng.choice([(1, 2), (1, 3), (2, 4), (1, 4)]),
        "dpr": rng.choice([[(1, 0.5), (2, 0.2), (4, 0.15), (8, 0.15)], [(1, 0.4), (2, 0.2), (4, 0.2), (8, 0.2)],
                           [(1, 0.6), (2, 0.1), (4, 0.1), (8, 0.2)]]),   # before fitting the load
        "big_gang": rng.uniform(0.08, 0.25),           # capacity share asked by gangs of 8-32 x 8 devices
        "rigid": rng.uniform(0.25, 0.42),
        "running": rng.uniform(0.35, 0.6),
        "quota_tiers": rng.choice([("premium", "standard"), ("premium", "standard", "basic"), ("standard",)]),
        "quota_share": rng.uniform(0.4, 0.9),          # quota as a share of the tenant-tier's demand
        "epoch_s": rng.choice([120, 180, 300, 450, 600]),
        "restart_overhead_s": rng.choice([20, 30, 45, 60]),
        "link_density": rng.uniform(0.3, 0.9),
        "load": rng.uniform(0.8, 2.0),                  # demand (replicas.max) over capacity
        "down_share": rng.uniform(0.003, 0.02),
        "budget_share": rng.choice([None, 0.01, 0.03, 0.1]),
    }


def generate_family(size: str, seed: int = 0, time_limit_s: float | None = None) -> dict:
    """One member of the family at `size` (medium, large, planet): shape drawn from `seed`.

    Node groups of 2, 4 and 8 devices of one accelerator type, up to three groups per cluster,
    four to eight clusters per region; six accelerator types (a MIG slice, a non-NVIDIA part),
    jobs allowed on one to four; gangs of up to 32 replicas of 8 devices; about a third rigid;
    quotas on premium as well as standard; epochs of 120-600 s with restart overheads of
    20-60 s; some region pairs without a link; demand 0.8x-2x capacity; running jobs on
    valid placements (some on nodes now down).
    """
    spec = FAMILY_SIZES[size]
    shape = family_shape(seed)
    rng = random.Random(f"{size}-{seed}")
    target = rng.randint(*spec["devices"])
    regions = rng.randint(*spec["regions"])
    region_names = [f"r{i}" for i in range(regions)]
    fleet_regions = [{"name": r, "storage_gbps": rng.choice([1.0, 2.0, 4.0])} for r in region_names]
    links = [{"a": a, "b": b, "gbps": rng.choice([0.25, 0.5, 1.0, 2.0])}
             for i, a in enumerate(region_names) for b in region_names[i + 1:] if rng.random() < shape["link_density"]]

    n_clusters = [rng.randint(*shape["clusters_per_region"]) for _ in region_names]
    per_cluster = target / sum(n_clusters)
    region_types = {r: rng.sample(FAMILY_ACCELS, rng.randint(3, 5)) for r in region_names}
    clusters = []
    nodes: list[tuple[str, str, str, int]] = []   # (name, cluster, accel, devices)
    for r, nc in zip(region_names, n_clusters):
        for c in range(nc):
            cname = f"{r}-c{c}"
            k = rng.randint(1, shape["groups_per_cluster"])
            types = rng.sample(region_types[r], min(k, len(region_types[r])))
            shares = [rng.uniform(0.5, 1.5) for _ in types]
            groups = []
            budget = per_cluster * rng.uniform(0.6, 1.4)
            for (acc, _), s in zip(types, shares):
                dev = rng.choice(shape["node_sizes"])
                count = max(1, round(budget * s / sum(shares) / dev))
                prefix = f"{cname}-{acc.lower().replace('.', '')}-"
                groups.append({"prefix": prefix, "count": count, "accelerator": acc, "devices": dev})
                nodes += [(f"{prefix}{i}", cname, acc, dev) for i in range(count)]
            clusters.append({"name": cname, "region": r, "node_groups": groups})
    capacity = sum(n[3] for n in nodes)
    fleet_types = sorted({n[2] for n in nodes})
    speed_of = dict(FAMILY_ACCELS)
    dmax_of: dict[str, int] = {}
    for _, _, a, d in nodes:
        dmax_of[a] = max(dmax_of.get(a, 0), d)

    jobs = spec["jobs"]
    tenants = [f"t{i}" for i in range(max(3, jobs // 50))]
    demand_target = shape["load"] * capacity
    # the lumpy gangs: 8-32 replicas of 8 devices, together a share of capacity
    n_big = max(1, round(shape["big_gang"] * capacity / 160))
    big = set(rng.sample(range(jobs), n_big))
    mean_devices = max(1.0, (demand_target - 160 * n_big) / (jobs - n_big))
    # gangs no larger than the demand per job allows (a 600-job medium request is mostly small jobs)
    dpr_table = [(d, p * min(1.0, mean_devices / (1.5 * d)) ** 2) for d, p in shape["dpr"]]
    total_p = sum(p for _, p in dpr_table)
    dpr_table = [(d, p / total_p) for d, p in dpr_table]
    out_jobs = []
    for i in range(jobs):
        tier = _pick(rng, TIERS)
        rigid = rng.random() < shape["rigid"]
        if i in big:
            dpr, hi = 8, rng.randint(8, 32)
        else:
            dpr = _pick(rng, dpr_table)
            hi = max(1, min(32, round(rng.expovariate(1.0) * mean_devices / dpr)))
        if rigid:
            lo = hi
        else:
            hi = max(2, hi)
            lo = min(hi - 1, max(1, hi // rng.choice([2, 4, 8])))
        fits = [a for a in fleet_types if dmax_of[a] >= dpr] or fleet_types
        n_types = min(len(fits), rng.randint(*shape["types_per_job"]))
        accs = rng.sample(fits, n_types)
        speed = {a: round(speed_of[a] * rng.uniform(0.8, 1.2), 3) for a in accs}
        job: dict[str, Any] = {
            "id": f"j{i}", "tenant": rng.choice(tenants), "tier": tier,
            "priority": round(rng.choice([1.0, 1.0, 1.0, 0.5, 2.0]) * rng.uniform(0.8, 1.2), 3),
            "replicas": {"min": lo, "max": hi}, "devices_per_replica": dpr, "speed": speed,
            "data_region": rng.choice(region_names + [None]), "checkpoint_gb": round(rng.uniform(1, 300), 1),
        }
        if rng.random() < 0.15:
            job["regions"] = rng.sample(region_names, max(1, regions // 2))
        out_jobs.append(job)
    # demand within a few percent of load x capacity: trim or grow elastic maxima
    demand = sum(j["replicas"]["max"] * j["devices_per_replica"] for j in out_jobs)
    order = list(range(jobs))
    rng.shuffle(order)
    for step in range(20 * jobs):
        if abs(demand - demand_target) <= 0.02 * demand_target:
            break
        if order[step % jobs] in big:
            continue
        job = out_jobs[order[step % jobs]]
        rep = job["replicas"]
        rigid = rep["min"] == rep["max"]
        if demand > demand_target and rep["max"] > (1 if rigid else 2):
            rep["max"] -= 1
            rep["min"] = rep["max"] if rigid else min(rep["min"], rep["max"] - 1)
            demand -= job["devices_per_replica"]
        elif demand < demand_target and rep["max"] < 32:
            rep["max"] += 1
            rep["min"] += 1 if rigid else 0
            demand += job["devices_per_replica"]

    # running jobs on valid placements (first fit over shuffled nodes: fragmented, as in life)
    free = {n[0]: n[3] for n in nodes}
    by_pool: dict[tuple[str, str], list[str]] = {}
    for name, c, a, _ in nodes:
        by_pool.setdefault((c, a), []).append(name)
    region_of = {c["name"]: c["region"] for c in clusters}
    for job in out_jobs:
        if rng.random() >= shape["running"]:
            if rng.random() < 0.3:
                job["checkpoint_region"] = rng.choice(region_names)
            continue
        dpr, lo, hi = job["devices_per_replica"], job["replicas"]["min"], job["replicas"]["max"]
        pools = [k for k in by_pool if k[1] in job["speed"]
                 and (job.get("regions") is None or region_of[k[0]] in job["regions"])]
        rng.shuffle(pools)
        r = rng.randint(lo, hi)
        for pk in pools[:3]:
            names = by_pool[pk][:]
            rng.shuffle(names)
            got = _first_fit(names, free, r, dpr)
            if got is not None:
                job["current"] = {"cluster": pk[0], "accelerator": pk[1], "nodes": got}
                break
    down = sorted(rng.sample([n[0] for n in nodes], max(1, round(len(nodes) * shape["down_share"]))))
    down_set = set(down)

    quotas = []
    use = _demand_by_tenant_tier(out_jobs)
    for (t, tier), u in sorted(use.items()):
        if tier in shape["quota_tiers"] and rng.random() < 0.6:
            # never below what its protected premium jobs hold: keeping them must stay valid
            held = sum(sum(jb["current"]["nodes"].values()) * jb["devices_per_replica"] for jb in out_jobs
                       if "current" in jb and jb["tenant"] == t and jb["tier"] == tier
                       and (tier != "premium" or not down_set.intersection(jb["current"]["nodes"])))
            quotas.append({"tenant": t, "tier": tier, "devices": max(held, int(u * shape["quota_share"]))})
    total_ckpt = sum(jb["checkpoint_gb"] for jb in out_jobs)
    budget = None if shape["budget_share"] is None else round(total_ckpt * shape["budget_share"], 1)
    return {
        "epoch_s": shape["epoch_s"],
        "fleet": {"regions": fleet_regions, "links": links, "clusters": clusters, "down_nodes": down},
        "jobs": out_jobs,
        "quotas": quotas,
        "policy": {"restart_overhead_s": shape["restart_overhead_s"], "migration_budget_gb": budget,
                   "time_limit_s": time_limit_s or spec["time_limit_s"]},
    }
