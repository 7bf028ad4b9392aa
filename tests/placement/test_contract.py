"""The contract's arithmetic (placement/contract.py) against numbers worked out by hand from placement-v1.md.

Fleet of the pause cases: regions us (storage 2 GB/s), eu (4 GB/s) and ap (2 GB/s), one link us-eu of
0.5 GB/s, restart overhead 30 s, an 8 GB checkpoint. So: save or load in us 4 s, load in eu 2 s,
us <-> eu transfer 16 s, and no way to ap from anywhere else.
"""

from __future__ import annotations

import numpy as np
import pytest

from models import Placement
from models.fleet_index import build_fleet_index
from placement import contract
from tests.support.requests import cluster, fleet, parsed, request

FX = build_fleet_index(parsed(request(
    {**fleet(cluster("u", "us", ("u-", 1, "H100", 8)), cluster("e", "eu", ("e-", 1, "H100", 8)),
             regions=("us", "eu", "ap"), links=[{"a": "us", "b": "eu", "gbps": 0.5}]),
     "regions": [{"name": "us", "storage_gbps": 2.0}, {"name": "eu", "storage_gbps": 4.0}, {"name": "ap"}]},
    [])).fleet)

HERE = Placement(cluster="u", accelerator="H100", nodes={"u-0": 2})


@pytest.mark.parametrize(("current", "new", "kind"), [
    (None, None, None),
    (HERE, None, "preempt"),
    (None, ("u", "H100", {"u-0": 2}), "start"),
    (HERE, ("u", "H100", {"u-0": 2}), None),
    (HERE, ("u", "H100", {"u-0": 3}), "resize"),
    (HERE, ("u", "H100", {"u-1": 2}), "move"),
    (HERE, ("e", "H100", {"e-0": 2}), "migrate"),
    (HERE, ("u", "A100", {"u-0": 2}), "migrate"),
])
def test_action_kind_follows_the_contracts_table(current, new, kind):
    assert contract.action_kind(current, *(new or ())) == kind


def test_locality_is_one_at_home_or_without_a_data_region_and_one_less_the_penalty_elsewhere():
    assert contract.locality(None, "us", 0.25) == 1.0
    assert contract.locality("us", "us", 0.25) == 1.0
    assert contract.locality("eu", "us", 0.25) == 0.75
    got = contract.locality_array(np.array([-1, 0, 1]), np.array([0, 0, 0]), 0.25)
    assert got.tolist() == [1.0, 1.0, 0.75]


def test_rate_and_the_value_of_one_replica():
    assert contract.rate(3, 2, 1.5, 0.75) == 6.75                   # 3 * 2 * 1.5 * 0.75
    assert contract.replica_value(10.0, 2, 1.5, 0.75) == 22.5       # weight 10 * one replica's rate 2.25
    got = contract.replica_value(np.array([10.0, 1.0]), np.array([2, 4]), np.array([1.5, 1.0]), np.array([0.75, 1.0]))
    assert got.tolist() == [22.5, 4.0]


def test_transfer_is_free_within_a_region_priced_by_the_link_and_impossible_without_one():
    assert contract.transfer_s(FX, 8.0, "us", "us") == 0.0
    assert contract.transfer_s(FX, 8.0, "us", "eu") == 16.0
    assert contract.transfer_s(FX, 8.0, "eu", "us") == 16.0
    assert contract.transfer_s(FX, 8.0, "us", "ap") is None


@pytest.mark.parametrize(("kind", "src", "dst", "pause"), [
    ("preempt", "us", None, 34.0),     # 30 + save 4
    ("start", None, "eu", 30.0),       # no checkpoint: the overhead alone
    ("start", "us", "us", 34.0),       # 30 + load 4
    ("start", "us", "eu", 48.0),       # 30 + transfer 16 + load 2
    ("resize", "us", "us", 38.0),      # 30 + save 4 + load 4
    ("move", "us", "us", 38.0),
    ("migrate", "us", "eu", 52.0),     # 30 + save 4 + transfer 16 + load 2
    ("migrate", "eu", "us", 52.0),     # 30 + save 2 (eu: 8 / 4) + transfer 16 + load 4
    ("migrate", "us", "ap", None),     # no link
    ("start", "us", "ap", None),
])
def test_pause_per_action_kind(kind, src, dst, pause):
    got = contract.pause_s(FX, 30.0, kind, 8.0, src, dst)
    assert got == pause


def test_pause_array_agrees_with_the_scalar_pause():
    # a migrate us->eu, a start without checkpoint, a start from us in us, a resize in us
    running = np.array([True, False, False, True])
    has_src = np.array([True, False, True, True])
    same = np.array([False, False, True, True])
    ck = np.full(4, 8.0)
    src_storage = np.array([2.0, 2.0, 2.0, 2.0])
    dst_storage = np.array([4.0, 4.0, 2.0, 2.0])
    link = np.array([0.5, 0.0, 0.0, 0.0])
    got = contract.pause_array(running, has_src, same, 30.0, ck, src_storage, dst_storage, link)
    assert got.tolist() == [52.0, 30.0, 34.0, 38.0]


def test_a_pause_charges_at_most_one_epoch():
    assert contract.charged_s(12.0, 300.0) == 12.0
    assert contract.charged_s(400.0, 300.0) == 300.0
    assert contract.disruption(100.0, 150.0, 300.0) == 50.0
    assert contract.disruption(100.0, 900.0, 300.0) == 100.0
    assert contract.kept_share_array(np.array([150.0, 900.0, 0.0]), 300.0).tolist() == [0.5, 0.0, 1.0]


@pytest.mark.parametrize(("replicas", "dmax", "dpr", "n_min"), [
    (5, 8, 2, 2),     # 4 replicas per node: ceil(5 / 4)
    (4, 8, 2, 1),
    (9, 8, 3, 5),     # 2 per node (8 // 3): ceil(9 / 2)
    (1, 4, 8, 0),     # no replica fits a node
])
def test_fewest_nodes(replicas, dmax, dpr, n_min):
    assert contract.fewest_nodes(replicas, dmax, dpr) == n_min


def test_spread_charges_each_node_beyond_the_fewest():
    assert contract.spread(0.25, 10.0, 2, 1.5, 3, 2) == 7.5       # 0.25 * 10 * 2 * 1.5 * (3 - 2)
    assert contract.spread(0.25, 10.0, 2, 1.5, 2, 2) == 0.0
    assert contract.spread(0.25, 10.0, 2, 1.5, 3, 0) == 0.0       # no n_min: no spread term
