"""The search's scalar fast paths give exactly what the general ones give: `_fit_small` the nodes and counts of
`_fit`, `net_of` (node indices) the canonical scorer's terms (node names), `_place_best` the same placement from
a read-only gain array (read as a list) as from a writable one (read by numpy); the plain-Python option builder
and Lagrangian of small requests what their vectorised forms give."""

from __future__ import annotations

import random

import numpy as np
import pytest

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


def _small_and_family_requests() -> list:
    from tests.placement.test_small_requests import _requests
    return [compile_instance(parsed(data)) for data in _requests()] + [
        compile_instance(parsed(generate_family("medium", s))) for s in (0, 5)]


def test_the_plain_python_option_builder_gives_the_vectorised_builders_options_to_the_last_bit():
    from placement.candidates import build_options_vectorised
    from placement.candidates_small import build_options_small
    instances = _small_and_family_requests()
    for inst in instances:
        a, b = build_options_vectorised(inst), build_options_small(inst)
        for f in ("job", "pool", "keep", "lo", "hi", "unit", "coef", "dpr", "mig_gb"):
            x, y = getattr(a, f), getattr(b, f)
            assert x.dtype == y.dtype and np.array_equal(x, y), f
        assert [s.tolist() for s in a.by_job] == [s.tolist() for s in b.by_job]
        assert a.no_option_reason == b.no_option_reason
    # the requests reach every branch: keep options, limited regions, allowed counts, jobs without options
    assert all(any(getattr(build_options_small(i), f).any() for i in instances) for f in ("keep", "mig_gb"))
    assert {code for i in instances for code, _ in build_options_small(i).no_option_reason.values()} >= {
        "no_capacity", "too_small", "quota"}
    assert any(j.allowed is not None for i in instances for j in i.jobs)


def test_the_plain_python_lagrangian_gives_the_vectorised_value_and_descent(monkeypatch):
    from placement import bound
    from placement.bound_small import lagrangian_bound_small, lagrangian_value_small
    monkeypatch.setattr(bound, "SMALL_OPTIONS", -1)   # the module's own functions take the vectorised form
    rng = np.random.default_rng(3)
    for inst in _small_and_family_requests()[:-2]:
        opts = build_options(inst)
        for _ in range(10):
            pi = rng.uniform(0, 3, len(inst.pools)) * (rng.random(len(inst.pools)) < 0.6)
            mu, lam = rng.uniform(0, 2, len(inst.quotas)), float(rng.uniform(0, 1))
            want, got = bound.lagrangian_value(inst, opts, pi, mu, lam), lagrangian_value_small(inst, opts, pi, mu, lam)
            assert got[0] == pytest.approx(want[0], rel=1e-12, abs=1e-9)
            assert np.allclose(got[1], want[1]) and np.allclose(got[2], want[2]) and got[3] == pytest.approx(want[3])
        want = bound.lagrangian_bound(inst, opts, max_iter=200, seconds=1e9)
        got = lagrangian_bound_small(inst, opts, max_iter=200, seconds=1e9)
        assert got.value == pytest.approx(want.value, rel=1e-12)
        assert np.allclose(got.prices, want.prices, rtol=1e-9, atol=1e-12)
