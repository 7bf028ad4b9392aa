"""Column generation on one warm LP (placement/colgen.py): the LP at planet size.

Its LP is the engine's LP written column-wise (an elastic option as two columns, at its fewest and
its most replicas); once no column prices out, its value is the full LP's, and the Lagrangian at
its duals on the way is a valid bound."""

from __future__ import annotations

import time

import numpy as np

from datasets.requests import generate_family
from placement.bound import lp_bound, priced_values
from placement.candidates import build_options
from placement.colgen import ROUND_SHARE, TOL, RestrictedLP, colgen_lp
from placement.instance import compile_instance
from tests.support.requests import parsed


def _medium():
    inst = compile_instance(parsed(generate_family("medium", 3)))
    return inst, build_options(inst)


def _first_option_per_job(opts) -> np.ndarray:
    return np.array([b[0] for b in opts.by_job if len(b)], dtype=np.int64)


def test_column_generation_from_one_option_per_job_reaches_the_full_lp():
    inst, opts = _medium()
    full = lp_bound(inst, opts, time_limit_s=60)
    got, stats = colgen_lp(inst, opts, _first_option_per_job(opts), time.perf_counter() + 60)
    assert stats["converged"] == 1 and stats["rounds"] >= 2
    assert got.method == "lp"
    assert abs(got.value - full.value) <= 1e-6 * abs(full.value)
    # the primal it rounds from: every job at most once, every option within its replica range
    xj = np.zeros(len(inst.jobs))
    np.add.at(xj, opts.job, got.x)
    assert xj.max() <= 1 + 1e-6
    on = got.x > 1e-9
    assert np.all(got.n[on] >= opts.lo[on] * got.x[on] - 1e-6) and np.all(got.n[on] <= opts.hi[on] * got.x[on] + 1e-6)


def test_a_single_round_gives_a_valid_bound_at_its_duals():
    inst, opts = _medium()
    full = lp_bound(inst, opts, time_limit_s=60)
    got, stats = colgen_lp(inst, opts, _first_option_per_job(opts), time.perf_counter() + 60, max_rounds=1)
    assert stats["rounds"] == 1 and stats["converged"] == 0
    assert got.method == "lagrangian"
    assert got.value >= full.value - 1e-6 * abs(full.value)   # never below the LP: an upper bound


def test_a_round_adds_at_most_a_fifth_of_the_jobs_columns_those_pricing_out_most_first():
    inst, opts = _medium()
    lp = RestrictedLP(inst, opts)
    lp.add(_first_option_per_job(opts))
    assert lp.solve(60) == "Optimal"
    u, pool, quota, budget = lp.duals()
    val, _ = priced_values(inst, opts, pool, quota, budget)
    rel = (val - u[opts.job]) / np.maximum(1.0, np.abs(u[opts.job]))
    # per job its best option outside the model that prices out
    best = np.full(len(inst.jobs), -np.inf)
    outside = ~lp.inside & (val - u[opts.job] > TOL * np.maximum(1.0, np.abs(u[opts.job])))
    np.maximum.at(best, opts.job[outside], rel[outside])
    pricing_out = np.flatnonzero(np.isfinite(best))
    assert len(pricing_out) > ROUND_SHARE * len(inst.jobs)   # the cap binds on this request
    got = lp.pricing()
    assert len(got) == int(ROUND_SHARE * len(inst.jobs))
    assert len(np.unique(opts.job[got])) == len(got)          # one column a job
    assert np.all(rel[got] == best[opts.job[got]])            # each its job's best
    left_out = np.setdiff1d(pricing_out, opts.job[got])
    assert rel[got].min() >= best[left_out].max()             # those pricing out most
