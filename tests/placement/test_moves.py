"""The search's constructive moves and the LP rounding's trim (placement/rounding.py, placement/gang_insert.py):
the rounding fits every pool and quota, a running job goes back where it runs when that pays, and a job
the plan leaves out gets its pool with the jobs worth least cleared away."""

from __future__ import annotations

import numpy as np

from placement.candidates import build_options
from placement.gang_insert import keep_moves, option_moves
from placement.greedy import option_gains
from placement.instance import compile_instance
from placement.packing import Packing
from placement.rounding import fit_to_limits
from placement.score import score
from tests.support.requests import cluster, fleet, job, parsed, request

ONE_NODE = fleet(cluster("c", "us", ("n-", 1, "H100", 8)))


def compiled(data: dict):
    inst = compile_instance(parsed(data))
    return inst, build_options(inst)


def change_option(opts, j: int) -> int:
    return int(next(o for o in opts.by_job[j].tolist() if not opts.keep[o]))


def test_a_rounding_that_overfills_a_pool_trims_the_job_worth_least_per_device_first():
    data = request(ONE_NODE, [job("gold", 1, 6, tier="premium"), job("tin", 1, 6, tier="basic")])
    inst, opts = compiled(data)
    gold, tin = change_option(opts, 0), change_option(opts, 1)
    assert fit_to_limits(inst, opts, {0: (gold, 6), 1: (tin, 6)}) == {0: (gold, 6), 1: (tin, 2)}


def test_a_rounding_that_overfills_a_quota_drops_what_cannot_shrink():
    data = request(ONE_NODE, [job("a", 4, 4, tenant="t", priority=2.0), job("b", 4, 4, tenant="t")],
                   quotas=[{"tenant": "t", "tier": "standard", "devices": 4}])
    inst, opts = compiled(data)
    a, b = change_option(opts, 0), change_option(opts, 1)
    assert fit_to_limits(inst, opts, {0: (a, 4), 1: (b, 4)}) == {0: (a, 4)}


def test_a_rounding_within_every_limit_is_left_as_it_is():
    data = request(ONE_NODE, [job("a", 1, 4), job("b", 1, 4)])
    inst, opts = compiled(data)
    choice = {0: (change_option(opts, 0), 4), 1: (change_option(opts, 1), 4)}
    assert fit_to_limits(inst, opts, choice) == choice


def test_a_running_job_moved_off_its_nodes_goes_back_when_the_job_in_its_way_fits_elsewhere():
    two = fleet(cluster("c", "us", ("n-", 2, "H100", 8)))
    data = request(two, [job("run", 8, 8, current={"cluster": "c", "accelerator": "H100", "nodes": {"n-0": 8}},
                             checkpoint_gb=50.0),
                         job("new", 8, 8)])
    inst, opts = compiled(data)
    pk = Packing(inst, opts)                      # the packer's accident: "new" took n-0, "run" moved to n-1
    pk._commit(1, change_option(opts, 1), {inst.node_index["n-0"]: 8})
    pk._commit(0, change_option(opts, 0), {inst.node_index["n-1"]: 8})
    before = score(inst, pk.placed_map()).objective
    gain, _ = option_gains(inst, opts, None)
    best, kept, gained = keep_moves(inst, opts, pk, gain, deadline=float("inf"))
    assert kept == 1 and best.placement_of(0) == ("c", "H100", {"n-0": 8})
    assert best.placement_of(1) == ("c", "H100", {"n-1": 8})
    assert np.isclose(score(inst, best.placed_map()).objective, before + gained) and gained > 0


def test_a_job_left_out_takes_its_pool_from_a_job_worth_less_per_device():
    data = request(ONE_NODE, [job("tin", 8, 8, tier="basic"), job("gold", 8, 8, tier="premium")])
    inst, opts = compiled(data)
    pk = Packing(inst, opts)
    pk._commit(0, change_option(opts, 0), {0: 8})
    gain, _ = option_gains(inst, opts, None)
    best, kept, _ = option_moves(inst, opts, pk, gain, deadline=float("inf"))
    assert kept == 1 and best.placement_of(1) == ("c", "H100", {"n-0": 8}) and best.placement_of(0) is None


def test_no_insertion_is_kept_that_lowers_the_objective():
    data = request(ONE_NODE, [job("gold", 8, 8, tier="premium"), job("tin", 8, 8, tier="basic")])
    inst, opts = compiled(data)
    pk = Packing(inst, opts)
    pk._commit(0, change_option(opts, 0), {0: 8})
    gain, _ = option_gains(inst, opts, None)
    best, kept, gained = option_moves(inst, opts, pk, gain, deadline=float("inf"))
    assert (kept, gained) == (0, 0.0) and best.placement_of(0) == ("c", "H100", {"n-0": 8})
