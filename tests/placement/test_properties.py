"""Generated requests covering every feature of the contract (v1.1's `replicas.allowed` included) always get valid plans that the
project's verifier and the independent checker agree with, from the engine and the greedy alone."""

from __future__ import annotations

from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from placement import greedy_plan, plan
from tests.support.requests import check, parsed

ACCELS = ["H100", "A100", "V100"]
TIERS = ["premium", "standard", "basic"]


@st.composite
def requests(draw) -> dict:
    regions = draw(st.lists(st.sampled_from(["us", "eu", "ap"]), min_size=1, max_size=3, unique=True))
    pairs = [(a, b) for i, a in enumerate(regions) for b in regions[i + 1:]]
    links = [{"a": a, "b": b, "gbps": draw(st.sampled_from([0.25, 1.0]))} for a, b in pairs if draw(st.booleans())]
    clusters, nodes = [], []
    for c in range(draw(st.integers(1, 3))):
        name = f"c{c}"
        groups = []
        for g, acc in enumerate(draw(st.lists(st.sampled_from(ACCELS), min_size=1, max_size=2, unique=True))):
            count, dev = draw(st.integers(1, 3)), draw(st.sampled_from([1, 2, 4, 8]))
            prefix = f"{name}-{acc.lower()}-"
            groups.append({"prefix": prefix, "count": count, "accelerator": acc, "devices": dev})
            nodes += [(f"{prefix}{i}", name, acc, dev) for i in range(count)]
        clusters.append({"name": name, "region": draw(st.sampled_from(regions)), "node_groups": groups})
    down = [n[0] for n in nodes if draw(st.integers(0, 9)) == 0]
    free = {n[0]: n[3] for n in nodes}
    jobs = []
    for j in range(draw(st.integers(1, 8))):
        dpr = draw(st.sampled_from([1, 1, 2, 3, 4]))
        lo = draw(st.integers(1, 3))
        hi = lo + draw(st.integers(0, 4))
        speed = {a: draw(st.sampled_from([0.5, 1.0])) for a in
                 draw(st.lists(st.sampled_from(ACCELS), min_size=1, max_size=3, unique=True))}
        job = {"id": f"j{j}", "tenant": draw(st.sampled_from(["t0", "t1"])), "tier": draw(st.sampled_from(TIERS)),
               "priority": draw(st.sampled_from([0.5, 1.0, 3.0])), "replicas": {"min": lo, "max": hi},
               "devices_per_replica": dpr, "speed": speed, "checkpoint_gb": draw(st.sampled_from([0.0, 5.0, 50.0])),
               "data_region": draw(st.sampled_from(regions + [None]))}
        if draw(st.integers(0, 2)) == 0:   # contract v1.1: only some counts may be granted
            job["replicas"]["allowed"] = draw(st.lists(st.integers(lo, hi), min_size=1, max_size=3, unique=True))
        if draw(st.booleans()):
            job["regions"] = draw(st.lists(st.sampled_from(regions), min_size=1, unique=True))
        if draw(st.booleans()):   # running: on nodes of one pool with room, replica count even outside [min, max]
            pools = [(c, a) for (_, c, a, _) in nodes if a in speed]
            if pools:
                c, a = draw(st.sampled_from(sorted(set(pools))))
                want = draw(st.integers(1, hi + 1))
                got = {}
                for name, nc, na, _ in nodes:
                    if (nc, na) == (c, a) and want > 0 and free[name] >= dpr:
                        k = min(want, free[name] // dpr)
                        got[name] = k
                        free[name] -= k * dpr
                        want -= k
                if got:
                    job["current"] = {"cluster": c, "accelerator": a, "nodes": got}
        elif draw(st.booleans()):
            job["checkpoint_region"] = draw(st.sampled_from(regions))
        jobs.append(job)
    quotas = [{"tenant": t, "tier": tier, "devices": draw(st.integers(0, 16))}
              for t in ["t0", "t1"] for tier in TIERS if draw(st.integers(0, 3)) == 0]
    policy = {"time_limit_s": 0.5, "deterministic": True,
              "premium_preemptible": draw(st.booleans()),
              "migration_budget_gb": draw(st.sampled_from([None, 0.0, 10.0, 100.0])),
              "spread_penalty": draw(st.sampled_from([0.0, 0.01, 0.5])),
              "remote_data_penalty": draw(st.sampled_from([0.0, 0.1, 0.5]))}
    return {"fleet": {"regions": [{"name": r, "storage_gbps": draw(st.sampled_from([1.0, 2.0]))} for r in regions],
                      "links": links, "clusters": clusters, "down_nodes": down},
            "jobs": jobs, "quotas": quotas, "policy": policy,
            "epoch_s": draw(st.sampled_from([60.0, 300.0]))}


def keep_all_protected_is_valid(data: dict) -> bool:
    """The contract's promise: if every protected premium job can stay where it is, never infeasible."""
    from placement.instance import compile_instance

    inst = compile_instance(parsed(data))
    use: dict = {}
    for i in inst.jobs:
        if not i.protected:
            continue
        if not i.job.replicas.grants(i.r0):
            return False
        if i.job.regions is not None and i.cur_region not in i.job.regions:
            return False
        use[i.key] = use.get(i.key, 0) + i.r0 * i.dpr
    return all(u <= inst.quotas.get(k, u) for k, u in use.items())


SETTINGS = settings(max_examples=40, deadline=None, suppress_health_check=[HealthCheck.too_slow])


@SETTINGS
@given(requests())
def test_engine_plans_are_valid_and_agree_with_the_checker(data):
    resp = plan(parsed(data))
    if resp.status == "infeasible":
        assert not keep_all_protected_is_valid(data)
        return
    check(data, resp)


@SETTINGS
@given(requests())
def test_greedy_plans_are_valid_and_agree_with_the_checker(data):
    resp = greedy_plan(parsed(data))
    if resp.status != "infeasible":
        check(data, resp)
