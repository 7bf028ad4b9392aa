"""The whole-node-cut integer model in a child process beside the search (placement/cut_beside.py): the same model as the
bench's `placement.exact.whole_node_bound`, and on a medium family request where kept jobs hold the
nodes a gang would need it is the bound the plan reports, a point tighter than the engine's own."""

from __future__ import annotations

import dataclasses
import functools
import time

import numpy as np
import pytest

from datasets.requests import generate_family
from placement import cut_beside, plan
from placement.bound import lp_bound
from placement.candidates import build_options
from placement.cut_beside import (
    CutBeside,
    _SharedSolution,
    can_run_beside,
    cut_lp,
    cut_model,
    solution_arrays,
    solve_cut_model,
)
from placement.exact import whole_node_bound
from placement.instance import compile_instance
from placement.lp_beside import cores
from placement.params import DEFAULT
from placement.plan import cut_beside_max_options, cut_beside_presolve
from tests.support.requests import check, parsed

SEED = 29   # medium family: the pooled bound offers a rigid 56-device gang nodes that kept jobs hold


def _medium():
    data = generate_family("medium", SEED)
    inst = compile_instance(parsed(data))
    return data, inst, build_options(inst)


@functools.cache
def _solved():
    """The medium request's instance, options, cut model and that model solved to the end (4-6 s: solved once
    for the module; nothing here writes to them)."""
    _, inst, opts = _medium()
    model = cut_model(inst, opts)
    return inst, opts, model, solve_cut_model(inst, opts, model, 60)


def test_the_model_solved_to_the_end_is_the_bench_model():
    inst, opts, _, got = _solved()
    ref = whole_node_bound(inst, opts, seconds=60)
    assert got.status == ref.status == "Optimal"
    assert got.bound == pytest.approx(ref.bound, rel=1e-7)
    assert got.objective == pytest.approx(ref.objective, rel=1e-6)


@pytest.mark.parametrize("options", [{"feasibility_jump": False}, {"presolve": False},
                                     {"feasibility_jump": False, "presolve": False}])
def test_without_the_feasibility_jump_or_the_presolve_the_solve_reaches_the_same_optimum(options):
    inst, opts, model, full = _solved()
    without = solve_cut_model(inst, opts, model, 60, **options)
    assert without.status == full.status == "Optimal"
    assert without.objective == pytest.approx(full.objective, rel=1e-6)
    assert without.bound == pytest.approx(full.bound, rel=1e-6)


def test_a_highs_option_this_highs_does_not_know_is_an_error_not_a_warning():
    _, inst, opts = _medium()
    h, _ = cut_beside._loaded(cut_model(inst, opts), 1.0, integer=True)
    with pytest.raises(RuntimeError, match="no_such_option"):
        cut_beside._set(h, "no_such_option", False)


def test_a_solve_cut_short_still_bounds_the_optimum_from_above():
    """Cut short at the first limit that leaves it unfinished with a bound in hand: 0.2 s does on an idle
    machine, a loaded one needs longer before HiGHS' root LP gives any bound (no bound is not a wrong one)."""
    inst, opts, model, full = _solved()
    assert full.status == "Optimal"
    shorts = []
    for seconds in (0.2, 0.4, 0.8, 1.6):
        short = solve_cut_model(inst, opts, model, seconds)
        if short.status == "Time limit reached" and short.bound is not None:
            shorts.append(short)
    assert shorts, "no limit left the solve unfinished with a bound"
    assert all(s.bound >= full.objective for s in shorts)


def test_the_child_reports_its_bound_and_is_stopped_when_the_plan_needs_it():
    """The child may run to 30 s; the plan asks at 2 s (its first bound comes at about 0.3 s on an idle
    machine, the whole solve takes 2.5 s), and gets the bound reported by then at once."""
    inst, opts, _, full = _solved()
    beside = CutBeside(inst, opts, time.perf_counter() + 30)
    needed = time.perf_counter() + 2.0
    got = beside.result(needed)
    assert time.perf_counter() <= needed + 0.5
    assert got is not None and got >= full.objective
    assert beside._pid not in cut_beside._RUNNING


def test_a_child_stopped_before_any_report_leaves_no_bound():
    _, inst, opts = _medium()
    beside = CutBeside(inst, opts, time.perf_counter() + 30)
    assert beside.result(time.perf_counter()) is None


@pytest.mark.skipif(cores() < 2 or not can_run_beside(), reason="the model runs only beside the search, on a second core")
def test_a_medium_plan_reports_the_cut_models_bound_where_it_is_tighter():
    data, _, _ = _medium()
    data["policy"]["time_limit_s"] = 3.0   # (1 s is the benchmark's limit; a slow CI machine needs longer for the root)
    resp = plan(parsed(data))
    check(data, resp)
    knapsack = plan(parsed(data), dataclasses.replace(DEFAULT, cut_beside=False))
    assert resp.stats.bound_method == "whole_node_mip"
    assert resp.bound < knapsack.bound - 0.005 * knapsack.bound
    assert resp.gap < 0.01


def _columns(model, opts, choice) -> np.ndarray:
    """The cut model's columns at a choice (the kept-node columns from the keeps)."""
    v = np.zeros(len(model.cost))
    for o, n in choice.values():
        v[o] = 1
        if model.n_col_of[o] >= 0:
            v[model.n_col_of[o]] = n
    for c, o in zip(model.z_col, model.z_opt):
        v[c] = max(v[c], v[o])
    return v


def test_the_childs_solution_is_one_option_per_job_at_its_model_value():
    inst, opts, model, full = _solved()
    beside = CutBeside(inst, opts, time.perf_counter() + 1.0, model)   # its first solution came at 0.15 s here
    beside.result(time.perf_counter() + 1.1)
    value, choice = beside.solution()
    assert all(int(opts.job[o]) == j and opts.lo[o] <= n <= opts.hi[o] or opts.keep[o]
               for j, (o, n) in choice.items())
    assert all(j in choice for j in range(len(inst.jobs)) if inst.jobs[j].protected)
    assert float(-(model.cost @ _columns(model, opts, choice)) + model.constant) == pytest.approx(value, rel=1e-9)
    assert value <= full.objective + 1e-6 * abs(full.objective)


def test_a_solution_cut_off_while_being_written_is_not_read_the_one_before_is():
    inst, opts, model, full = _solved()
    value, option, replicas = solution_arrays(inst, opts, model, _columns(model, opts, full.choice))
    shared = _SharedSolution(len(inst.jobs))
    assert shared.read() is None
    shared.write(value, option, replicas)
    shared.write(value - 1.0, option, replicas)
    assert shared.read()[0] == value - 1.0
    shared._head[1 + 0] += 1     # the next write (into the first slot again) started and was killed
    shared._head[0] = 1          # ... even had it named that slot already
    got = shared.read()
    assert got[0] == value - 1.0 and (got[1] == option).all() and (got[2] == replicas).all()



@pytest.mark.skipif(cores() < 2 or not can_run_beside(), reason="the model runs only beside the search, on a second core")
def test_a_plan_takes_the_childs_solution_where_it_beats_the_search():
    data = generate_family("medium", 6)    # the cut model's root ends with a plan 0.6 % above the 1 s search's
    data["policy"]["time_limit_s"] = 6.0   # 3 s: a machine twice as slow missed it once
    weak = dataclasses.replace(DEFAULT, gang_moves_share=0.0, option_moves_share=0.0, option_moves_fill=False,
                               mip_steps_share=0.0, lns_early_steps=0, lns_step_s=0.01)   # CP-SAT steps alone
    resp = plan(parsed(data), weak)
    check(data, resp)
    assert resp.stats.engine == "whole_node_mip"


def test_a_longer_limit_lets_it_run_on_more_options():
    assert cut_beside_max_options(DEFAULT, 0.1) == cut_beside_max_options(DEFAULT, 0.5) == 8_000
    assert cut_beside_max_options(DEFAULT, 1.0) == 12_000
    assert cut_beside_max_options(DEFAULT, 2.5) == 30_000
    assert cut_beside_max_options(DEFAULT, 5.0) == cut_beside_max_options(DEFAULT, 60.0) == 40_000


def test_the_child_presolves_a_model_whose_root_ends_early_in_its_time_and_no_other():
    assert cut_beside_presolve(DEFAULT, 10_749, 0.85)        # apart sparse-8: its root ends at 0.07 s
    assert cut_beside_presolve(DEFAULT, 21_710, 0.84)        # medium seed 0: at 0.5 s, with a tighter bound
    assert not cut_beside_presolve(DEFAULT, 43_202, 0.85)    # medium seed 30: at 0.38 s, too late beside a busy core
    assert cut_beside_presolve(DEFAULT, 43_202, 4.5)         # ... in a 5 s plan's time
    assert cut_beside_presolve(dataclasses.replace(DEFAULT, cut_beside_presolve=True), 10**9, 0.1)


def _fourteen_thousand_options() -> dict:
    """Medium family seed 0 with three single-device copies of each job besides it: 2,400 jobs, 14,239 options."""
    data = generate_family("medium", 0)
    copies = [dict(j, id=f"{j['id']}-one{k}", current=None, replicas={"min": 1, "max": 1}, devices_per_replica=1)
              for j in data["jobs"] for k in range(3)]
    data["jobs"] += copies
    return data


@pytest.mark.skipif(cores() < 2 or not can_run_beside(), reason="the model runs only beside the search, on a second core")
@pytest.mark.parametrize("limit, started", [(1.0, False), (2.5, True)])
def test_the_child_starts_above_12000_options_only_where_the_limit_is_longer(limit, started):
    data = _fourteen_thousand_options()
    data["policy"]["time_limit_s"] = limit
    inst = compile_instance(parsed(data))
    assert 12_000 < len(build_options(inst)) <= 30_000
    resp = plan(parsed(data))
    check(data, resp)
    assert ("cut_model" in resp.stats.phases_s) is started


def test_deterministic_plans_never_start_it():
    data, _, _ = _medium()
    data["policy"].update(time_limit_s=1.0, deterministic=True)
    resp = plan(parsed(data))
    assert "cut_model" not in resp.stats.phases_s and resp.stats.bound_method != "whole_node_mip"


def test_the_cut_lp_lies_between_the_cut_models_optimum_and_the_pool_lp():
    inst, opts, model, best = _solved()
    got = cut_lp(inst, opts, model, 60)
    pool = lp_bound(inst, opts, time_limit_s=60)
    assert best.objective <= got.value <= pool.value + 1e-6 * abs(pool.value)
    assert got.value < pool.value - 0.003 * pool.value   # seed 29: the cuts take the gang's offer away
    assert (got.prices >= 0).all() and (got.quota_prices >= 0).all()
    assert got.x.shape == got.n.shape == (len(opts),)


EXIT_SCRIPT = """
import time
from datasets.requests import generate_family
from placement.candidates import build_options
from placement.cut_beside import CutBeside
from placement.instance import compile_instance
from tests.support.requests import parsed
inst = compile_instance(parsed(generate_family("medium", 29)))
beside = CutBeside(inst, build_options(inst), time.perf_counter() + 60)
print(beside._pid)
"""


@pytest.mark.skipif(not can_run_beside(), reason="fork")
def test_a_child_the_plan_never_asked_is_stopped_when_the_process_exits():
    import os
    import pathlib
    import subprocess
    import sys

    p = subprocess.run([sys.executable, "-c", EXIT_SCRIPT], check=False, capture_output=True, text=True,
                       timeout=60, cwd=str(pathlib.Path(__file__).resolve().parents[2]))
    assert p.returncode == 0, p.stderr[-500:]
    with pytest.raises(ProcessLookupError):
        os.kill(int(p.stdout.strip()), 0)


@pytest.mark.skipif(not can_run_beside(), reason="fork")
def test_a_child_whose_plan_dropped_it_unasked_is_stopped_at_once():
    import gc
    import os

    _, inst, opts = _medium()
    beside = CutBeside(inst, opts, time.perf_counter() + 60)
    pid, fd = beside._pid, beside._fd
    del beside
    gc.collect()
    with pytest.raises(OSError):
        os.fstat(fd)                       # its pipe is closed
    deadline = time.perf_counter() + 5
    while time.perf_counter() < deadline:
        try:
            done, _ = os.waitpid(pid, os.WNOHANG)
        except ChildProcessError:          # reaped already (the next start reaps what has exited)
            break
        if done:
            break
        time.sleep(0.05)
    else:
        pytest.fail("the child still runs")


def test_replicas_too_big_for_the_small_nodes_of_a_pool_count_against_its_big_nodes_slots():
    # one pool of 16 devices, one node of 8 and four of 2: replicas of 4 fit twice (on the 8), not four times,
    # so of two jobs that may each take two, only the one worth more runs, on both
    from placement.cut_beside import cut_model, solve_cut_model
    from tests.support.requests import cluster, fleet, job, request

    data = request(fleet(cluster("c", "us", ("big-", 1, "H100", 8), ("small-", 4, "H100", 2))),
                   [job("g", 1, 2, devices_per_replica=4), job("h", 1, 2, {"H100": 2.0}, devices_per_replica=4)])
    inst = compile_instance(parsed(data))
    opts = build_options(inst)
    res = solve_cut_model(inst, opts, cut_model(inst, opts), 10.0)
    assert res.status == "Optimal"
    assert {inst.jobs[j].job.id: r for j, (_, r) in res.choice.items()} == {"h": 2}
    resp = plan(parsed(data))
    check(data, resp)
    assert res.bound == pytest.approx(resp.objective, rel=1e-5)
