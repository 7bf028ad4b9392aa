"""Large nodes (issue 9, item 11): a running job spread over more nodes than it needs pays a spread term
that its keep option knows exactly, so the bound does not sit above the optimum by it and a plan that is
optimal is proven so at once, not reported `feasible` after the whole time limit."""

from __future__ import annotations

import copy
import json
import pathlib

import pytest

from models import limits
from placement import plan
from tests.support.requests import check, cluster, fleet, job, parsed, request

EXAMPLE = json.loads((pathlib.Path(__file__).resolve().parents[2] / "examples" / "two-regions.json").read_text())


def test_a_spread_out_running_job_on_1000_device_nodes_is_proven_optimal():
    data = request(fleet(cluster("a", "us", ("a-h-", 2, "H100", 1000))), [
        job("spread", 12, 12, tier="premium", current={"cluster": "a", "accelerator": "H100",
                                                      "nodes": {"a-h-0": 8, "a-h-1": 4}}),
    ], policy={"time_limit_s": 5, "deterministic": True})
    resp = plan(parsed(data))
    check(data, resp)
    # value 100 * 12 = 1200; kept on two nodes where one holds all: spread 0.01 * 100 * (2 - 1) = 1
    assert resp.status == "optimal"
    assert resp.objective == pytest.approx(1199.0)
    assert resp.bound == pytest.approx(1199.0)
    assert resp.solve_s < 2.5


@pytest.mark.parametrize("devices", [16, 1000, limits.MAX_NODE_DEVICES])
def test_the_example_with_large_h100_nodes_is_optimal_at_its_true_optimum(devices: int):
    data = copy.deepcopy(EXAMPLE)
    data["fleet"]["clusters"][0]["node_groups"][0]["devices"] = devices
    data["policy"].update(time_limit_s=5, deterministic=True)
    resp = plan(parsed(data))
    check(data, resp)
    assert resp.status == "optimal"
    assert resp.objective == pytest.approx(1397.4595)


def test_values_at_every_limit_plan_within_the_bound():
    """Weights, speeds, replicas, checkpoints, budget and node sizes all at their limits (models/limits.py):
    the LP's objective (about 1e24 here) is solved rescaled, and the plan is valid, finite and proven."""
    data = copy.deepcopy(EXAMPLE)
    data["policy"].update(time_limit_s=5, deterministic=True, migration_budget_gb=limits.MAX_MIGRATION_BUDGET_GB,
                          tier_weights={t: limits.MAX_WEIGHT for t in ("premium", "standard", "basic")})
    for j in data["jobs"]:
        j.update(priority=limits.MAX_WEIGHT, checkpoint_gb=limits.MAX_CHECKPOINT_GB,
                 speed={k: limits.MAX_SPEED for k in j["speed"]})
        j["replicas"]["max"] = limits.MAX_REPLICAS
    for c in data["fleet"]["clusters"]:
        for g in c["node_groups"]:
            g["devices"] = limits.MAX_NODE_DEVICES
    resp = plan(parsed(data))
    check(data, resp)
    assert resp.status == "optimal"
    assert 1e20 < resp.objective <= resp.bound <= resp.objective * (1 + 1e-6)


def test_the_lp_bound_is_proven_when_its_costs_pass_what_highs_takes():
    """Costs near 1e20 are infinite to HiGHS: the LP is solved rescaled and scaled back (placement/bound.py)."""
    from placement.bound import lp_bound
    from placement.candidates import build_options
    from placement.instance import compile_instance

    data = copy.deepcopy(EXAMPLE)
    data["policy"]["tier_weights"] = {t: limits.MAX_WEIGHT for t in ("premium", "standard", "basic")}
    for j in data["jobs"]:
        j.update(priority=limits.MAX_WEIGHT, speed={k: limits.MAX_SPEED for k in j["speed"]})
    req = parsed(data)
    inst = compile_instance(req)
    bound = lp_bound(inst, build_options(inst), time_limit_s=5.0)
    assert bound is not None and not bound.infeasible
    resp = plan(req)
    check(data, resp)
    assert resp.objective > 1e19
    assert resp.objective <= bound.value <= resp.objective * 1.05      # the relaxation, a few % above
