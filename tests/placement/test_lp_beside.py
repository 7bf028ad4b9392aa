"""Column generation in runs that go on from the last, and its remaining rounds in a second thread
(placement/colgen.py `ColumnGeneration`, placement/lp_beside.py), on a medium family request whose LP
converges in a few rounds: where the LP stage stops on time, the rounds it had no time for still
tighten the plan's bound."""

from __future__ import annotations

import dataclasses
import pathlib
import time

import numpy as np

from datasets.requests import generate_family
from placement import plan
from placement.bound import lp_bound
from placement.candidates import build_options
from placement.colgen import ColumnGeneration, colgen_lp
from placement.greedy import greedy
from placement.instance import compile_instance
from placement.lp_beside import BoundBeside
from placement.params import DEFAULT
from placement.plan import _lp_stage
from tests.support.requests import check, parsed


def _medium(seed: int = 3):
    inst = compile_instance(parsed(generate_family("medium", seed)))
    return inst, build_options(inst)


def _first_option_per_job(opts) -> np.ndarray:
    return np.array([b[0] for b in opts.by_job if len(b)], dtype=np.int64)


def test_a_second_run_goes_on_from_the_first_to_the_same_lp_as_one_run():
    inst, opts = _medium()
    whole, _ = colgen_lp(inst, opts, _first_option_per_job(opts), time.perf_counter() + 60)
    cg = ColumnGeneration(inst, opts, _first_option_per_job(opts))
    cg.run(time.perf_counter() + 60, max_rounds=1)
    assert cg.stats["rounds"] == 1 and not cg.done
    cg.run(time.perf_counter() + 60)
    assert cg.done and cg.bound().method == "lp"
    assert cg.bound().value == whole.value
    assert cg.stats["rounds"] == colgen_lp(inst, opts, _first_option_per_job(opts), time.perf_counter() + 60)[1]["rounds"]


def test_the_rounds_beside_reach_the_full_lp_from_where_the_first_run_stopped():
    inst, opts = _medium()
    full = lp_bound(inst, opts, time_limit_s=60)
    cg = ColumnGeneration(inst, opts, _first_option_per_job(opts))
    cg.run(time.perf_counter() + 60, max_rounds=1)
    first = cg.bound()
    beside = BoundBeside(cg, time.perf_counter() + 60)
    got = beside.result()
    assert beside.rounds == cg.stats["rounds"] - 1 >= 1
    assert got.method == "lp" and abs(got.value - full.value) <= 1e-6 * abs(full.value)
    assert got.value < first.value                             # tighter than the first round's bound


def test_rounds_beside_past_their_deadline_run_none_and_leave_the_bound_in_hand():
    inst, opts = _medium()
    cg = ColumnGeneration(inst, opts, _first_option_per_job(opts))
    cg.run(time.perf_counter() + 60, max_rounds=1)
    first = cg.bound()
    beside = BoundBeside(cg, time.perf_counter() - 1.0)
    got = beside.result()
    assert beside.rounds == 0 and got.value == first.value


def test_the_lp_stage_beyond_the_full_lp_size_converges_by_column_generation_under_the_wall_clock():
    inst, opts = _medium()
    P = dataclasses.replace(DEFAULT, lp_full_max_options=100)   # this request's LP counts as large
    got = _lp_stage(inst, opts, greedy(inst, opts), 60.0, P)
    full = lp_bound(inst, opts, time_limit_s=60)
    assert got.method == "lp" and abs(got.value - full.value) <= 1e-6 * abs(full.value)


def test_a_plan_whose_lp_stage_stopped_after_one_round_reports_the_bound_of_the_rounds_beside():
    data = generate_family("medium", 4)
    data["policy"].update(time_limit_s=6.0, deterministic=False)   # the LP stage takes 0.1 s of it here
    one_round = dataclasses.replace(DEFAULT, lp_first_min_jobs=1, lp_first_max_rounds=1, cut_beside=False)
    resp = plan(parsed(data), params=one_round)
    check(data, resp)
    phases = resp.stats.phases_s
    assert phases["lp_rounds"] == 1 and phases["lp_rounds_beside"] >= 1
    inst = compile_instance(parsed(data))
    full = lp_bound(inst, build_options(inst), time_limit_s=60)
    assert resp.bound <= full.value + 1e-6 * abs(full.value)  # the converged LP's, or the integer bound below it
    assert resp.stats.bound_method in ("lp", "quota_knapsack")


def test_waiting_for_the_round_beside_hands_over_its_primal_and_prices_or_nothing_by_the_deadline():
    inst, opts = _medium()
    cg = ColumnGeneration(inst, opts, _first_option_per_job(opts))
    cg.run(time.perf_counter() + 60, max_rounds=1)
    first_x = cg.last[1]
    beside = BoundBeside(cg, time.perf_counter() + 60)
    fresh = beside.await_round(1, time.perf_counter() + 60)
    beside.result()
    assert fresh is not None
    x, n, pool, quota, budget = fresh
    assert x.shape == first_x.shape and not np.array_equal(x, first_x)   # a later round's primal
    on = x > 1e-9
    assert np.all(n[on] >= opts.lo[on] * x[on] - 1e-6) and np.all(n[on] <= opts.hi[on] * x[on] + 1e-6)
    assert len(pool) == len(inst.pools) and pool.min() >= 0 and quota.min(initial=0.0) >= 0 and budget >= 0
    assert beside.fresh_primal(cg.stats["rounds"]) is None                # nothing newer than the last round
    none_coming = BoundBeside(cg, time.perf_counter() + 60)               # converged: the thread runs no round
    assert none_coming.await_round(cg.stats["rounds"], time.perf_counter() + 5) is None
    none_coming.result()


EXIT_SCRIPT = """
import json, sys, time
import numpy as np
from datasets.requests import generate_family
from models import parse_request_json
from placement.candidates import build_options
from placement.colgen import ColumnGeneration
from placement.instance import compile_instance
from placement.lp_beside import BoundBeside
inst = compile_instance(parse_request_json(json.dumps(generate_family("large", 8)).encode()))
opts = build_options(inst)
cg = ColumnGeneration(inst, opts, np.array([b[0] for b in opts.by_job if len(b)], dtype=np.int64))
cg.run(time.perf_counter() + 60, max_rounds=1)
beside = BoundBeside(cg, time.perf_counter() + 2)
time.sleep(0.2)
print("still running" if beside._thread.is_alive() else "done")
"""


def test_a_process_exiting_while_the_rounds_run_waits_for_them_rather_than_aborting():
    import subprocess
    import sys

    p = subprocess.run([sys.executable, "-c", EXIT_SCRIPT], check=False, capture_output=True, text=True, timeout=120,
                       cwd=str(pathlib.Path(__file__).resolve().parents[2]))
    assert p.stdout.strip() == "still running"   # the case this guards: HiGHS busy in the thread at exit
    assert p.returncode == 0, p.stderr[-500:]
