"""A node-level neighbourhood (placement.node_lns) on a large pool under a small work budget answers
with at least the incumbent: its complete hint is the first solution, not lost to CP-SAT's presolve."""

from __future__ import annotations

from datasets.requests import generate_family
from placement.candidates import build_options
from placement.greedy import greedy
from placement.instance import compile_instance
from placement.node_lns import node_step
from placement.score import net_of
from tests.support.requests import parsed


def test_a_node_step_on_a_pool_of_seventy_nodes_keeps_at_least_the_incumbent_on_a_small_budget():
    inst = compile_instance(parsed(generate_family("medium", 29)))
    opts = build_options(inst)
    base = greedy(inst, opts)
    pool = max(range(len(inst.pools)), key=lambda p: len(inst.pools[p].nodes))
    free = {j for j, o in base.choice.items() if int(opts.pool[o]) == pool}
    assert len(inst.pools[pool].nodes) >= 70 and len(free) >= 20
    got = node_step(inst, opts, base, pool, sorted(inst.pools[pool].nodes), free, 0.02, True)
    assert got is not None
    assert net_of(inst, got, free) >= net_of(inst, base, free) - 1e-6
    assert (got.free >= 0).all()
