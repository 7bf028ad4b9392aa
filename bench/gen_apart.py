"""Independent request generator for placement contract v1/v1.1 ("unseen shapes").

    .venv/bin/python bench/gen_apart.py --family {alibaba,philly,gangs,sparse} --seed S --out FILE

Written on 2026-12-03 by a helper session that read the contract alone (not datasets/requests.py nor
bench/gen_requests.py), as a sample of request shapes the engine was never tuned on; kept unchanged so
that its requests stay the ones measured (README, "Requests from a generator written apart"). Seeds 4
and 9 of each family ask for backfill plans.

Written from shared/spec/placement-v1.md only.  Each family builds a fleet of
1,500-2,000 devices and ~600 jobs with policy.time_limit_s = 1.  Style: an explicit
"ledger" of node free capacity is kept while running jobs are laid down, so every
`current` placement is consistent (never overfills a node); some running jobs are
deliberately put on nodes that are then marked down (failover), some get a count
outside today's [min, max] / allowed set, some sit outside their `regions`.
"""
import argparse
import json
import random

TIERS = ("premium", "standard", "basic")


def divisors_in(w, lo, hi):
    return [d for d in range(lo, hi + 1) if w % d == 0]


class Ledger:
    def __init__(self, rng):
        self.rng = rng
        self.regions = []      # dicts
        self.links = {}        # frozenset -> gbps
        self.clusters = []     # dicts with node_groups
        self.cregion = {}
        self.nodes = {}        # name -> [cluster, acc, devices]
        self.free = {}         # name -> free devices (for current placements)
        self.down = set()
        self.total = 0

    def region(self, name, gbps):
        self.regions.append({"name": name, "storage_gbps": round(gbps, 3)})

    def link(self, a, b, gbps):
        self.links[frozenset((a, b))] = round(gbps, 3)

    def cluster(self, name, region):
        c = {"name": name, "region": region, "node_groups": []}
        self.clusters.append(c)
        self.cregion[name] = region
        return c

    def group(self, c, acc, devices, count):
        if count <= 0:
            return
        safe = acc.replace(".", "p").lower()
        prefix = f"{c['name']}-{safe}-d{devices}-g{len(c['node_groups'])}-"
        c["node_groups"].append({"prefix": prefix, "count": count, "accelerator": acc, "devices": devices})
        for i in range(count):
            n = f"{prefix}{i}"
            self.nodes[n] = [c["name"], acc, devices]
            self.free[n] = devices
        self.total += devices * count

    def pools(self):
        """(cluster, acc) -> list of node names"""
        out = {}
        for n, (c, a, d) in self.nodes.items():
            out.setdefault((c, a), []).append(n)
        return out

    def mark_down(self, frac):
        names = sorted(self.nodes)
        k = max(1, round(frac * len(names))) if frac > 0 else 0
        self.down = set(self.rng.sample(names, k))

    def place(self, cands, dpr, r, allow_down=True, prefer_down=False):
        """Try to lay a running job down: cands = [(cluster, acc)], returns (c, a, nodes) or None."""
        rng = self.rng
        pools = self.pools()
        order = list(cands)
        rng.shuffle(order)
        for (c, a) in order:
            names = [n for n in pools.get((c, a), []) if self.free[n] >= dpr]
            if not allow_down:
                names = [n for n in names if n not in self.down]
            if prefer_down:
                names.sort(key=lambda n: (n not in self.down, rng.random()))
            else:
                # mostly pack onto already-used nodes, sometimes scatter (fragmentation)
                if rng.random() < 0.6:
                    names.sort(key=lambda n: (self.free[n], rng.random()))
                else:
                    rng.shuffle(names)
            got, need = {}, r
            for n in names:
                k = min(need, self.free[n] // dpr)
                if k <= 0:
                    continue
                if rng.random() < 0.25 and k > 1 and need > 1:
                    k = rng.randint(1, k)   # deliberately not packed tight
                got[n] = k
                need -= k
                if need == 0:
                    break
            if need == 0:
                for n, k in got.items():
                    self.free[n] -= k * dpr
                return c, a, got
        return None

    def fleet(self):
        return {
            "regions": self.regions,
            "links": [{"a": min(k), "b": max(k), "gbps": v} for k, v in
                      sorted(self.links.items(), key=lambda kv: sorted(kv[0]))],
            "clusters": self.clusters,
            "down_nodes": sorted(self.down),
        }


def pools_by_acc(L):
    out = {}
    for (c, a) in L.pools():
        out.setdefault(a, []).append(c)
    return out


def fill_to(L, rng, target, groups):
    """groups: list of (cluster, acc, devices, weight); add nodes round-robin by weight until target devices."""
    counts = {i: 0 for i in range(len(groups))}
    acc_total = 0
    wsum = sum(g[3] for g in groups)
    while acc_total < target:
        i = rng.choices(range(len(groups)), weights=[g[3] / wsum for g in groups])[0]
        d = groups[i][2]
        if acc_total + d > target + 8:
            # try a smaller group or stop
            small = [j for j, g in enumerate(groups) if acc_total + g[2] <= target]
            if not small:
                break
            i = rng.choice(small)
            d = groups[i][2]
        counts[i] += 1
        acc_total += d
    for i, g in enumerate(groups):
        L.group(g[0], g[1], g[2], counts[i])


# --------------------------------------------------------------------------------------
# job helpers


def make_job(jid, tenant, tier, prio, rmin, rmax, dpr, speed, data_region=None, regions=None,
             ckpt=1.0, ckpt_region=None, allowed=None):
    j = {"id": jid, "tenant": tenant, "tier": tier, "priority": round(prio, 3),
         "replicas": {"min": rmin, "max": rmax}, "devices_per_replica": dpr,
         "speed": {k: round(v, 4) for k, v in speed.items()},
         "data_region": data_region, "regions": regions, "checkpoint_gb": round(ckpt, 2),
         "checkpoint_region": ckpt_region, "current": None}
    if allowed is not None:
        j["replicas"]["allowed"] = sorted(allowed)
    return j


def run_some(L, rng, jobs, frac, down_frac_of_running=0.04, odd_count=0.05):
    """Give a fraction of jobs a `current` placement.  Big jobs first (they are harder to fit)."""
    pools = L.pools()
    order = sorted(jobs, key=lambda j: -j["replicas"]["max"] * j["devices_per_replica"])
    want = {j["id"] for j in rng.sample(jobs, int(frac * len(jobs)))}
    for j in order:
        if j["id"] not in want:
            continue
        cands = [(c, a) for (c, a) in pools if a in j["speed"]
                 and (j["regions"] is None or L.cregion[c] in j["regions"] or rng.random() < 0.03)]
        if not cands:
            continue
        lo, hi = j["replicas"]["min"], j["replicas"]["max"]
        al = j["replicas"].get("allowed")
        choices = al if al else list(range(lo, hi + 1))
        r0 = rng.choice(choices)
        if rng.random() < odd_count:
            # a count outside today's range / allowed set (the plan must change it)
            r0 = max(1, rng.choice([lo - 1, hi + 1, r0 + 1]))
        if j["tier"] == "premium":
            r0 = rng.choice(choices)   # keep protected premium placements valid
            # protected premium: only where it may stay (else the request would be infeasible)
            cands = [x for x in cands if j["regions"] is None or L.cregion[x[0]] in j["regions"]]
            if not cands:
                continue
        res = L.place(cands, j["devices_per_replica"], r0, prefer_down=rng.random() < down_frac_of_running)
        if res is None and r0 > lo:
            res = L.place(cands, j["devices_per_replica"], lo)
        if res is None:
            continue
        c, a, nodes = res
        j["current"] = {"cluster": c, "accelerator": a, "nodes": nodes}
        j["checkpoint_region"] = None if rng.random() < 0.7 else rng.choice([r["name"] for r in L.regions])


def make_quotas(L, rng, jobs, tightness, tiers_with_quota=TIERS, pct=0.7):
    """Quota per (tenant, tier) for a random subset; premium quotas never below running premium use
    on up nodes (so the request stays feasible), others may be below what runs now."""
    demand, running = {}, {}
    for j in jobs:
        k = (j["tenant"], j["tier"])
        demand[k] = demand.get(k, 0) + j["replicas"]["max"] * j["devices_per_replica"]
        cur = j["current"]
        if cur and all(n not in L.down for n in cur["nodes"]):
            running[k] = running.get(k, 0) + sum(cur["nodes"].values()) * j["devices_per_replica"]
    out = []
    for k in sorted(demand):
        if k[1] not in tiers_with_quota or rng.random() > pct:
            continue
        q = int(demand[k] * rng.uniform(*tightness))
        if k[1] == "premium":
            q = max(q, running.get(k, 0))
        out.append({"tenant": k[0], "tier": k[1], "devices": max(0, q)})
    return out


def policy(rng, seed, **kw):
    p = {"tier_weights": {"premium": 100, "standard": 10, "basic": 1},
         "restart_overhead_s": rng.choice([15, 30, 60, 120]),
         "remote_data_penalty": rng.choice([0.05, 0.1, 0.2, 0.35]),
         "spread_penalty": rng.choice([0.0, 0.005, 0.01, 0.05]),
         "premium_preemptible": False,
         "migration_budget_gb": None,
         "time_limit_s": 1,
         "mode": "backfill" if seed % 5 == 4 else "epoch"}
    if rng.random() < 0.3:
        p["tier_weights"] = {"premium": rng.choice([50, 100, 1000]), "standard": rng.choice([5, 10, 20])}  # partial
    p.update(kw)
    return p


def tier_pick(rng, w):
    return rng.choices(TIERS, weights=w)[0]


# --------------------------------------------------------------------------------------
# families


def fam_alibaba(rng, seed):
    L = Ledger(rng)
    regs = rng.sample(["cn-hangzhou", "cn-beijing", "cn-shanghai", "cn-shenzhen"], rng.choice([2, 3]))
    for r in regs:
        L.region(r, rng.uniform(1.0, 4.0))
    for i in range(len(regs)):
        for k in range(i + 1, len(regs)):
            L.link(regs[i], regs[k], rng.uniform(0.5, 3.0))
    # accelerator catalogue with base speed, node sizes
    cat = {"T4": 0.18, "P100": 0.22, "V100": 0.4, "V100M32": 0.45, "A10": 0.35, "A100": 0.8,
           "H800": 1.0, "A100-1g.10gb": 0.1, "G2": 0.3}
    types = rng.sample(sorted(cat), rng.randint(5, 7))
    target = rng.randint(1500, 2000)
    groups = []
    for r in regs:
        for ci in range(rng.randint(2, 3)):
            c = L.cluster(f"{r[3:6]}{ci}", r)
            for a in rng.sample(types, rng.randint(3, min(5, len(types)))):
                sizes = [7] if "1g" in a else rng.sample([1, 2, 4, 8], rng.randint(1, 3))
                for s in sizes:
                    w = {1: 3, 2: 2, 4: 2, 8: 1.5, 7: 1}[s] * (0.5 if a in ("H800", "A100") else 1.0)
                    groups.append((c, a, s, w))
    fill_to(L, rng, target, groups)
    L.mark_down(rng.uniform(0.005, 0.02))
    present = pools_by_acc(L)
    types = [t for t in types if t in present]
    tenants = [f"team-{x}" for x in rng.sample("abcdefghijklmnop", rng.randint(8, 12))]
    jobs = []
    n = rng.randint(570, 630)
    for i in range(n):
        u = rng.random()
        tier = tier_pick(rng, [0.12, 0.5, 0.38])
        mult = rng.lognormvariate(0, 0.25)
        if u < 0.72:           # tiny: 1 device, inference / notebook / small train
            dpr, lo, hi = 1, 1, rng.choice([1, 1, 1, 2])
            k = rng.randint(2, min(5, len(types)))
        elif u < 0.93:         # small elastic
            dpr = rng.choice([1, 2])
            hi = rng.choice([2, 3, 4])
            lo = rng.randint(1, hi)
            k = rng.randint(2, 4)
        else:                  # a few big gangs on fast types
            dpr = rng.choice([4, 8])
            hi = rng.choice([2, 4, 6, 8])
            lo = rng.choice([hi, max(1, hi // 2)])
            k = 0
        if k:
            ts = rng.sample(types, k)
        else:
            big = [t for t in types if t in ("A100", "H800", "V100M32", "V100", "G2")] or types
            ts = rng.sample(big, min(len(big), rng.randint(1, 2)))
        # type speeds: base * per-job noise (model affinity, cf. Gavel throughput matrices)
        speed = {t: cat[t] * mult * rng.uniform(0.7, 1.3) for t in ts}
        # respect devices_per_replica: drop types whose nodes are all too small
        speed = {t: s for t, s in speed.items()
                 if any(L.nodes[nn][2] >= dpr for c in present[t] for nn in L.pools()[(c, t)])}
        if not speed:
            t = max(types, key=lambda t: max(L.nodes[nn][2] for c in present[t] for nn in L.pools()[(c, t)]))
            speed = {t: cat[t] * mult}
            dpr = min(dpr, max(L.nodes[nn][2] for c in present[t] for nn in L.pools()[(c, t)]))
        allowed = None
        if hi >= 4 and rng.random() < 0.3:
            allowed = divisors_in(hi, lo, hi)
        jobs.append(make_job(f"ali-{seed}-{i:04d}", rng.choice(tenants), tier,
                             rng.choice([0.5, 1, 1, 1, 2, 3]), lo, hi, dpr, speed,
                             data_region=rng.choice(regs + [None, None]),
                             regions=None if rng.random() < 0.85 else rng.sample(regs, rng.randint(1, len(regs))),
                             ckpt=rng.choice([0.1, 0.5, 1, 2, 5, 20]) * dpr, allowed=allowed))
    run_some(L, rng, jobs, rng.uniform(0.3, 0.45))
    for j in jobs:
        if not j["current"] and rng.random() < 0.1:
            j["checkpoint_region"] = rng.choice(regs)
    quotas = make_quotas(L, rng, jobs, (0.3, 0.9))
    pol = policy(rng, seed, migration_budget_gb=rng.choice([None, 200, 1000]))
    return {"epoch_s": rng.choice([300, 600]), "fleet": L.fleet(), "jobs": jobs, "quotas": quotas, "policy": pol}


def fam_philly(rng, seed):
    L = Ledger(rng)
    regs = rng.sample(["us-west2", "us-central", "eu-north", "asia-se"], rng.randint(2, 4))
    for r in regs:
        L.region(r, rng.uniform(1.5, 3.0))
    for i in range(len(regs)):
        for k in range(i + 1, len(regs)):
            L.link(regs[i], regs[k], rng.uniform(0.2, 1.0))
    target = rng.randint(1500, 2000)
    groups = []
    gen = {"P100": 0.5, "P40": 0.4, "V100": 1.0}
    for r in regs:
        for ci in range(rng.randint(1, 2)):
            c = L.cluster(f"ph-{r}-{ci}", r)
            a = rng.choice(sorted(gen))
            groups.append((c, a, 8, 3))
            groups.append((c, a, 4, 1))
    fill_to(L, rng, target, groups)
    L.mark_down(rng.uniform(0.01, 0.03))
    present = pools_by_acc(L)
    vcs = [f"vc{x}" for x in range(rng.randint(6, 10))]
    jobs = []
    n = rng.randint(580, 620)
    for i in range(n):
        # heavy-tailed size (devices), Philly-style
        size = rng.choices([1, 2, 4, 8, 16, 32, 64], weights=[58, 10, 10, 11, 6, 3.5, 1.5])[0]
        if size <= 4:
            dpr, W = size, 1
        else:
            dpr = rng.choice([8, 8, 4])
            W = size // dpr
        tier = tier_pick(rng, [0.15, 0.55, 0.30])
        if W >= 4 and rng.random() < 0.5:   # Singularity-style elastic world size
            lo, hi, allowed = max(1, W // 4), W, divisors_in(W, max(1, W // 4), W)
        else:
            lo, hi, allowed = W, W, None
        types = [t for t in present if rng.random() < 0.8] or [rng.choice(sorted(present))]
        sp = {t: gen[t] * rng.uniform(0.85, 1.15) for t in types}
        jobs.append(make_job(f"ph{seed}-{i}", rng.choice(vcs), tier, rng.choice([1, 1, 1, 1.5, 2]),
                             lo, hi, dpr, sp, data_region=rng.choice(regs),
                             regions=None if rng.random() < 0.9 else [rng.choice(regs)],
                             ckpt=rng.uniform(0.5, 4) * size, allowed=allowed))
    run_some(L, rng, jobs, 0.5, odd_count=0.03)
    for j in jobs:
        if not j["current"] and rng.random() < 0.2:
            j["checkpoint_region"] = rng.choice(regs)   # previously preempted
    quotas = make_quotas(L, rng, jobs, (0.25, 0.6), pct=1.0)
    pol = policy(rng, seed, migration_budget_gb=rng.choice([50, 150, 400]))
    return {"epoch_s": rng.choice([600, 900, 1800]), "fleet": L.fleet(), "jobs": jobs, "quotas": quotas, "policy": pol}


def fam_gangs(rng, seed):
    L = Ledger(rng)
    regs = rng.sample(["na-1", "na-2", "eu-1"], rng.randint(2, 3))
    for r in regs:
        L.region(r, rng.uniform(2, 6))
    for i in range(len(regs)):
        for k in range(i + 1, len(regs)):
            L.link(regs[i], regs[k], rng.uniform(1, 4))
    target = rng.randint(1500, 2000)
    groups = []
    for r in regs:
        for ci in range(rng.randint(1, 2)):
            c = L.cluster(f"{r}-pod{ci}", r)
            for a, d, w in (("H100", 8, 2), ("A100", 8, 2), ("A100", 4, 0.7), ("L40S", 4, 0.6)):
                if rng.random() < 0.8:
                    groups.append((c, a, d, w))
    fill_to(L, rng, target, groups)
    cap = L.total
    L.mark_down(rng.uniform(0.03, 0.07))
    present = pools_by_acc(L)
    base = {"H100": 1.0, "A100": 0.55, "L40S": 0.35}
    tenants = [f"org{x}" for x in range(6)]
    jobs = []
    ratio = rng.uniform(1.5, 2.5)
    gang_dev = 0
    i = 0
    while gang_dev < 0.75 * ratio * cap:
        dpr = rng.choice([4, 8, 8])
        hi = rng.choice([4, 6, 8, 12, 16, 24, 32])
        if rng.random() < 0.45:
            lo, allowed = hi, None                       # rigid
        else:
            lo = max(1, hi // rng.choice([2, 4]))
            allowed = divisors_in(hi, lo, hi) if rng.random() < 0.6 else None
        ts = [t for t in present if not (t == "L40S" and dpr == 8)]
        ts = rng.sample(ts, rng.randint(1, len(ts)))
        sp = {t: base[t] * rng.uniform(0.8, 1.2) for t in ts}
        jobs.append(make_job(f"g{seed}-gang{i}", rng.choice(tenants), tier_pick(rng, [0.25, 0.5, 0.25]),
                             rng.choice([1, 1, 2]), lo, hi, dpr, sp, data_region=rng.choice(regs + [None]),
                             ckpt=rng.uniform(0.2, 2.0) * dpr * hi, allowed=allowed))
        gang_dev += dpr * hi
        i += 1
    n_small = 600 - len(jobs)
    for k in range(max(0, n_small)):
        dpr = rng.choice([1, 1, 2, 4])
        hi = rng.choice([1, 1, 2])
        ts = rng.sample(sorted(present), rng.randint(1, len(present)))
        jobs.append(make_job(f"g{seed}-s{k}", rng.choice(tenants), tier_pick(rng, [0.1, 0.5, 0.4]),
                             1, rng.randint(1, hi), hi, dpr, {t: base[t] * rng.uniform(0.7, 1.3) for t in ts},
                             data_region=rng.choice(regs + [None]), ckpt=rng.uniform(0.5, 10)))
    run_some(L, rng, jobs, 0.35, down_frac_of_running=0.15, odd_count=0.06)
    quotas = make_quotas(L, rng, jobs, (0.4, 1.0), pct=0.5)
    pol = policy(rng, seed, premium_preemptible=rng.random() < 0.3,
                 migration_budget_gb=rng.choice([None, 2000]))
    return {"epoch_s": rng.choice([300, 1200]), "fleet": L.fleet(), "jobs": jobs, "quotas": quotas, "policy": pol}


def fam_sparse(rng, seed):
    L = Ledger(rng)
    regs = rng.sample(["ap-tokyo", "ap-seoul", "eu-paris", "eu-frankfurt", "us-ohio", "sa-saopaulo", "af-cape"],
                      rng.randint(5, 6))
    for r in regs:
        L.region(r, rng.uniform(0.3, 2.0))
    # a random spanning tree plus a couple of extra edges: most pairs unlinked
    order = regs[:]
    rng.shuffle(order)
    for i in range(1, len(order)):
        L.link(order[i], order[rng.randrange(i)], rng.uniform(0.05, 0.6))
    for _ in range(rng.randint(0, 2)):
        a, b = rng.sample(regs, 2)
        L.link(a, b, rng.uniform(0.05, 0.6))
    target = rng.randint(1500, 2000)
    cat = [("H100", 8, 1.0), ("A100", 8, 0.6), ("A100-3g.40gb", 2, 0.28), ("A100-1g.10gb", 7, 0.1),
           ("H100-2g.20gb", 3, 0.3), ("L4", 1, 0.15), ("L4", 4, 0.15)]
    groups = []
    for r in regs:
        for ci in range(rng.randint(1, 2)):
            c = L.cluster(f"{r.split('-')[1][:4]}{ci}", r)
            for a, d, s in rng.sample(cat, rng.randint(2, 4)):
                groups.append((c, a, d, rng.uniform(0.5, 2)))
    fill_to(L, rng, target, groups)
    L.mark_down(rng.uniform(0.0, 0.02))
    present = pools_by_acc(L)
    spd = {a: s for a, d, s in cat}
    maxdev = {a: max(L.nodes[nn][2] for c in present[a] for nn in L.pools()[(c, a)]) for a in present}
    tenants = [f"sov-{x}" for x in range(rng.randint(5, 8))]
    jobs = []
    n = rng.randint(580, 620)
    for i in range(n):
        a = rng.choice(sorted(present))          # exactly one type allowed
        dpr = rng.choice([d for d in (1, 2, 4, 8) if d <= maxdev[a]])
        hi = rng.choice([1, 1, 2, 3, 4, 8])
        lo = rng.choice([1, hi, max(1, hi // 2)])
        _allowed = divisors_in(hi, lo, hi) if hi >= 4 and rng.random() < 0.4 else None   # drawn, unused (as measured)
        home = rng.choice(regs)
        where = [r for r in regs if L.cregion and any(L.cregion[c] == r for c in present[a])]
        regions = None
        u = rng.random()
        if u < 0.3:      # data sovereignty: home region (plus maybe one more) only
            regions = sorted(set([home] + ([rng.choice(regs)] if rng.random() < 0.4 else [])))
        jobs.append(make_job(f"sp{seed}-{i}", rng.choice(tenants), tier_pick(rng, [0.45, 0.35, 0.2]),
                             rng.choice([1, 1, 1.2, 2]), lo, hi, dpr, {a: spd[a] * rng.uniform(0.8, 1.2)},
                             data_region=home, regions=regions,
                             ckpt=rng.choice([20, 50, 100, 300, 800]) * rng.uniform(0.5, 1.5)))
        del where
    run_some(L, rng, jobs, 0.4, odd_count=0.03)
    for j in jobs:
        if not j["current"] and rng.random() < 0.35:
            j["checkpoint_region"] = rng.choice(regs)
    quotas = make_quotas(L, rng, jobs, (0.3, 0.8), pct=0.6)
    pol = policy(rng, seed, remote_data_penalty=rng.choice([0.3, 0.5, 0.7]),
                 migration_budget_gb=rng.choice([500, 2000, None]))
    return {"epoch_s": rng.choice([300, 600, 3600]), "fleet": L.fleet(), "jobs": jobs, "quotas": quotas, "policy": pol}


FAMILIES = {"alibaba": fam_alibaba, "philly": fam_philly, "gangs": fam_gangs, "sparse": fam_sparse}


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--family", required=True, choices=sorted(FAMILIES))
    ap.add_argument("--seed", type=int, required=True)
    ap.add_argument("--out", required=True)
    a = ap.parse_args()
    rng = random.Random(f"{a.family}/{a.seed}")
    req = FAMILIES[a.family](rng, a.seed)
    with open(a.out, "w") as f:
        json.dump(req, f, indent=1)


if __name__ == "__main__":
    main()
