"""Jobs that start or move, packed onto fewer nodes once the search stops (placement/compact.py): the
spread term is what they gain, and a kept job is never touched."""

from __future__ import annotations

import time

import pytest

from placement.candidates import build_options
from placement.compact import compact_spread
from placement.instance import compile_instance
from placement.packing import Packing
from placement.score import score
from tests.support.requests import cluster, fleet, job, parsed, request

# one pool: three 8-device nodes
POOL = fleet(cluster("c", "us", ("n-", 3, "H100", 8)))
FAR = time.perf_counter() + 3600


def _packing(jobs: list[dict]):
    inst = compile_instance(parsed(request(POOL, jobs)))
    opts = build_options(inst)
    return inst, opts, Packing(inst, opts)


def _change(opts, j: int) -> int:
    return next(int(o) for o in opts.by_job[j] if not opts.keep[o])


def test_a_started_job_on_two_nodes_moves_onto_one_node_with_the_room_and_gains_its_spread():
    inst, opts, pk = _packing([job("a", 4)])
    assert pk.place_exact(_change(opts, 0), {0: 2, 1: 2})
    before = score(inst, pk.placed_map())
    gained = compact_spread(inst, opts, pk, FAR)
    after = score(inst, pk.placed_map())
    assert len(pk.nodes[0]) == 1 and sum(pk.nodes[0].values()) == 4
    assert gained > 0 and after.objective == pytest.approx(before.objective + gained)
    assert after.spread == pytest.approx(before.spread - gained) and after.value == pytest.approx(before.value)


def test_a_job_whose_replicas_need_every_node_they_hold_stays_as_it_is():
    inst, opts, pk = _packing([job("a", 10), job("b", 12)])
    assert pk.place_exact(_change(opts, 1), {0: 6, 1: 6})
    assert pk.place_exact(_change(opts, 0), {0: 2, 1: 2, 2: 6})   # node 2 has 8: 10 replicas need two nodes
    compact_spread(inst, opts, pk, FAR)
    assert len(pk.nodes[0]) == 2 and sum(pk.nodes[0].values()) == 10
    assert pk.nodes[1] == {0: 6, 1: 6}


def test_a_kept_job_keeps_its_node_map_however_spread():
    running = job("r", 2, current={"cluster": "c", "accelerator": "H100", "nodes": {"n-0": 1, "n-1": 1}})
    inst, opts, pk = _packing([running])
    assert pk.try_keep(0)
    compact_spread(inst, opts, pk, FAR)
    assert pk.nodes[0] == {0: 1, 1: 1}


def test_past_its_deadline_it_changes_nothing():
    inst, opts, pk = _packing([job("a", 4)])
    assert pk.place_exact(_change(opts, 0), {0: 2, 1: 2})
    assert compact_spread(inst, opts, pk, time.perf_counter() - 1) == 0.0
    assert pk.nodes[0] == {0: 2, 1: 2}
