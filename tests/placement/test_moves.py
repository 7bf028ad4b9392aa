"""The search's constructive moves and the LP rounding's trim (placement/rounding.py, placement/gang_insert.py):
the rounding fits every pool and quota, a running job goes back where it runs when that pays, and a job
the plan leaves out gets its pool with the jobs worth least cleared away."""

from __future__ import annotations

import numpy as np
import pytest

from placement.candidates import build_options
from placement.gang_insert import (
    gang_moves,
    insert_gang,
    keep_moves,
    make_quota_room,
    option_moves,
    pool_occupancy,
    restore_keep,
)
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


def _swapped_and_put_back(data: dict):
    """The packer's accident on `data` (job 1 took n-0, where running job 0 runs; job 0 moved to n-1; both on
    H100s), then the put-back moves: the request, the plan before, the moves' plan, kept and gained."""
    inst, opts = compiled(data)
    h100 = int(opts.pool[change_option(opts, 0)])
    o1 = next(o for o in opts.by_job[1].tolist() if not opts.keep[o] and opts.pool[o] == h100)
    pk = Packing(inst, opts)
    pk._commit(1, o1, {inst.node_index["n-0"]: 8})
    pk._commit(0, change_option(opts, 0), {inst.node_index["n-1"]: 8})
    gain, _ = option_gains(inst, opts, None)
    best, kept, gained = keep_moves(inst, opts, pk, gain, deadline=float("inf"))
    return inst, pk, best, kept, gained


_ON_N0 = {"cluster": "c", "accelerator": "H100", "nodes": {"n-0": 8}}
_IN_THE_WAY = {
    # a new job that fits elsewhere
    "new": (fleet(cluster("c", "us", ("n-", 2, "H100", 8))),
            [job("run", 8, 8, current=_ON_N0, checkpoint_gb=50.0), job("new", 8, 8)]),
    # a running premium gang (protected) that moves over, both premium
    "premium": (fleet(cluster("c", "us", ("n-", 2, "H100", 8)), cluster("d", "us", ("m-", 1, "A100", 8))),
                [job("run", 8, 8, tier="premium", checkpoint_gb=50.0, current=_ON_N0),
                 job("mover", 8, 8, speed={"H100": 1.0, "A100": 0.5}, tier="premium",
                     current={"cluster": "d", "accelerator": "A100", "nodes": {"m-0": 8}})]),
}


@pytest.mark.parametrize("way", sorted(_IN_THE_WAY))
def test_a_running_job_moved_off_its_nodes_goes_back_where_the_job_in_its_way_moves_over(way):
    inst, opts = compiled(request(*_IN_THE_WAY[way]))
    h100 = int(opts.pool[change_option(opts, 0)])
    o1 = next(o for o in opts.by_job[1].tolist() if not opts.keep[o] and opts.pool[o] == h100)
    pk = Packing(inst, opts)                      # the packer's accident: job 1 took n-0, "run" moved to n-1
    pk._commit(1, o1, {inst.node_index["n-0"]: 8})
    pk._commit(0, change_option(opts, 0), {inst.node_index["n-1"]: 8})
    before = score(inst, pk.placed_map()).objective
    gain, _ = option_gains(inst, opts, None)
    best, kept, gained = keep_moves(inst, opts, pk, gain, deadline=float("inf"))
    assert inst.jobs[1].protected == (way == "premium")
    assert kept == 1 and best.placement_of(0) == ("c", "H100", {"n-0": 8})
    assert best.placement_of(1) == ("c", "H100", {"n-1": 8})
    assert np.isclose(score(inst, best.placed_map()).objective, before + gained) and gained > 0


def test_a_running_job_never_goes_back_where_the_premium_job_in_its_way_would_find_no_place():
    two = fleet(cluster("c", "us", ("n-", 1, "H100", 8)), cluster("d", "us", ("m-", 1, "A100", 8)))
    data = request(two, [job("run", 8, 8, current={"cluster": "c", "accelerator": "H100", "nodes": {"n-0": 8}}),
                         job("gold", 8, 8, speed={"H100": 1.0, "A100": 0.5}, tier="premium",
                             current={"cluster": "d", "accelerator": "A100", "nodes": {"m-0": 8}}),
                         job("anchor", 8, 8, speed={"A100": 1.0}, tier="premium")])
    inst, opts = compiled(data)
    assert inst.jobs[1].protected and not inst.jobs[2].protected
    pk = Packing(inst, opts)                      # "gold" moved onto n-0, "anchor" on m-0, "run" stopped
    h100 = [o for o in opts.by_job[1].tolist() if not opts.keep[o] and opts.pool[o] == opts.pool[change_option(opts, 0)]]
    pk._commit(1, h100[0], {inst.node_index["n-0"]: 8})
    pk._commit(2, change_option(opts, 2), {inst.node_index["m-0"]: 8})
    gain, _ = option_gains(inst, opts, None)
    assert restore_keep(inst, opts, pk, 0, gain) is None


def _first_job_on_node_0(data: dict):
    """The request compiled, its first job alone placed on all 8 devices of node 0, and the option gains."""
    inst, opts = compiled(data)
    pk = Packing(inst, opts)
    pk._commit(0, change_option(opts, 0), {0: 8})
    gain, _ = option_gains(inst, opts, None)
    return inst, opts, pk, gain

def test_a_job_left_out_takes_its_pool_from_a_job_worth_less_per_device():
    data = request(ONE_NODE, [job("tin", 8, 8, tier="basic"), job("gold", 8, 8, tier="premium")])
    inst, opts, pk, gain = _first_job_on_node_0(data)
    best, kept, _ = option_moves(inst, opts, pk, gain, deadline=float("inf"))
    assert kept == 1 and best.placement_of(1) == ("c", "H100", {"n-0": 8}) and best.placement_of(0) is None


def _protected_kept_then_option_moves(data: dict):
    """`data`'s first job, protected, kept where it runs, then the option moves: the request, the plan
    before, the moves' plan, how many moves were kept and what they gained."""
    inst, opts = compiled(data)
    assert inst.jobs[0].protected
    pk = Packing(inst, opts)
    assert pk.try_keep(0)
    gain, _ = option_gains(inst, opts, None)
    best, kept, gained = option_moves(inst, opts, pk, gain, deadline=float("inf"))
    return inst, pk, best, kept, gained


def test_a_job_left_out_takes_the_nodes_of_a_premium_job_that_moves_where_it_is_worth_as_much():
    two = fleet(cluster("c", "us", ("n-", 1, "H100", 8)), cluster("d", "us", ("m-", 1, "A100", 8)))
    data = request(two, [job("gold", 8, 8, speed={"H100": 1.0, "A100": 1.0}, tier="premium", checkpoint_gb=1.0,
                             current={"cluster": "c", "accelerator": "H100", "nodes": {"n-0": 8}}),
                         job("fast", 8, 8, speed={"H100": 1.0}, priority=50.0)])
    _, _, best, kept, gained = _protected_kept_then_option_moves(data)
    assert kept == 1 and gained > 0
    assert best.placement_of(1) == ("c", "H100", {"n-0": 8}) and best.placement_of(0) == ("d", "A100", {"m-0": 8})


def _premium_gold_in_the_way(other_tier: str):
    """gold (premium, running on n-0, the H100 node) is in the way of "fast", which runs on H100s only; the
    A100 node gold could move to holds "other" (running, of `other_tier`): the request and the moves' plan."""
    two = fleet(cluster("c", "us", ("n-", 1, "H100", 8)), cluster("d", "us", ("m-", 1, "A100", 8)))
    data = request(two, [job("gold", 8, 8, speed={"H100": 1.0, "A100": 1.0}, tier="premium", checkpoint_gb=1.0,
                             current={"cluster": "c", "accelerator": "H100", "nodes": {"n-0": 8}}),
                         job("fast", 8, 8, speed={"H100": 1.0}, priority=50.0),
                         job("other", 8, 8, speed={"A100": 1.0}, tier=other_tier, checkpoint_gb=1.0,
                             current={"cluster": "d", "accelerator": "A100", "nodes": {"m-0": 8}})])
    inst, opts = compiled(data)
    pk = Packing(inst, opts)
    assert pk.try_keep(0) and pk.try_keep(2)
    gain, _ = option_gains(inst, opts, None)
    best, kept, gained = option_moves(inst, opts, pk, gain, deadline=float("inf"))
    return inst, pk, best, kept, gained


def test_a_premium_job_in_the_way_moves_where_a_job_worth_less_is_cleared_for_it():
    inst, pk, best, kept, gained = _premium_gold_in_the_way("basic")
    assert kept == 1 and gained > 0 and best.placement_of(2) is None
    assert best.placement_of(1) == ("c", "H100", {"n-0": 8}) and best.placement_of(0) == ("d", "A100", {"m-0": 8})
    assert np.isclose(score(inst, best.placed_map()).objective, score(inst, pk.placed_map()).objective + gained)


def test_a_premium_job_in_the_way_stays_where_no_room_can_be_cleared_for_it():
    _, _, best, kept, gained = _premium_gold_in_the_way("premium")   # "other" is protected too
    assert (kept, gained) == (0, 0.0) and best.placement_of(1) is None
    assert best.placement_of(0) == ("c", "H100", {"n-0": 8}) and best.placement_of(2) == ("d", "A100", {"m-0": 8})


def test_no_insertion_is_kept_that_lowers_the_objective():
    data = request(ONE_NODE, [job("gold", 8, 8, tier="premium"), job("tin", 8, 8, tier="basic")])
    inst, opts, pk, gain = _first_job_on_node_0(data)
    best, kept, gained = option_moves(inst, opts, pk, gain, deadline=float("inf"))
    assert (kept, gained) == (0, 0.0) and best.placement_of(0) == ("c", "H100", {"n-0": 8})


def test_a_job_worth_more_per_device_takes_its_tier_quota_from_one_worth_less():
    data = request(ONE_NODE, [job("tin", 4, 4, tenant="t"), job("gold", 4, 4, tenant="t", priority=2.0)],
                   quotas=[{"tenant": "t", "tier": "standard", "devices": 4}])
    inst, opts = compiled(data)
    pk = Packing(inst, opts)                      # the node has room for both; the quota for one
    pk._commit(0, change_option(opts, 0), {0: 4})
    gain, _ = option_gains(inst, opts, None)
    best, kept, gained = option_moves(inst, opts, pk, gain, deadline=float("inf"))
    assert kept == 1 and best.placement_of(1) == ("c", "H100", {"n-0": 4}) and best.placement_of(0) is None
    assert np.isclose(score(inst, best.placed_map()).objective, score(inst, pk.placed_map()).objective + gained)


def test_a_gang_grows_by_the_one_node_worth_clearing_when_its_goal_would_clear_a_valuable_one():
    five = fleet(cluster("c", "us", ("n-", 5, "H100", 8)))
    data = request(five, [job("big", 1, 5, devices_per_replica=8), job("tin", 1, 1, devices_per_replica=8, tier="basic"),
                          job("gold", 1, 1, devices_per_replica=8, tier="premium")])
    inst, opts = compiled(data)
    pk = Packing(inst, opts)
    pk._commit(0, change_option(opts, 0), {0: 1, 1: 1, 2: 1})
    pk._commit(1, change_option(opts, 1), {3: 1})
    pk._commit(2, change_option(opts, 2), {4: 1})
    gain, _ = option_gains(inst, opts, None)
    best, kept, _ = gang_moves(inst, opts, pk, None, None, gain, deadline=float("inf"), min_dpr=1)
    assert kept == 1 and sum(best.nodes[0].values()) == 4            # "big" went from 3 replicas to 4, not 5
    assert sum(best.nodes[2].values()) == 1 and best.placement_of(1) is None   # "gold" runs, "tin" waits


def test_a_job_pushed_out_by_an_insertion_is_inserted_again_in_place_of_a_job_worth_less():
    two = fleet(cluster("c", "us", ("a-", 1, "A100", 8), ("h-", 1, "H100", 8)))
    data = request(two, [job("new", 1, 1, devices_per_replica=8, priority=3.0),
                         job("gold", 1, 1, speed={"H100": 1.0, "A100": 1.0}, devices_per_replica=8, tier="premium"),
                         job("tin", 1, 1, speed={"A100": 1.0}, devices_per_replica=8, tier="basic")])
    inst, opts = compiled(data)
    h, a = inst.node_index["h-0"], inst.node_index["a-0"]
    gold_h = next(o for o in opts.by_job[1].tolist() if inst.pools[int(opts.pool[o])].accelerator == "H100")
    pk = Packing(inst, opts)                      # "new" alone would push out "gold", worth more
    pk._commit(1, gold_h, {h: 1})
    pk._commit(2, change_option(opts, 2), {a: 1})
    gain, _ = option_gains(inst, opts, None)
    best, kept, gained = option_moves(inst, opts, pk, gain, deadline=float("inf"))
    assert kept == 1 and best.placement_of(0) == ("c", "H100", {"h-0": 1})
    assert best.placement_of(1) == ("c", "A100", {"a-0": 1}) and best.placement_of(2) is None
    assert gained > 0


def test_a_running_job_goes_back_in_place_of_a_new_job_worth_less_that_took_its_tier_quota():
    data = request(ONE_NODE, [job("run", 4, 4, tenant="t", priority=2.0,
                                  current={"cluster": "c", "accelerator": "H100", "nodes": {"n-0": 4}}),
                              job("new", 4, 4, tenant="t")],
                   quotas=[{"tenant": "t", "tier": "standard", "devices": 4}])
    inst, opts = compiled(data)
    pk = Packing(inst, opts)                      # "new" holds the quota, "run" is stopped
    pk._commit(1, change_option(opts, 1), {0: 4})
    gain, _ = option_gains(inst, opts, None)
    best, kept, gained = keep_moves(inst, opts, pk, gain, deadline=float("inf"))
    assert kept == 1 and best.placement_of(0) == ("c", "H100", {"n-0": 4}) and best.placement_of(1) is None
    assert gained > 0


TWO_NODES = fleet(cluster("c", "us", ("n-", 2, "H100", 8)))


def _gold_holds_part_of_the_quota(gold_replicas: int, gold_priority: float):
    """Tenant t's standard quota of 8 devices: "gold" (1-device replicas, worth more per device) holds
    part of it on n-0; "gang" (8 devices, worth less per device, worth more in all) waits."""
    data = request(TWO_NODES, [job("gold", gold_replicas, gold_replicas, tenant="t", priority=gold_priority),
                               job("gang", 1, 1, devices_per_replica=8, tenant="t")],
                   quotas=[{"tenant": "t", "tier": "standard", "devices": 8}])
    inst, opts = compiled(data)
    pk = Packing(inst, opts)
    pk._commit(0, change_option(opts, 0), {inst.node_index["n-0"]: gold_replicas})
    gain, _ = option_gains(inst, opts, None)
    return inst, opts, pk, gain


def test_a_gang_worth_less_per_device_takes_a_quota_with_room_to_spare_when_it_is_worth_more_in_all():
    inst, opts, pk, gain = _gold_holds_part_of_the_quota(2, 2.0)   # gold: 2 devices worth 20 each; gang: 8 worth 10
    best, kept, gained = option_moves(inst, opts, pk, gain, deadline=float("inf"))
    assert kept == 1 and best.placement_of(0) is None
    cluster_, accel, nodes = best.placement_of(1)
    assert (cluster_, accel, sum(nodes.values())) == ("c", "H100", 1)
    # value 10 (standard) x devices x priority, less a start's 30 s pause in the 300 s epoch: 72 for 36
    assert np.isclose(gained, 80.0 * 0.9 - 40.0 * 0.9)
    assert np.isclose(score(inst, best.placed_map()).objective, score(inst, pk.placed_map()).objective + gained)


def test_a_gang_never_takes_a_quota_from_jobs_worth_more_in_all_than_it_is():
    inst, opts, pk, gain = _gold_holds_part_of_the_quota(4, 3.0)   # gold: 4 devices worth 30 each (120) > gang's 80
    best, kept, gained = option_moves(inst, opts, pk, gain, deadline=float("inf"))
    assert (kept, gained) == (0, 0.0) and best.placement_of(0) == ("c", "H100", {"n-0": 4})
    assert best.placement_of(1) is None


def test_a_gang_takes_a_full_quota_from_jobs_one_worth_more_per_device_when_all_lose_less_than_it_gains():
    # quota 8 devices, full: "gold" 1 device worth 30, "tin" 7 worth 10 each; the gang's 8 devices are worth
    # 20 each (160 in all), so both must go (100 lost); the per-device rule alone stopped at "gold" (apart philly-11)
    data = request(TWO_NODES, [job("gold", 1, 1, tenant="t", priority=3.0), job("tin", 7, 7, tenant="t"),
                               job("gang", 1, 1, devices_per_replica=8, tenant="t", priority=2.0)],
                   quotas=[{"tenant": "t", "tier": "standard", "devices": 8}])
    inst, opts = compiled(data)
    pk = Packing(inst, opts)
    pk._commit(0, change_option(opts, 0), {inst.node_index["n-0"]: 1})
    pk._commit(1, change_option(opts, 1), {inst.node_index["n-0"]: 7})
    gain, _ = option_gains(inst, opts, None)
    best, kept, gained = option_moves(inst, opts, pk, gain, deadline=float("inf"))
    assert kept == 1 and best.placement_of(0) is None and best.placement_of(1) is None
    cluster_, accel, nodes = best.placement_of(2)
    assert (cluster_, accel, sum(nodes.values())) == ("c", "H100", 1)
    assert np.isclose(gained, 160.0 * 0.9 - 100.0 * 0.9)   # each less a start's 30 s pause in the 300 s epoch


def test_a_gang_takes_its_tier_quota_by_resizing_a_protected_job_down_not_only_by_removing_jobs():
    # quota 20 premium devices: a protected running job holds 6 (3 x 2, it may run on 1 x 2), and a gang of
    # 4 x 4 worth 1.5 times as much per device needs 16; it fits once the protected job is resized down,
    # which then grows back into what the quota has left (2 x 2: 16 + 4 = 20)
    data = request(fleet(cluster("c", "us", ("n-", 4, "H100", 8))),
                   [job("prot", 1, 3, tier="premium", tenant="t", devices_per_replica=2,
                        current={"cluster": "c", "accelerator": "H100", "nodes": {"n-0": 3}}),
                    job("gang", 4, 4, speed={"H100": 1.5}, tier="premium", tenant="t", devices_per_replica=4)],
                   quotas=[{"tenant": "t", "tier": "premium", "devices": 20}])
    inst, pk, best, kept, gained = _protected_kept_then_option_moves(data)
    placed = best.placed_map()
    assert kept == 1 and sum(placed[1][2].values()) == 4 and placed[0][2] == {"n-0": 2}
    assert np.isclose(score(inst, placed).objective, score(inst, pk.placed_map()).objective + gained)


def test_a_gang_takes_its_tier_quota_by_resizing_a_protected_job_worth_more_per_device_when_it_gains_more_in_all():
    # the same quota and jobs, the protected one at priority 3 (three times the gang's worth per device): the
    # two devices it gives up lose less than the gang's 16 gain (apart alibaba-37)
    data = request(fleet(cluster("c", "us", ("n-", 4, "H100", 8))),
                   [job("prot", 1, 3, tier="premium", tenant="t", devices_per_replica=2, priority=3.0,
                        current={"cluster": "c", "accelerator": "H100", "nodes": {"n-0": 3}}),
                    job("gang", 4, 4, tier="premium", tenant="t", devices_per_replica=4)],
                   quotas=[{"tenant": "t", "tier": "premium", "devices": 20}])
    inst, pk, best, kept, gained = _protected_kept_then_option_moves(data)
    placed = best.placed_map()
    assert kept == 1 and sum(placed[1][2].values()) == 4 and placed[0][2] == {"n-0": 2}
    assert gained > 0 and np.isclose(score(inst, placed).objective, score(inst, pk.placed_map()).objective + gained)


def test_a_job_that_used_the_whole_migration_budget_to_get_here_may_still_be_resized_for_quota_room():
    # "b" (premium, protected: it may shrink, not go) moved in from region eu (its 10 GB checkpoint, the whole
    # budget); cutting it to one replica in the pool it moved to moves nothing more (apart alibaba-5: the budget test read the move as a second one)
    data = request(fleet(cluster("c", "us", ("n-", 2, "H100", 8)), cluster("d", "eu", ("m-", 1, "H100", 8)),
                         regions=("us", "eu"), links=[{"a": "us", "b": "eu", "gbps": 10.0}]),
                   [job("b", 1, 7, tier="premium", tenant="t", checkpoint_gb=10.0,
                        current={"cluster": "d", "accelerator": "H100", "nodes": {"m-0": 7}}),
                    job("gang", 3, 3, devices_per_replica=2, tier="premium", tenant="t", priority=8.9)],
                   quotas=[{"tenant": "t", "tier": "premium", "devices": 7}], policy={"migration_budget_gb": 10.0})
    inst, opts = compiled(data)
    moved = next(o for o in opts.by_job[0].tolist() if not opts.keep[o] and inst.pools[int(opts.pool[o])].cluster == "c")
    pk = Packing(inst, opts)
    pk._commit(0, moved, {inst.node_index["n-0"]: 7})
    assert not pk.budget_ok(moved)
    out: set[int] = set()
    assert (make_quota_room(inst, pk, 1, 6, 890.0 * 0.9, out), out) == (6, {0})
    assert pk.placement_of(0) == ("c", "H100", {"n-0": 1})


def _big_wants_two_h100_nodes():
    """Three H100 nodes and an empty A100 one: "run" (running premium, protected, as fast on A100s) on n-0,
    "wide" (new, 1-2 replicas, H100s only) on n-1 and n-2, and "big" (2 x 8, H100s only, worth most) left
    out: the request, its options, the plan and the option gains."""
    data = request(fleet(cluster("c", "us", ("n-", 3, "H100", 8)), cluster("d", "us", ("m-", 1, "A100", 8))),
                   [job("run", 1, 1, speed={"H100": 1.0, "A100": 1.0}, devices_per_replica=8, tier="premium",
                        checkpoint_gb=1.0, current={"cluster": "c", "accelerator": "H100", "nodes": {"n-0": 1}}),
                    job("wide", 1, 2, devices_per_replica=8, priority=5.0),
                    job("big", 2, 2, devices_per_replica=8, priority=10.0)])
    inst, opts = compiled(data)
    pk = Packing(inst, opts)
    assert pk.try_keep(0)
    pk._commit(1, change_option(opts, 1), {inst.node_index["n-1"]: 1, inst.node_index["n-2"]: 1})
    gain, _ = option_gains(inst, opts, None)
    return inst, opts, pk, gain


def test_a_job_with_an_empty_node_to_move_to_is_priced_by_what_the_move_costs_it_not_by_all_it_is_worth():
    inst, opts, pk, _ = _big_wants_two_h100_nodes()
    h100 = int(opts.pool[change_option(opts, 2)])
    a100 = next(o for o in opts.by_job[0].tolist() if inst.pools[int(opts.pool[o])].accelerator == "A100")
    raw = pool_occupancy(inst, opts, pk)[h100]
    priced = pool_occupancy(inst, opts, pk, next_best=True)[h100]
    n0, n1 = inst.node_index["n-0"], inst.node_index["n-1"]
    keep = int(pk.choice[0])
    assert np.isclose(raw[n0][1], opts.coef[keep] + inst.jobs[0].preempt_cost)
    assert np.isclose(priced[n0][1], opts.coef[keep] + inst.jobs[0].preempt_cost - opts.coef[a100])
    assert priced[n1][1] == raw[n1][1] > priced[n0][1]   # "wide" has nowhere else to go


def test_a_gang_pushed_off_one_of_its_nodes_stays_on_the_rest_before_a_moved_job_is_placed_again():
    inst, opts, pk, gain = _big_wants_two_h100_nodes()
    occupancy = pool_occupancy(inst, opts, pk, next_best=True)
    got, changed = insert_gang(inst, opts, pk, 2, change_option(opts, 2), 2, gain, occupancy, keep_protected=False,
                               in_place=True)
    placed = got.placed_map()
    assert placed[2] == ("c", "H100", {"n-0": 1, "n-1": 1})
    assert placed[1] == ("c", "H100", {"n-2": 1}) and placed[0] == ("d", "A100", {"m-0": 1})
    assert changed == {0, 1, 2}


def test_a_gang_pushed_off_one_of_its_nodes_loses_the_rest_to_a_protected_job_placed_first_without_it():
    inst, opts, pk, gain = _big_wants_two_h100_nodes()
    occupancy = pool_occupancy(inst, opts, pk, next_best=True)
    got, _ = insert_gang(inst, opts, pk, 2, change_option(opts, 2), 2, gain, occupancy, keep_protected=False)
    placed = got.placed_map()
    assert placed[0] == ("c", "H100", {"n-2": 1}) and 1 not in placed


def test_a_gang_grows_on_its_own_option_by_clearing_a_node_of_a_job_worth_less():
    # "gang" (1-2 x 8) runs one replica on n-0; "tin" (basic) holds n-1: the option moves grow the gang there
    data = request(TWO_NODES, [job("gang", 1, 2, devices_per_replica=8, priority=2.0), job("tin", 8, 8, tier="basic")])
    inst, opts = compiled(data)
    pk = Packing(inst, opts)
    pk._commit(0, change_option(opts, 0), {inst.node_index["n-0"]: 1})
    pk._commit(1, change_option(opts, 1), {inst.node_index["n-1"]: 8})
    gain, _ = option_gains(inst, opts, None)
    best, kept, gained = option_moves(inst, opts, pk, gain, deadline=float("inf"), grow=True)
    assert kept == 1 and best.placement_of(0) == ("c", "H100", {"n-0": 1, "n-1": 1}) and best.placement_of(1) is None
    assert np.isclose(score(inst, best.placed_map()).objective, score(inst, pk.placed_map()).objective + gained)
    _, kept, _ = option_moves(inst, opts, pk, gain, deadline=float("inf"))
    assert kept == 0
