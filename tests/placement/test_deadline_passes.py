"""Passes that stop at a deadline with a valid plan (the LP rounding's packing, the greedy), and a
time limit counted from when the caller received the request."""

from __future__ import annotations

import time

from datasets.requests import generate_family
from placement import greedy_plan, plan
from placement.candidates import build_options
from placement.greedy import greedy, option_gains
from placement.instance import compile_instance
from placement.realize import realize
from placement.rounding import pool_greedy
from placement.score import score
from tests.support.requests import check, parsed


def _holds(inst, pk) -> None:
    assert (pk.free >= 0).all()
    for k, used in pk.quota_used.items():
        assert used <= inst.quotas[k]
    assert all(i.index in pk.choice for i in inst.jobs if i.protected)


def test_packing_past_its_deadline_places_the_protected_jobs_and_stops():
    inst = compile_instance(parsed(generate_family("medium", 2)))
    opts = build_options(inst)
    choice = pool_greedy(inst, opts, option_gains(inst, opts, None)[0])
    full = realize(inst, opts, choice)
    cut = realize(inst, opts, choice, deadline=time.perf_counter() - 1.0)
    _holds(inst, full)
    _holds(inst, cut)
    assert len(cut.choice) < len(full.choice)
    assert score(inst, cut.placed_map()).objective <= score(inst, full.placed_map()).objective


def test_the_greedy_past_its_deadline_places_the_protected_jobs_and_stops():
    inst = compile_instance(parsed(generate_family("medium", 2)))
    opts = build_options(inst)
    cut = greedy(inst, opts, deadline=time.perf_counter() - 1.0)
    _holds(inst, cut)
    assert len(cut.choice) < len(greedy(inst, opts).choice)


def test_the_limit_counts_from_when_the_request_was_received():
    data = generate_family("medium", 0)
    data["policy"].update(time_limit_s=1.0, deterministic=False)
    req = parsed(data)
    received = time.perf_counter() - 0.4   # as if parsing had taken 0.4 s
    resp = plan(req, started=received)
    check(data, resp)
    assert resp.stats.phases_s["parse"] >= 0.4   # reported as a phase of its own
    assert resp.solve_s >= 0.4                    # and counted in the plan's seconds


def test_a_request_whose_limit_was_spent_before_the_engine_got_it_gets_the_greedy_plan():
    # received 5 s ago with a 1 s limit (a slow parse, a long queue): the engine answers with its first
    # valid plan, the greedy's, and starts nothing after it (no LP, no CP-SAT, no search)
    data = generate_family("medium", 0)
    data["policy"].update(time_limit_s=1.0, deterministic=False)
    resp = plan(parsed(data), started=time.perf_counter() - 5.0)
    check(data, resp)
    first = greedy_plan(parsed(data))
    assert (resp.stats.engine, resp.status) == ("greedy", "fallback")
    assert resp.objective == first.objective
    assert resp.assignments == first.assignments
    assert not {"lp", "cpsat", "exact", "lns"} & set(resp.stats.phases_s)
