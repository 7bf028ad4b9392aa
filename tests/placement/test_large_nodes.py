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
