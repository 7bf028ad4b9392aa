"""RENS on the whole-node-cut model (placement/rens.py): an integer solution within the LP's integral part."""

from __future__ import annotations

import functools

import numpy as np
import pytest

from datasets.requests import generate_family
from placement.candidates import build_options
from placement.cut_beside import cut_lp, cut_model
from placement.instance import compile_instance
from placement.realize import realize
from placement.rens import rens_choice
from placement.score import score
from tests.support.requests import parsed

SEED = 8   # medium family: the cut LP's rounding packs 15,339 against the LP's 16,407


@functools.cache
def _case():
    inst = compile_instance(parsed(generate_family("medium", SEED)))
    opts = build_options(inst)
    model = cut_model(inst, opts)
    lp = cut_lp(inst, opts, model, 30.0)
    return inst, opts, model, lp, rens_choice(inst, opts, model, lp, 30.0)


def _integral_jobs(opts, lp) -> set[int]:
    frac = np.abs(lp.x - np.rint(lp.x)) > 1e-6
    change = ~opts.keep
    frac |= change & (np.abs(lp.n - np.rint(lp.n)) > 1e-6)
    return set(range(int(opts.job.max()) + 1)) - set(opts.job[frac].tolist())


def test_every_job_the_lp_sets_integrally_keeps_the_lps_option_and_replicas():
    inst, opts, _, lp, got = _case()
    assert got is not None
    for j in _integral_jobs(opts, lp):
        ol = opts.by_job[j]
        on = [int(o) for o in ol if lp.x[o] > 0.5]
        if not on:
            assert j not in got
            continue
        o = on[0]
        reps = inst.jobs[j].r0 if opts.keep[o] else int(np.rint(lp.n[o]))
        assert got[j] == (o, reps)


def test_a_free_job_takes_only_an_option_the_lp_weighs():
    _, opts, _, lp, got = _case()
    free = set(got) - _integral_jobs(opts, lp)
    assert free, "the LP is fractional on some job here"
    for j in free:
        o, reps = got[j]
        assert lp.x[o] > 1e-6 and opts.lo[o] <= reps <= opts.hi[o]


def test_the_choice_fits_the_pools_and_the_quotas():
    inst, opts, _, _, got = _case()
    used = np.zeros(len(inst.pools))
    for o, reps in got.values():
        used[int(opts.pool[o])] += reps * int(opts.dpr[o])
    assert (used <= np.array([p.capacity for p in inst.pools]) + 1e-9).all()
    for key, cap in inst.quotas.items():
        assert sum(r * int(opts.dpr[o]) for j, (o, r) in got.items() if inst.jobs[j].key == key) <= cap


def test_packed_it_beats_the_lps_rounding_on_this_request():
    from placement.plan import lp_rounding
    inst, opts, _, lp, got = _case()
    rens = score(inst, realize(inst, opts, got).placed_map()).objective
    rounded = score(inst, realize(inst, opts, lp_rounding(inst, opts, lp)).placed_map()).objective
    assert rens > rounded
    assert rens == pytest.approx(16_064.9, rel=0.01)


def test_too_many_fractional_jobs_give_no_solution_rather_than_a_long_solve():
    inst, opts, model, lp, _ = _case()
    assert rens_choice(inst, opts, model, lp, 30.0, max_free_jobs=1) is None
