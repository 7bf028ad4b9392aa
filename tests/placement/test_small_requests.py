"""Small requests answer fast (issue 10) without changing what they answer: a few subgradient steps
prove the greedy plan where they can and the LP is then skipped; the greedy planner's subgradient
stops once it proves its plan; a job with a few options is ranked in scalar arithmetic, to the same
order as the vectorised ranking; the fleet's arrays are built once per fleet and shared read-only."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest

import placement.greedy as greedy_module
from datasets.requests import generate, generate_family
from models import PlanResponse, parse_request
from placement import greedy_plan, plan
from placement.bound import lagrangian_bound, lp_bound
from placement.candidates import build_options
from placement.greedy import greedy
from placement.instance import compile_instance
from placement.score import score
from tests.support.requests import check

EXAMPLE = Path(__file__).resolve().parents[2] / "examples" / "two-regions.json"


def _planned(devices: int, jobs: int, regions: int, seed: int, mode: str | None = None) -> PlanResponse:
    """A generated request planned deterministically (5 s limit), its plan held to the checker."""
    data = generate(devices=devices, jobs=jobs, regions=regions, seed=seed, time_limit_s=5.0)
    data["policy"]["deterministic"] = True
    if mode is not None:
        data["policy"]["mode"] = mode
    resp = plan(parse_request(data))
    check(data, resp)
    return resp


def two_regions() -> dict:
    return json.loads(EXAMPLE.read_text())


def test_two_regions_is_proven_optimal_by_the_subgradient_without_the_lp() -> None:
    data = two_regions()
    resp = plan(parse_request(data))
    check(data, resp)
    assert resp.status == "optimal"
    assert resp.objective == pytest.approx(1326.4595, abs=1e-9)
    assert resp.gap == 0.0
    assert resp.stats.engine == "greedy"
    assert resp.stats.bound_method == "lagrangian"
    assert "lp" not in resp.stats.phases_s and "bound" in resp.stats.phases_s
    # the LP, which no longer runs, agrees: the plan is within its optimality tolerance of it
    inst = compile_instance(parse_request(data))
    lp = lp_bound(inst, build_options(inst), time_limit_s=5.0)
    assert lp.value == pytest.approx(resp.objective, rel=1e-6)


def test_a_plan_the_first_steps_cannot_prove_still_gets_the_lp() -> None:
    resp = _planned(64, 12, 2, seed=1)
    assert resp.status == "optimal"
    assert "lp" in resp.stats.phases_s


def test_the_greedy_planners_subgradient_stops_once_it_proves_the_plan() -> None:
    data = two_regions()
    inst = compile_instance(parse_request(data))
    opts = build_options(inst)
    target = score(inst, greedy(inst, opts).placed_map()).objective
    proven = lagrangian_bound(inst, opts, target=target, max_iter=200, seconds=1e9, proven_gap=1e-6)
    full = lagrangian_bound(inst, opts, target=target, max_iter=200, seconds=1e9)
    assert target <= proven.value <= target * (1 + 1e-6)
    assert full.value <= proven.value
    resp = greedy_plan(parse_request(data))
    check(data, resp)
    assert resp.status == "optimal"
    assert resp.gap == 0.0
    assert "greedy_priced" not in resp.stats.phases_s   # nothing left to improve once proven


def _requests() -> list[dict]:
    out = [generate(devices=48 + 16 * (s % 5), jobs=6 + s % 15, regions=1 + s % 3, seed=s, time_limit_s=1.0)
           for s in range(16)]
    for s in range(8):   # v1.1: every other job limited to even counts (and its minimum)
        r = generate(devices=64 + 16 * (s % 3), jobs=10 + s, regions=1 + s % 2, seed=100 + s, time_limit_s=1.0)
        for k, jb in enumerate(r["jobs"]):
            lo, hi = jb["replicas"]["min"], jb["replicas"]["max"]
            if k % 2 == 0:
                jb["replicas"]["allowed"] = [x for x in range(lo, hi + 1) if x % 2 == 0 or x == lo]
        out.append(r)
    out.append(generate_family("medium", 3, time_limit_s=1.0))
    out.append(two_regions())
    return out


def _greedy_plans(inst, opts) -> list:
    plans = []
    for prices in (None, np.linspace(0.0, 3.0, len(inst.pools))):
        pk = greedy(inst, opts, prices)
        plans.append((sorted(pk.choice.items()), sorted((j, sorted(m.items())) for j, m in pk.nodes.items())))
    return plans


def test_scalar_ranking_of_a_few_options_places_exactly_as_the_vectorised_one(monkeypatch) -> None:
    compiled = []
    for data in _requests():
        inst = compile_instance(parse_request(data))
        compiled.append((inst, build_options(inst)))
    scalar = [_greedy_plans(inst, opts) for inst, opts in compiled]
    monkeypatch.setattr(greedy_module, "SMALL_OPTIONS", 0)   # every job through the vectorised ranking
    vectorised = [_greedy_plans(inst, opts) for inst, opts in compiled]
    assert scalar == vectorised
    assert any(len(opts.by_job[j]) > 16 for _, opts in compiled for j in range(len(opts.by_job)))


def test_requests_of_one_fleet_share_its_arrays_read_only() -> None:
    a, b = two_regions(), two_regions()
    b["jobs"][0]["priority"] = 1.5
    ia, ib = compile_instance(parse_request(a)), compile_instance(parse_request(b))
    assert ia.node_devices is ib.node_devices and ia.pools is ib.pools
    assert ia.fleet_derived is ib.fleet_derived
    with pytest.raises(ValueError):
        ia.node_up[0] = False
    c = two_regions()
    c["fleet"]["down_nodes"] = []
    ic = compile_instance(parse_request(c))
    assert ic.node_devices is not ia.node_devices
    assert bool(ic.node_up[ic.node_index["use-b-a100-1"]]) and not bool(ia.node_up[ia.node_index["use-b-a100-1"]])
    assert ic.pools[ic.pool_of[("use-b", "A100")]].capacity == 16
    assert ia.pools[ia.pool_of[("use-b", "A100")]].capacity == 8


def test_a_tiny_request_the_pool_bounds_leave_open_is_proven_by_the_exact_node_model() -> None:
    # six jobs on 32 devices: the pool-level bounds stay 0.18 % above the plan, and the search used to run
    # the whole limit; the node-level model proves the plan optimal
    first = _planned(32, 6, 1, seed=2)
    assert first.status == "optimal"
    assert first.stats.bound_method == "node_milp"
    assert first.objective == pytest.approx(527.6134264426668, rel=1e-12)
    assert first.objective <= first.bound <= first.objective * (1 + 1e-6)
    assert "exact" in first.stats.phases_s and "lns" not in first.stats.phases_s
    again = _planned(32, 6, 1, seed=2)
    assert again.model_dump(exclude={"solve_s", "stats"}) == first.model_dump(exclude={"solve_s", "stats"})


def test_the_exact_node_model_stays_off_the_path_of_requests_past_its_size() -> None:
    from placement.params import DEFAULT
    from placement.plan import _node_pairs

    inst = compile_instance(parse_request(generate_family("medium", 3, time_limit_s=1.0)))
    assert _node_pairs(inst, build_options(inst)) > DEFAULT.exact_max_node_vars
    small = compile_instance(parse_request(two_regions()))
    # 10 change options (2 keep options) over their pools: 2 + 1 + 1 + 4 + 4 + 1 + 4 + 1 + 2 + 4 up nodes
    assert _node_pairs(small, build_options(small)) == 24


def test_a_backfill_plan_never_runs_the_exact_node_model() -> None:
    # the request the exact model proves above, as a backfill plan: answered between epochs, it keeps to
    # the pool-level stages (the same plan, not proven), and the next full plan reconsiders it
    response = _planned(32, 6, 1, seed=2, mode="backfill")
    assert "exact" not in response.stats.phases_s
    assert response.stats.bound_method != "node_milp"
    assert response.objective == pytest.approx(527.6134264426668, rel=1e-12)
