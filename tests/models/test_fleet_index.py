"""The fleet index: node names as the contract writes them, pools of up nodes, totals, one index per fleet."""

from __future__ import annotations

from models.fleet_index import build_fleet_index, fleet_devices, fleet_index, fleet_nodes, node_name
from tests.support.requests import cluster, fleet, parsed, request

FLEET = fleet(cluster("a", "us", ("a-h-", 2, "H100", 8), ("a-s-", 1, "H100", 4), ("a-v-", 1, "V100", 2)),
              cluster("b", "eu", ("b-h-", 3, "H100", 8)),
              regions=("us", "eu"), down=("a-h-1", "b-h-0", "b-h-1", "b-h-2"))


def index():
    return build_fleet_index(parsed(request(FLEET, [])).fleet)


def test_nodes_are_named_prefix_then_index_in_fleet_order():
    fx = index()
    assert node_name("a-h-", 10) == "a-h-10"
    assert fx.names == ["a-h-0", "a-h-1", "a-s-0", "a-v-0", "b-h-0", "b-h-1", "b-h-2"]
    assert fx.node("a-s-0") == ("a", "H100", 4)
    assert fx.node("a-s-1") is None
    assert fx.up == [True, False, True, True, False, False, False]


def test_pools_hold_up_nodes_only_and_their_largest_node():
    fx = index()
    assert fx.pool_nodes == {("a", "H100"): [0, 2], ("a", "V100"): [3]}     # b's nodes are all down
    assert fx.pool_dmax == {("a", "H100"): 8, ("a", "V100"): 2}
    assert fx.region_of == {"a": "us", "b": "eu"}


def test_totals_count_down_nodes_too():
    f = parsed(request(FLEET, [])).fleet
    assert index().total_devices == 16 + 4 + 2 + 24 == fleet_devices(f)
    assert fleet_nodes(f) == 7


def test_one_index_per_fleet_content():
    f = parsed(request(FLEET, [])).fleet
    first = fleet_index(f)
    assert fleet_index(parsed(request(FLEET, [])).fleet) is first        # same content, same index
    f.down_nodes = []
    again = fleet_index(f)
    assert again is not first and again.up == [True] * 7
