"""Hand-built requests whose optimum is worked out by hand from placement-v1.md (defaults:
tier weights 100/10/1, restart 30 s, storage 2 GB/s, epoch 300 s)."""

from __future__ import annotations

import pytest

from placement import plan
from tests.support.requests import check, cluster, fleet, job, parsed, request

ONE_NODE = fleet(cluster("a", "us", ("a-h-", 1, "H100", 8)))


def kinds(resp) -> dict[str, str]:
    return {a.job: a.kind for a in resp.actions}


def test_protected_premium_job_stays_although_a_richer_job_waits():
    data = request(ONE_NODE, [
        job("prem", 8, tier="premium", current={"cluster": "a", "accelerator": "H100", "nodes": {"a-h-0": 8}}),
        job("rich", 8, tier="standard", priority=20.0),
    ])
    resp = plan(parsed(data))
    check(data, resp)
    assert resp.status == "optimal"
    assert resp.objective == pytest.approx(800.0)
    assert [a.job for a in resp.assignments] == ["prem"]
    assert resp.actions == []
    assert resp.unplaced[0].job == "rich" and resp.unplaced[0].code == "outbid"


def test_preemptible_premium_job_gives_way_to_a_richer_one():
    data = request(ONE_NODE, [
        job("prem", 8, tier="premium", current={"cluster": "a", "accelerator": "H100", "nodes": {"a-h-0": 8}}),
        job("rich", 8, tier="standard", priority=20.0),
    ], policy={"premium_preemptible": True})
    resp = plan(parsed(data))
    check(data, resp)
    # rich: 200 * 8 = 1600, less a 30 s start (160); prem preempted: 800 * (30 + 1/2) / 300
    assert resp.objective == pytest.approx(1600 - 160 - 800 * 30.5 / 300)
    assert kinds(resp) == {"prem": "preempt", "rich": "start"}
    assert resp.status == "optimal"


def test_binding_quota_caps_an_elastic_job_and_the_rest_goes_to_another_tenant():
    data = request(ONE_NODE, [job("a", 1, 8, tenant="t"), job("b", 1, 8, tenant="u", tier="basic")],
                   quotas=[{"tenant": "t", "tier": "standard", "devices": 3}])
    resp = plan(parsed(data))
    check(data, resp)
    got = {a.job: sum(a.nodes.values()) for a in resp.assignments}
    assert got == {"a": 3, "b": 5}
    assert resp.objective == pytest.approx(30 * 0.9 + 5 * 0.9)
    assert resp.status == "optimal"


def test_a_quota_smaller_than_the_jobs_minimum_is_the_reason_it_waits():
    data = request(ONE_NODE, [job("a", 4, tenant="t")], quotas=[{"tenant": "t", "tier": "standard", "devices": 3}])
    resp = plan(parsed(data))
    check(data, resp)
    assert resp.unplaced[0].code == "quota"
    assert resp.unplaced[0].reason == "its minimum of 4 x 1 devices exceeds the standard quota of t (3 devices)"


def test_resize_is_chosen_when_cheaper_than_migration():
    f = fleet(cluster("a", "us", ("a-h-", 1, "H100", 8)), cluster("b", "eu", ("b-h-", 1, "H100", 2)),
              regions=("us", "eu"), links=[{"a": "us", "b": "eu", "gbps": 0.5}])
    data = request(f, [
        job("r", 1, 8, checkpoint_gb=20, current={"cluster": "a", "accelerator": "H100", "nodes": {"a-h-0": 4}}),
        job("x", 6, tier="premium", regions=["us"]),
    ])
    resp = plan(parsed(data))
    check(data, resp)
    # x: 600 - 60; r resized to 2: pause 30 + 10 + 10 = 50 s -> 20 * (1 - 50/300)
    assert resp.objective == pytest.approx(540 + 20 * (1 - 50 / 300))
    assert kinds(resp) == {"r": "resize", "x": "start"}
    assert resp.status == "optimal"


def test_failover_moves_a_job_off_a_down_node():
    f = fleet(cluster("a", "us", ("a-h-", 2, "H100", 8)), down=["a-h-0"])
    data = request(f, [job("f", 1, 4, checkpoint_gb=10,
                           current={"cluster": "a", "accelerator": "H100", "nodes": {"a-h-0": 4}})])
    resp = plan(parsed(data))
    check(data, resp)
    assert kinds(resp) == {"f": "move"}
    assert resp.assignments[0].nodes == {"a-h-1": 4}
    assert resp.objective == pytest.approx(40 * (1 - 40 / 300))


def test_premium_job_on_a_down_node_is_not_protected_and_may_be_preempted():
    f = fleet(cluster("a", "us", ("a-h-", 1, "H100", 8)), down=["a-h-0"])
    data = request(f, [job("p", 4, tier="premium", current={"cluster": "a", "accelerator": "H100",
                                                             "nodes": {"a-h-0": 4}})])
    resp = plan(parsed(data))
    check(data, resp)
    assert resp.status == "optimal"
    assert kinds(resp) == {"p": "preempt"}
    assert resp.objective == pytest.approx(-400 * 30.5 / 300)


def _budget_case(budget):
    f = fleet(cluster("a", "us", ("a-h-", 1, "H100", 4)), cluster("b", "eu", ("b-h-", 1, "H100", 8)),
              regions=("us", "eu"), links=[{"a": "us", "b": "eu", "gbps": 0.5}])
    return request(f, [job("m", 1, 8, checkpoint_gb=10,
                           current={"cluster": "a", "accelerator": "H100", "nodes": {"a-h-0": 4}})],
                   policy={"migration_budget_gb": budget})


def test_migration_budget_blocks_a_cross_region_move():
    data = _budget_case(5)
    resp = plan(parsed(data))
    check(data, resp)
    assert resp.actions == []
    assert resp.objective == pytest.approx(40.0)
    assert resp.status == "optimal"


def test_without_the_budget_the_job_migrates_to_the_bigger_pool():
    data = _budget_case(None)
    resp = plan(parsed(data))
    check(data, resp)
    # 8 replicas in eu: pause 30 + 5 + 20 + 5 = 60 s
    assert kinds(resp) == {"m": "migrate"}
    assert resp.objective == pytest.approx(80 * (1 - 60 / 300))


def test_no_link_means_no_cross_region_start_from_a_checkpoint():
    f = fleet(cluster("b", "eu", ("b-h-", 1, "H100", 8)), regions=("us", "eu"))
    data = request(f, [job("c", 1, 8, checkpoint_region="us")])
    resp = plan(parsed(data))
    check(data, resp)
    assert resp.assignments == []
    assert resp.unplaced[0].code == "no_link"


def test_protected_premium_jobs_over_their_quota_are_infeasible_with_named_conflicts():
    cur = lambda n: {"cluster": "a", "accelerator": "H100", "nodes": {n: 4}}
    f = fleet(cluster("a", "us", ("a-h-", 2, "H100", 8)))
    data = request(f, [job("p1", 4, tier="premium", tenant="t", current=cur("a-h-0")),
                       job("p2", 4, tier="premium", tenant="t", current=cur("a-h-1")),
                       job("s", 1)],
                   quotas=[{"tenant": "t", "tier": "premium", "devices": 4}])
    resp = plan(parsed(data))
    assert resp.status == "infeasible"
    assert resp.objective is None and resp.assignments == [] and resp.actions == []
    reasons = {u.job: u.reason for u in resp.unplaced}
    assert set(reasons) == {"p1", "p2", "s"}
    assert "premium quota is 4" in reasons["p1"] and "need at least 8" in reasons["p1"]


def test_protected_job_that_must_shrink_to_fit_its_quota_is_not_infeasible():
    f = fleet(cluster("a", "us", ("a-h-", 1, "H100", 8)))
    data = request(f, [job("p", 2, 8, tier="premium", tenant="t",
                           current={"cluster": "a", "accelerator": "H100", "nodes": {"a-h-0": 8}})],
                   quotas=[{"tenant": "t", "tier": "premium", "devices": 4}])
    resp = plan(parsed(data))
    check(data, resp)
    assert kinds(resp) == {"p": "resize"}
    assert sum(resp.assignments[0].nodes.values()) == 4


def test_data_locality_prefers_the_data_region():
    f = fleet(cluster("a", "us", ("a-h-", 1, "H100", 8)), cluster("b", "eu", ("b-h-", 1, "H100", 8)),
              regions=("us", "eu"))
    data = request(f, [job("d", 8, data_region="eu")])
    resp = plan(parsed(data))
    check(data, resp)
    assert resp.assignments[0].cluster == "b"
    assert resp.objective == pytest.approx(80 * 0.9)


def test_a_job_is_spread_over_the_fewest_nodes():
    f = fleet(cluster("a", "us", ("a-h-", 3, "H100", 8)))
    data = request(f, [job("g", 4, 4, devices_per_replica=4)])
    resp = plan(parsed(data))
    check(data, resp)
    assert sorted(resp.assignments[0].nodes.values()) == [2, 2]
    assert resp.breakdown.spread == 0.0


def test_deterministic_policy_repeats_the_same_plan():
    import json

    from datasets.requests import generate

    data = generate(devices=300, jobs=120, regions=2, seed=3, time_limit_s=1.0)
    data["policy"]["deterministic"] = True
    a = plan(parsed(data))
    b = plan(parsed(data))
    check(data, a)
    strip = lambda r: json.dumps(r.model_dump(mode="json", exclude={"solve_s", "stats"}), sort_keys=True)
    assert strip(a) == strip(b)


def test_protected_job_outside_its_range_is_resized_and_others_make_room():
    """Found by the property test: the greedy keeps j1 and j5 where they are and then j3 (protected,
    running below its new minimum) cannot grow; the plan must shrink j1 instead."""
    f = fleet(cluster("c1", "us", ("c1-v100-", 2, "V100", 4)))
    cur = lambda n, k: {"cluster": "c1", "accelerator": "V100", "nodes": {n: k}}
    data = request(f, [
        job("j1", 1, 2, speed={"V100": 0.5}, tier="premium", checkpoint_gb=0.0, current=cur("c1-v100-0", 2)),
        job("j3", 3, 3, speed={"V100": 0.5}, tier="premium", devices_per_replica=2, checkpoint_gb=0.0,
            current=cur("c1-v100-0", 1)),
        job("j5", 1, 1, speed={"V100": 0.5}, tier="premium", checkpoint_gb=0.0, current=cur("c1-v100-1", 1)),
    ], epoch_s=60.0)
    resp = plan(parsed(data))
    check(data, resp)
    got = {a.job: sum(a.nodes.values()) for a in resp.assignments}
    assert got == {"j1": 1, "j3": 3, "j5": 1}
    assert kinds(resp) == {"j1": "resize", "j3": "resize"}
