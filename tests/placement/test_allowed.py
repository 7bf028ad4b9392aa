"""Contract v1.1 `replicas.allowed`: a plan grants only the listed counts. Optima worked out by hand
from placement-v1.md (defaults: tier weights 100/10/1, restart 30 s, storage 2 GB/s, epoch 300 s,
checkpoint 1 GB)."""

from __future__ import annotations

import pytest

from placement import greedy_plan, plan
from tests.support.requests import check, cluster, fleet, job, parsed, request

ONE_NODE = fleet(cluster("a", "us", ("a-h-", 1, "H100", 8)))
PREMIUM_ON_TWO = job("prem", 2, tier="premium", current={"cluster": "a", "accelerator": "H100", "nodes": {"a-h-0": 2}})


def counts(resp) -> dict[str, int]:
    return {a.job: sum(a.nodes.values()) for a in resp.assignments}


@pytest.mark.parametrize("planner", [plan, greedy_plan])
def test_an_elastic_job_takes_the_largest_allowed_count_that_fits(planner):
    # 6 devices free beside a protected premium job: 4 (allowed), not 6
    data = request(ONE_NODE, [PREMIUM_ON_TWO, job("b", 1, 8, replicas={"min": 1, "max": 8, "allowed": [2, 4, 8]})])
    resp = planner(parsed(data))
    check(data, resp)
    assert counts(resp) == {"prem": 2, "b": 4}
    # prem: 100 * 2 = 200 kept; b: 10 * 4 = 40 less a 30 s start (4)
    assert resp.objective == pytest.approx(236.0)


def test_without_allowed_the_same_job_takes_all_six_devices():
    data = request(ONE_NODE, [PREMIUM_ON_TWO, job("b", 1, 8)])
    resp = plan(parsed(data))
    check(data, resp)
    assert counts(resp) == {"prem": 2, "b": 6}
    assert resp.objective == pytest.approx(200 + 60 - 6)
    assert resp.status == "optimal"


def test_the_engine_proves_the_allowed_optimum():
    data = request(ONE_NODE, [PREMIUM_ON_TWO, job("b", 1, 8, replicas={"min": 1, "max": 8, "allowed": [2, 4, 8]})])
    resp = plan(parsed(data))
    assert resp.status == "optimal" and resp.bound == pytest.approx(236.0, rel=1e-6)


@pytest.mark.parametrize("planner", [plan, greedy_plan])
def test_a_running_count_outside_allowed_is_changed(planner):
    data = request(ONE_NODE, [job("r", 1, 4, replicas={"min": 1, "max": 4, "allowed": [2, 4]},
                                  current={"cluster": "a", "accelerator": "H100", "nodes": {"a-h-0": 3}})])
    resp = planner(parsed(data))
    check(data, resp)
    assert counts(resp) == {"r": 4}
    assert [a.kind for a in resp.actions] == ["resize"]
    # 10 * 4 = 40, less a resize's pause: 30 + 0.5 (save) + 0.5 (restore) = 31 s
    assert resp.objective == pytest.approx(40 - 40 * 31 / 300)


@pytest.mark.parametrize("planner", [plan, greedy_plan])
def test_a_quota_between_allowed_counts_grants_the_smaller(planner):
    data = request(ONE_NODE, [job("q", 1, 8, tenant="t", replicas={"min": 1, "max": 8, "allowed": [4, 8]})],
                   quotas=[{"tenant": "t", "tier": "standard", "devices": 6}])
    resp = planner(parsed(data))
    check(data, resp)
    assert counts(resp) == {"q": 4}
    assert resp.objective == pytest.approx(40 - 4)


def test_a_gang_of_two_device_replicas_split_over_nodes_stays_on_an_allowed_count():
    # two nodes of 4, one device taken on each: with both kept, 2 replicas of 2 fit (1 per node), a count
    # allowed [1, 3] refuses, so 1 (218.0). Better, and the optimum the exact node model proves: p0 moves
    # next to p1 (a 31 s pause: restart and checkpoint) and g takes 3 replicas on the nodes freed
    two = fleet(cluster("a", "us", ("a-h-", 2, "H100", 4)))
    data = request(two, [
        job("p0", 1, tier="premium", current={"cluster": "a", "accelerator": "H100", "nodes": {"a-h-0": 1}}),
        job("p1", 1, tier="premium", current={"cluster": "a", "accelerator": "H100", "nodes": {"a-h-1": 1}}),
        job("g", 1, 3, devices_per_replica=2, replicas={"min": 1, "max": 3, "allowed": [1, 3]})])
    resp = plan(parsed(data))
    check(data, resp)
    assert counts(resp) == {"p0": 1, "p1": 1, "g": 3}
    assert resp.status == "optimal"
    # p1: 100; p0: 100 less a 31 s move; g: 10 * 6 = 60 less a 30 s start
    assert resp.objective == pytest.approx(100 + 100 * (1 - 31 / 300) + 60 * (1 - 30 / 300))


def test_allowed_counts_that_never_fit_are_the_reason():
    data = request(ONE_NODE, [job("big", 1, 16, replicas={"min": 1, "max": 16, "allowed": [16]})])
    resp = plan(parsed(data))
    check(data, resp)
    assert resp.assignments == []
    (u,) = resp.unplaced
    assert u.code == "too_small" and "allowed replica counts (16)" in u.reason


def _allowed_instance():
    """The first test's request compiled: b may take 2, 4 or 8 of the 6 devices the premium job leaves."""
    from placement.candidates import build_options
    from placement.instance import compile_instance

    data = request(ONE_NODE, [PREMIUM_ON_TWO, job("b", 1, 8, replicas={"min": 1, "max": 8, "allowed": [2, 4, 8]})])
    inst = compile_instance(parsed(data))
    return inst, build_options(inst)


def test_the_whole_node_cut_model_grants_only_listed_counts():
    # its optimum is the plan's (236: b on 4), not b on all six devices (254): the bound the plan reports
    from placement.cut_beside import cut_model, solve_cut_model

    inst, opts = _allowed_instance()
    res = solve_cut_model(inst, opts, cut_model(inst, opts), 10.0)
    assert res.status == "Optimal"
    assert {inst.jobs[j].job.id: r for j, (_, r) in res.choice.items()} == {"prem": 2, "b": 4}
    assert res.bound == pytest.approx(236.0, rel=1e-5)


def test_an_integer_step_grants_only_listed_counts():
    from placement.mip_step import solve_neighbourhood
    from placement.plan import keep_all

    inst, opts = _allowed_instance()
    b = next(i.index for i in inst.jobs if i.job.id == "b")
    got = solve_neighbourhood(inst, opts, keep_all(inst, opts), {b}, None, 10.0)
    assert got is not None and got[b][1] == 4
