"""A gang's insertion (placement/gang_insert.py) where what it displaces decides the move: which nodes it
clears, which of several equal pools it takes, where the running jobs it pushes out go, and who gets the
nodes it leaves."""

from __future__ import annotations

import numpy as np

from placement.candidates import build_options
from placement.gang_insert import option_moves
from placement.greedy import option_gains
from placement.instance import compile_instance
from placement.packing import Packing
from placement.score import score
from tests.support.requests import cluster, fleet, job, parsed, request


def compiled(data: dict):
    inst = compile_instance(parsed(data))
    return inst, build_options(inst)


def option_in(inst, opts, j: int, cluster_name: str, keep: bool = False) -> int:
    return int(next(o for o in opts.by_job[j].tolist()
                    if inst.pools[int(opts.pool[o])].cluster == cluster_name and bool(opts.keep[o]) == keep))


def running_on(cluster_name: str, node: str, replicas: int = 1) -> dict:
    return {"cluster": cluster_name, "accelerator": "H100", "nodes": {node: replicas}}


def moves(inst, opts, pk):
    gain, _ = option_gains(inst, opts, None)
    best, kept, gained = option_moves(inst, opts, pk, gain, deadline=float("inf"))
    assert np.isclose(score(inst, best.placed_map()).objective, score(inst, pk.placed_map()).objective + gained)
    return best, kept, gained


def test_a_gang_clears_the_two_nodes_of_one_job_rather_than_a_node_a_running_job_holds():
    # "wide" (two 8-device replicas, one per node) is worth more than "stay" in all but less per node it holds;
    # clearing n-0 frees n-1 with it: "big" takes both, "stay" keeps running where it runs
    three = fleet(cluster("c", "us", ("n-", 3, "H100", 8)))
    data = request(three, [job("big", 2, 2, devices_per_replica=8, priority=3.0),
                           job("wide", 2, 2, devices_per_replica=8),
                           job("stay", 1, 1, devices_per_replica=8, current=running_on("c", "n-2"))])
    inst, opts = compiled(data)
    pk = Packing(inst, opts)
    pk._commit(1, option_in(inst, opts, 1, "c"), {inst.node_index["n-0"]: 1, inst.node_index["n-1"]: 1})
    pk._commit(2, option_in(inst, opts, 2, "c", keep=True), {inst.node_index["n-2"]: 1})
    best, kept, gained = moves(inst, opts, pk)
    assert kept == 1 and best.placement_of(0) == ("c", "H100", {"n-0": 1, "n-1": 1})
    assert best.placement_of(2) == ("c", "H100", {"n-2": 1}) and best.placement_of(1) is None
    assert gained > 0


def test_a_gang_takes_the_equal_pool_where_it_displaces_least():
    # "big" is worth as much in c1 as in c2 (one region, one accelerator): c1's nodes hold two running jobs,
    # c2's one new job worth less
    two_pools = fleet(cluster("c1", "us", ("a-", 2, "H100", 8)), cluster("c2", "us", ("b-", 2, "H100", 8)))
    data = request(two_pools, [job("big", 2, 2, devices_per_replica=8, priority=4.0),
                               job("run0", 1, 1, devices_per_replica=8, current=running_on("c1", "a-0")),
                               job("run1", 1, 1, devices_per_replica=8, current=running_on("c1", "a-1")),
                               job("tin", 2, 2, devices_per_replica=8, tier="basic")])
    inst, opts = compiled(data)
    pk = Packing(inst, opts)
    pk._commit(1, option_in(inst, opts, 1, "c1", keep=True), {inst.node_index["a-0"]: 1})
    pk._commit(2, option_in(inst, opts, 2, "c1", keep=True), {inst.node_index["a-1"]: 1})
    pk._commit(3, option_in(inst, opts, 3, "c2"), {inst.node_index["b-0"]: 1, inst.node_index["b-1"]: 1})
    assert option_in(inst, opts, 0, "c1") < option_in(inst, opts, 0, "c2")   # c1 is tried first
    best, kept, _ = moves(inst, opts, pk)
    assert kept == 1 and best.placement_of(0) == ("c2", "H100", {"b-0": 1, "b-1": 1})
    assert best.placement_of(1) == ("c1", "H100", {"a-0": 1}) and best.placement_of(2) == ("c1", "H100", {"a-1": 1})
    assert best.placement_of(3) is None


def test_a_running_job_pushed_out_moves_at_no_value_rather_than_stop_when_a_job_worth_less_makes_room():
    # "run"'s checkpoint takes longer to restore than the epoch: moved, it is worth nothing this epoch, but
    # stopped it pays its preemption. "big" takes its node; it takes the node of "tin", worth less than that
    two_types = fleet(cluster("c1", "us", ("a-", 1, "A100", 8)), cluster("c2", "us", ("b-", 1, "H100", 8)))
    data = request(two_types, [job("big", 1, 1, devices_per_replica=8, priority=1.5, speed={"A100": 1.0}),
                               job("run", 1, 1, devices_per_replica=8, speed={"A100": 1.0, "H100": 1.0},
                                   checkpoint_gb=2000.0,
                                   current={"cluster": "c1", "accelerator": "A100", "nodes": {"a-0": 1}}),
                               job("tin", 1, 1, devices_per_replica=8, tier="basic")])
    inst, opts = compiled(data)
    assert opts.coef[option_in(inst, opts, 1, "c2")] == 0.0          # a move is worth nothing this epoch
    pk = Packing(inst, opts)
    pk._commit(1, option_in(inst, opts, 1, "c1", keep=True), {inst.node_index["a-0"]: 1})
    pk._commit(2, option_in(inst, opts, 2, "c2"), {inst.node_index["b-0"]: 1})
    best, kept, gained = moves(inst, opts, pk)
    assert kept == 1 and best.placement_of(0) == ("c1", "A100", {"a-0": 1})
    assert best.placement_of(1) == ("c2", "H100", {"b-0": 1}) and best.placement_of(2) is None
    assert gained > 0


def test_a_gang_that_moves_to_grow_gives_the_node_it_leaves_back_to_the_running_job_it_held():
    # "big" runs 1 replica on a-0, the node "run" ran on (stopped); in c2 it grows to 2 replicas in place of
    # "tin", worth more than one replica of "big" but less than that and "run" back on its node
    two_types = fleet(cluster("c1", "us", ("a-", 1, "A100", 8)), cluster("c2", "us", ("b-", 2, "H100", 8)))
    data = request(two_types, [job("big", 1, 2, devices_per_replica=8, speed={"H100": 1.0, "A100": 1.0}),
                               job("run", 1, 1, devices_per_replica=8, speed={"A100": 1.0},
                                   current={"cluster": "c1", "accelerator": "A100", "nodes": {"a-0": 1}}),
                               job("tin", 1, 1, devices_per_replica=8, priority=1.5)])
    inst, opts = compiled(data)
    pk = Packing(inst, opts)
    pk._commit(0, option_in(inst, opts, 0, "c1"), {inst.node_index["a-0"]: 1})
    pk._commit(2, option_in(inst, opts, 2, "c2"), {inst.node_index["b-1"]: 1})
    best, kept, gained = moves(inst, opts, pk)
    assert kept == 1 and best.placement_of(0) == ("c2", "H100", {"b-0": 1, "b-1": 1})
    assert best.placement_of(1) == ("c1", "A100", {"a-0": 1}) and best.placement_of(2) is None
    assert gained > 0
