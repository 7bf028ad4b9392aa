"""The insertion moves' per-plan maps give exactly what the per-visit computation they replace gave: each job's
share of a node (its loss unplaced per replica x its replicas there, a protected job's as any other's where it
has somewhere else to go, infinite where it can only stay) and their sum in the plan's order, read off the
plan the map was built from, also as the moves keep it up to date."""

from __future__ import annotations

import math

from datasets.requests import generate_family
from placement import gang_insert
from placement.candidates import build_options
from placement.gang_insert import option_moves, pool_occupancy
from placement.greedy import greedy, option_gains
from placement.instance import compile_instance
from tests.support.requests import parsed


def _family_plan(seed: int):
    inst = compile_instance(parsed(generate_family("medium", seed)))
    opts = build_options(inst)
    return inst, opts, greedy(inst, opts)


def _per_visit(inst, opts, pk, pool: int) -> dict[int, tuple[list[tuple[int, float]], float]]:
    """The shares as each node visit worked them out before (every job on the node, in the plan's order)."""
    got: dict[int, tuple[list[tuple[int, float]], float]] = {}
    for k, o in pk.choice.items():
        if int(opts.pool[o]) != pool:
            continue
        nodes = pk.nodes[k]
        stays = inst.jobs[k].protected and all(opts.keep[x] for x in opts.by_job[k].tolist())
        for n in nodes:
            share = math.inf if stays else (
                opts.lists().coef[o] + inst.jobs[k].preempt_cost / sum(nodes.values())) * nodes[n]
            got.setdefault(n, ([], 0.0))[0].append((k, share))
    for n, (on, _) in list(got.items()):
        cost = 0.0
        for _, share in on:
            if share == math.inf:
                cost = math.inf
                break
            cost += share
        got[n] = (on, cost)
    return got


def test_each_nodes_shares_and_their_sum_equal_the_per_visit_computation_on_family_plans():
    for seed in (11, 29):
        inst, opts, pk = _family_plan(seed)
        occ = pool_occupancy(inst, opts, pk)
        assert set(occ) == {p.index for p in inst.pools}
        protected = {i.index for i in inst.jobs if i.protected}
        assert any(k in protected for m in occ.values() for on, _ in m.values() for k, _ in on)
        assert any(s < math.inf for m in occ.values() for on, _ in m.values() for k, s in on if k in protected)
        assert any(len(on) > 1 for m in occ.values() for on, _ in m.values())                   # shared nodes
        for p in occ:
            assert occ[p] == _per_visit(inst, opts, pk, p)


def test_the_map_of_some_pools_is_the_full_maps_for_those_pools():
    inst, opts, pk = _family_plan(11)
    full = pool_occupancy(inst, opts, pk)
    some = {0, 3, len(inst.pools) - 1}
    assert pool_occupancy(inst, opts, pk, some) == {p: full[p] for p in some}


def test_the_map_the_moves_keep_up_to_date_holds_the_shares_of_the_plan_each_insertion_starts_from():
    inst, opts, pk = _family_plan(29)
    gain, _ = option_gains(inst, opts, None)
    checked = []
    real = gang_insert.insert_gang

    def checking(inst_, opts_, base, j, o, target, gain_, occupancy=None, keep_protected=True, in_place=False):
        p = int(opts.pool[o])
        if occupancy is not None and p in occupancy:
            fresh = pool_occupancy(inst, opts, base, {p})[p]
            # the same jobs with the same shares on each node (their order is the map's own, as before)
            assert {n: sorted(on) for n, (on, _) in occupancy[p].items()} == {n: sorted(on) for n, (on, _) in fresh.items()}
            checked.append(p)
        return real(inst_, opts_, base, j, o, target, gain_, occupancy, keep_protected, in_place)

    gang_insert.insert_gang = checking
    try:
        _, kept, _ = option_moves(inst, opts, pk, gain, deadline=math.inf, max_tries=400)
    finally:
        gang_insert.insert_gang = real
    assert kept > 0 and len(checked) > 100


def test_a_backfills_pinned_jobs_are_never_cleared_for_an_insertion():
    from placement import backfill
    from placement.packing import Packing

    data = generate_family("medium", 11)
    data["policy"]["mode"] = "backfill"
    inst = compile_instance(parsed(data))
    opts, pinned = backfill.restrict(inst, build_options(inst))
    pk = Packing(inst, opts)
    kept = [j for j in range(len(inst.jobs)) if pinned[j] and pk.try_keep(j)]
    assert len(kept) > 100
    occ = pool_occupancy(inst, opts, pk)
    shares = {k: s for m in occ.values() for on, _ in m.values() for k, s in on}
    assert all(shares[k] == math.inf for k in kept)
