"""The search's scalar fast paths give exactly what the general ones give: `_fit_small` the nodes and counts of
`_fit`, `net_of` (node indices) the canonical scorer's terms (node names), `_place_best` the same placement from
a read-only gain array (read as a list) as from a writable one (read by numpy)."""

from __future__ import annotations

import random

import numpy as np

from datasets.requests import generate_family
from placement.candidates import build_options
from placement.greedy import _place_best, greedy, option_gains
from placement.instance import compile_instance
from placement.packing import Packing, _fit, _fit_small
from placement.score import job_terms, net_of, score
from tests.support.requests import parsed


def _as_lists(got):
    return None if got is None else (np.asarray(got[0]).tolist(), np.asarray(got[1]).tolist())


def test_fit_small_picks_the_nodes_and_counts_fit_picks_on_random_rooms():
    rng = random.Random(7)
    for _ in range(3000):
        n = rng.randint(1, 12)
        cap = [rng.randint(-2, 8) for _ in range(n)]
        prefer = [min(c, rng.randint(-2, 8)) for c in cap] if rng.random() < 0.5 else None
        want = rng.randint(1, 40)
        expected = _fit(np.array(cap, dtype=np.int64), want,
                        None if prefer is None else np.array(prefer, dtype=np.int64))
        assert _fit_small(cap, want, prefer) == _as_lists(expected), (cap, want, prefer)


def test_fit_small_fills_the_roomiest_first_and_ends_on_the_tightest_node_holding_the_rest():
    assert _fit_small([3, 8, 5, 2, 8], 18) == ([1, 4, 3], [8, 8, 2])
    assert _fit_small([3, 8, 5, 2, 8], 5) == ([2], [5])
    assert _fit_small([0, -1], 2) is None


def test_net_of_from_node_indices_equals_the_scorers_terms_for_every_job_of_a_family_plan():
    inst = compile_instance(parsed(generate_family("medium", 11)))
    opts = build_options(inst)
    pk = greedy(inst, opts)
    jobs = range(len(inst.jobs))
    assert {"kept", "moved", "unplaced"} <= {
        "unplaced" if j not in pk.choice else "kept" if opts.keep[pk.choice[j]] else "moved" for j in jobs}
    for j in jobs:
        v, d, p = job_terms(inst, j, pk.placement_of(j))
        assert net_of(inst, pk, (j,)) == v - d - p
    objective = score(inst, pk.placed_map()).objective
    assert abs(net_of(inst, pk, jobs) - objective) <= 1e-9 * abs(objective)   # (summed in another order)


def test_option_gains_are_read_only_and_place_best_places_alike_from_a_writable_copy():
    inst = compile_instance(parsed(generate_family("medium", 0)))
    opts = build_options(inst)
    gain, _ = option_gains(inst, opts, None)
    assert not gain.flags.writeable
    a, b = Packing(inst, opts), Packing(inst, opts)
    writable = gain.copy()
    for j in range(len(inst.jobs)):
        assert _place_best(a, j, gain, require_positive=False) == _place_best(b, j, writable, require_positive=False)
    assert a.choice == b.choice and a.nodes == b.nodes and a.choice
