"""The whole-node-cut child's plan so far as the search's start for its option moves (placement/lns.py
`_from_outside`): taken, packed, where it is better than the search's plan and keeps every protected job
placed; else the search's plan stands."""

from __future__ import annotations

from placement.candidates import build_options
from placement.instance import compile_instance
from placement.lns import _from_outside
from placement.packing import Packing
from placement.params import DEFAULT
from placement.score import score
from tests.support.requests import cluster, fleet, job, parsed, request

TWO_NODES = fleet(cluster("c", "us", ("n-", 2, "H100", 8)))
FAR = float("inf")


def _setup(protected_running: bool = False):
    jobs = [job("a", 8, 8), job("b", 8, 8, priority=2.0)]
    if protected_running:
        jobs.append(job("gold", 8, 8, tier="premium",
                        current={"cluster": "c", "accelerator": "H100", "nodes": {"n-1": 8}}))
    inst = compile_instance(parsed(request(TWO_NODES, jobs)))
    opts = build_options(inst)
    change = {j: int(next(o for o in opts.by_job[j].tolist() if not opts.keep[o])) for j in range(len(jobs))}
    pk = Packing(inst, opts)
    if protected_running:
        assert pk.try_keep(2)
    pk._commit(0, change[0], {inst.node_index["n-0"]: 8})   # "a" where "b", worth twice as much, could be
    return inst, opts, pk, change


def test_the_childs_better_plan_is_where_the_option_moves_start():
    inst, opts, pk, change = _setup()
    now = score(inst, pk.placed_map()).objective
    got = _from_outside(inst, opts, pk, lambda: (2 * now, {1: (change[1], 8)}), FAR, DEFAULT)
    assert got is not pk and got.placement_of(1) is not None   # "b" placed (and "a" on the other node)
    assert score(inst, got.placed_map()).objective > now


def test_the_childs_plan_no_better_than_the_search_s_leaves_the_search_s():
    inst, opts, pk, change = _setup()
    now = score(inst, pk.placed_map()).objective
    assert _from_outside(inst, opts, pk, lambda: (now, {1: (change[1], 8)}), FAR, DEFAULT) is pk


def test_the_childs_plan_that_leaves_a_protected_job_out_is_never_taken():
    inst, opts, pk, change = _setup(protected_running=True)
    now = score(inst, pk.placed_map()).objective
    both = {0: (change[0], 8), 1: (change[1], 8)}   # the two new jobs on both nodes: "gold" left out
    assert _from_outside(inst, opts, pk, lambda: (10 * abs(now) + 1e6, both), FAR, DEFAULT) is pk


def test_no_plan_from_the_child_leaves_the_search_s():
    inst, opts, pk, _ = _setup()
    assert _from_outside(inst, opts, pk, lambda: None, FAR, DEFAULT) is pk
