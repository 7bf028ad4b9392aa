"""On requests small enough to enumerate every valid plan, the engine's bound is never below the
true optimum, its plan never above it, and `optimal` means the true optimum."""

from __future__ import annotations

import itertools

from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from placement import plan
from placement.contract import transfer_s
from placement.instance import compile_instance
from placement.score import job_terms
from tests.support.requests import check, parsed


@st.composite
def tiny_requests(draw) -> dict:
    regions = draw(st.lists(st.sampled_from(["us", "eu"]), min_size=1, max_size=2, unique=True))
    clusters, nodes = [], []
    for c in range(draw(st.integers(1, 2))):
        acc = draw(st.sampled_from(["H100", "V100"]))
        count, dev = draw(st.integers(1, 2)), draw(st.sampled_from([1, 2, 4]))
        prefix = f"c{c}-"
        clusters.append({"name": f"c{c}", "region": draw(st.sampled_from(regions)),
                         "node_groups": [{"prefix": prefix, "count": count, "accelerator": acc, "devices": dev}]})
        nodes += [(f"{prefix}{i}", f"c{c}", acc, dev) for i in range(count)]
    free = {n[0]: n[3] for n in nodes}
    jobs = []
    for j in range(draw(st.integers(1, 3))):
        lo = draw(st.integers(1, 2))
        job = {"id": f"j{j}", "tier": draw(st.sampled_from(["premium", "standard", "basic"])),
               "replicas": {"min": lo, "max": lo + draw(st.integers(0, 1))},
               "devices_per_replica": draw(st.sampled_from([1, 2])),
               "speed": {a: draw(st.sampled_from([0.5, 1.0])) for a in
                         draw(st.lists(st.sampled_from(["H100", "V100"]), min_size=1, unique=True))},
               "checkpoint_gb": draw(st.sampled_from([0.0, 20.0])), "data_region": draw(st.sampled_from(regions + [None]))}
        if draw(st.booleans()):   # contract v1.1: only some counts may be granted
            rep = job["replicas"]
            rep["allowed"] = draw(st.lists(st.integers(rep["min"], rep["max"]), min_size=1, unique=True))
        if draw(st.booleans()):
            for name, c, a, _ in nodes:
                if a in job["speed"] and free[name] >= job["devices_per_replica"]:
                    free[name] -= job["devices_per_replica"]
                    job["current"] = {"cluster": c, "accelerator": a, "nodes": {name: 1}}
                    break
        jobs.append(job)
    quotas = [{"tenant": "default", "tier": "standard", "devices": draw(st.integers(0, 4))}] if draw(st.booleans()) else []
    links = [{"a": regions[0], "b": regions[1], "gbps": 1.0}] if len(regions) == 2 and draw(st.booleans()) else []
    return {"fleet": {"regions": [{"name": r} for r in regions], "links": links, "clusters": clusters,
                      "down_nodes": [nodes[0][0]] if draw(st.integers(0, 3)) == 0 else []},
            "jobs": jobs, "quotas": quotas,
            "policy": {"time_limit_s": 1.0, "deterministic": True, "premium_preemptible": draw(st.booleans()),
                       "migration_budget_gb": draw(st.sampled_from([None, 10.0]))}}


def brute_force_optimum(data: dict) -> float | None:
    """The best canonical objective over every valid plan, by enumeration (None: no valid plan)."""
    inst = compile_instance(parsed(data))
    per_job = []
    for info in inst.jobs:
        choices = [None]
        for p in inst.pools:
            if p.accelerator not in info.job.speed:
                continue
            if info.job.regions is not None and p.region not in info.job.regions:
                continue
            if info.cur_region is not None and info.cur_region != p.region and \
                    transfer_s(inst.fleet, info.job.checkpoint_gb, info.cur_region, p.region) is None:
                continue
            for counts in itertools.product(range(info.hi + 1), repeat=len(p.nodes)):
                if info.job.replicas.grants(sum(counts)):
                    choices.append((p, {inst.node_names[n]: k for n, k in zip(p.nodes, counts) if k}))
        per_job.append(choices)
    best = None
    for combo in itertools.product(*per_job):
        used: dict[str, int] = {}
        quota: dict = {}
        moved = 0.0
        ok = True
        total = 0.0
        for info, ch in zip(inst.jobs, combo):
            if ch is None:
                if info.protected:
                    ok = False
                    break
                total -= job_terms(inst, info.index, None)[1]
                continue
            pool, nodes = ch
            for n, k in nodes.items():
                used[n] = used.get(n, 0) + k * info.dpr
            quota[info.key] = quota.get(info.key, 0) + sum(nodes.values()) * info.dpr
            if info.cur_region is not None and info.cur_region != pool.region:
                moved += info.job.checkpoint_gb
            v, d, p = job_terms(inst, info.index, (pool.cluster, pool.accelerator, nodes))
            total += v - d - p
        if not ok or any(u > inst.node_devices[inst.node_index[n]] for n, u in used.items()):
            continue
        if any(q > inst.quotas.get(k, q) for k, q in quota.items()):
            continue
        if inst.budget_gb is not None and moved > inst.budget_gb + 1e-9:
            continue
        best = total if best is None else max(best, total)
    return best


@settings(max_examples=25, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(tiny_requests())
def test_bound_and_objective_bracket_the_true_optimum(data):
    resp = plan(parsed(data))
    opt = brute_force_optimum(data)
    if resp.status == "infeasible":
        assert opt is None
        return
    check(data, resp)
    assert opt is not None
    tol = 1e-6 * max(1.0, abs(opt))
    assert resp.objective <= opt + tol
    assert resp.bound >= opt - tol
    if resp.status == "optimal":
        assert abs(resp.objective - opt) <= tol
