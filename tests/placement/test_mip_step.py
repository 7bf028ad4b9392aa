"""The integer step over pools (placement/mip_step.py): a chain of relocations no insertion makes.

Four clusters of one 8-device node each, all of a different accelerator type. "new" runs only on H100,
where "p" sits; "p" is worth as much on A100, where "r" sits; "r" as much on V100, where "s" sits; "s"
as much on L40S, which is empty. Placing "new" takes three relocations at equal value: an insertion
moves one job and repairs the one it pushed out, so it stops a step short."""

from __future__ import annotations

import dataclasses

import numpy as np

from datasets.requests import generate_family
from placement import plan
from placement.bound import lp_bound
from placement.candidates import build_options
from placement.gang_insert import gang_moves, option_moves
from placement.greedy import option_gains
from placement.instance import compile_instance
from placement.mip_step import relaxation_disagreements, solve_neighbourhood
from placement.packing import Packing
from placement.params import DEFAULT
from placement.realize import realize_delta
from placement.score import placed_terms, score
from tests.support.requests import check, cluster, fleet, job, parsed, request

CHAIN = fleet(cluster("c1", "us", ("h-", 1, "H100", 8)), cluster("c2", "us", ("a-", 1, "A100", 8)),
              cluster("c3", "us", ("v-", 1, "V100", 8)), cluster("c4", "us", ("l-", 1, "L40S", 8)))


def _chain_request() -> dict:
    return request(CHAIN, [
        job("new", 8, 8, speed={"H100": 1.0}),
        job("p", 1, 1, speed={"H100": 1.0, "A100": 1.0}, devices_per_replica=8),
        job("r", 1, 1, speed={"A100": 1.0, "V100": 1.0}, devices_per_replica=8),
        job("s", 1, 1, speed={"V100": 1.0, "L40S": 1.0}, devices_per_replica=8),
    ])


def _incumbent(inst, opts) -> Packing:
    """"p" on H100, "r" on A100, "s" on V100, "new" left out."""
    pk = Packing(inst, opts)
    for j, accel, node in ((1, "H100", "h-0"), (2, "A100", "a-0"), (3, "V100", "v-0")):
        o = next(o for o in opts.by_job[j].tolist() if inst.pools[int(opts.pool[o])].accelerator == accel)
        pk._commit(j, o, {inst.node_index[node]: 1})
    return pk


def test_insertion_moves_stop_a_relocation_short_of_placing_the_job_left_out():
    inst = compile_instance(parsed(_chain_request()))
    opts = build_options(inst)
    pk = _incumbent(inst, opts)
    gain, _ = option_gains(inst, opts, None)
    _, kept_gang, _ = gang_moves(inst, opts, pk, None, None, gain, deadline=float("inf"), min_dpr=1)
    _, kept_opt, _ = option_moves(inst, opts, pk, gain, deadline=float("inf"))
    assert kept_gang == 0 and kept_opt == 0


def test_the_integer_step_relocates_three_jobs_at_equal_value_so_the_job_left_out_runs():
    inst = compile_instance(parsed(_chain_request()))
    opts = build_options(inst)
    pk = _incumbent(inst, opts)
    before = score(inst, pk.placed_map()).objective
    lp = lp_bound(inst, opts, 10.0)   # the engine steps with the LP's options in the model
    got = solve_neighbourhood(inst, opts, pk, {0, 1, 2, 3}, lp.x, seconds=10.0)
    changed = {j for j in range(4) if got.get(j) != ((pk.choice[j], 1) if j in pk.choice else None)}
    gain, _ = option_gains(inst, opts, None)
    after = realize_delta(inst, opts, pk, {**got}, changed, gain)
    assert after.placed_map() == {0: ("c1", "H100", {"h-0": 8}), 1: ("c2", "A100", {"a-0": 1}),
                                  2: ("c3", "V100", {"v-0": 1}), 3: ("c4", "L40S", {"l-0": 1})}
    # the others moved at equal value and none was running: the gain is what "new" is worth on H100, less
    # what its start costs
    value, start_cost, _ = placed_terms(inst, 0, "c1", "H100", 8)
    assert np.isclose(score(inst, after.placed_map()).objective - before, value - start_cost)


def test_the_relaxation_over_every_job_frees_exactly_the_chain_and_the_step_on_it_places_the_job_left_out():
    """The step's own relaxation over every job (no job held on its nodes) sets the four jobs of the chain
    otherwise than the plan, and nothing else is freed; the integer step on those relocates the three."""
    inst = compile_instance(parsed(_chain_request()))
    opts = build_options(inst)
    pk = _incumbent(inst, opts)
    lp = lp_bound(inst, opts, 10.0)
    free = relaxation_disagreements(inst, opts, pk, lp.x, seconds=10.0)
    assert free == {0, 1, 2, 3}
    got = solve_neighbourhood(inst, opts, pk, free, lp.x, seconds=10.0)
    assert {j: inst.pools[int(opts.pool[o])].accelerator for j, (o, _) in got.items()} == {
        0: "H100", 1: "A100", 2: "V100", 3: "L40S"}


def test_a_plan_with_the_relaxation_step_switched_on_obeys_the_contract():
    """The optional first integer step (`mip_rins_steps`, off by default) on a medium family request, where
    the plan is far enough from the bound for it to run: the plan it takes part in passes both checkers."""
    data = generate_family("medium", 11, time_limit_s=1.0)
    params = dataclasses.replace(DEFAULT, mip_rins_steps=1, mip_rins_min_gap=0.0)
    check(data, plan(parsed(data), params))


def test_an_integer_step_frees_200_disagreements_on_a_medium_request_and_a_fifth_of_a_large_one_up_to_1000():
    from placement.lns import mip_jobs

    assert mip_jobs(600, DEFAULT) == 200          # a fifth is 120: the floor holds, the steps as before
    assert mip_jobs(4_600, DEFAULT) == 920
    assert mip_jobs(9_999, DEFAULT) == 1_000
    assert mip_jobs(20_000, DEFAULT) == 200       # planet size (the LP-first path): as before
    assert mip_jobs(4_600, dataclasses.replace(DEFAULT, mip_jobs_share=0.0)) == 200
