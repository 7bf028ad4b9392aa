"""Delta realization (placement/realize.py): only the changed jobs are repacked; the base plan is untouched."""

from __future__ import annotations

from placement.candidates import build_options
from placement.greedy import option_gains
from placement.instance import compile_instance
from placement.packing import Packing
from placement.realize import realize_delta
from tests.support.requests import cluster, fleet, job, parsed, request

FOUR = fleet(cluster("c", "us", ("n-", 4, "H100", 8)))


def test_realize_delta_repacks_the_changed_job_and_leaves_every_other_where_it_was():
    inst = compile_instance(parsed(request(FOUR, [job("a", 8), job("b", 8, 16)])))
    opts = build_options(inst)
    oa, ob = int(opts.by_job[0][0]), int(opts.by_job[1][0])
    base = Packing(inst, opts)
    assert base.try_option(oa, target=8) == 8 and base.try_option(ob, target=8) == 8
    assert base.placement_of(0) == ("c", "H100", {"n-0": 8})
    assert base.placement_of(1) == ("c", "H100", {"n-1": 8})

    gain, _ = option_gains(inst, opts, None)
    out = realize_delta(inst, opts, base, {0: (oa, 8), 1: (ob, 16)}, {1}, gain)

    assert out.placement_of(0) == ("c", "H100", {"n-0": 8})             # not changed: not moved
    assert out.placement_of(1) == ("c", "H100", {"n-1": 8, "n-2": 8})   # changed: packed again at 16
    assert base.placement_of(1) == ("c", "H100", {"n-1": 8})            # the base plan is a copy's source only
    assert out.free.tolist() == [0, 0, 0, 8] and base.free.tolist() == [0, 0, 8, 8]
