"""Placing one job where it gains most (placement/greedy.py `_place_best`): the plain-Python path for jobs
with few options gives exactly what the whole-array path gives, on a family request's real states."""

from __future__ import annotations

import random

from datasets.requests import generate_family
from placement.candidates import build_options
from placement.greedy import _place_best_arrays, _place_best_few, greedy, option_gains
from placement.instance import compile_instance
from tests.support.requests import parsed


def test_the_few_options_path_places_every_job_exactly_as_the_array_path_does():
    inst = compile_instance(parsed(generate_family("medium", 11)))
    opts = build_options(inst)
    gain, _ = option_gains(inst, opts, None)
    pk = greedy(inst, opts)
    rng = random.Random(11)
    for j in rng.sample(sorted(pk.choice), len(pk.choice) // 3):   # room in every pool, jobs waiting for it
        pk.unplace(j)
    waiting = [i.index for i in inst.jobs if i.index not in pk.choice]
    pk.reserve_running([j for j in waiting if inst.jobs[j].keepable][:40])   # and running jobs' room held
    tried = 0
    for j in waiting:
        for require_positive in (False, True):
            few, arrays = pk.copy(), pk.copy()
            got = _place_best_few(few, j, opts.by_job[j].tolist(), gain, require_positive)
            assert got == _place_best_arrays(arrays, j, opts.by_job[j], gain, require_positive)
            assert (few.choice.get(j), few.nodes.get(j), few.broken) == \
                (arrays.choice.get(j), arrays.nodes.get(j), arrays.broken)
            tried += got
        _place_best_arrays(pk, j, opts.by_job[j], gain, False)       # the next job meets a fuller fleet
    assert tried > 100
