"""Node packing (placement/packing.py): a gang goes on the fewest nodes, the tightest node that holds it."""

from __future__ import annotations

from placement.candidates import build_options
from placement.instance import compile_instance
from placement.packing import Packing
from tests.support.requests import cluster, fleet, job, parsed, request

# one pool: two 8-device nodes and a 4-device node
POOL = fleet(cluster("c", "us", ("big-", 2, "H100", 8), ("small-", 1, "H100", 4)))


def packed(replicas: int) -> tuple[int, tuple[str, str, dict[str, int]] | None]:
    inst = compile_instance(parsed(request(POOL, [job("j", replicas)])))
    opts = build_options(inst)
    pk = Packing(inst, opts)
    got = pk.try_option(int(opts.by_job[0][0]))
    return got, pk.placement_of(0)


def test_a_gang_that_fits_one_node_takes_the_tightest_such_node():
    assert packed(4) == (4, ("c", "H100", {"small-0": 4}))


def test_a_gang_larger_than_any_node_fills_the_roomiest_first_and_ends_on_the_tightest_that_holds_the_rest():
    assert packed(10) == (10, ("c", "H100", {"big-0": 8, "small-0": 2}))


def test_a_gang_larger_than_the_pool_is_not_placed():
    inst = compile_instance(parsed(request(POOL, [job("j", 12, 21)])))
    opts = build_options(inst)
    pk = Packing(inst, opts)
    o = int(opts.by_job[0][0])
    assert int(opts.hi[o]) == 20                           # the pool's room caps the option
    assert pk.try_option(o, target=20, lo=21) == 0 and pk.placement_of(0) is None
