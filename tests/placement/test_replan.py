"""Warm re-planning (placement/replan.py): a request that differs from the previous one by at most 1 % of
its jobs is answered from what the previous solve learned; everything else takes the full solve."""

from __future__ import annotations

import copy
import io
import json
import pickle
from dataclasses import replace

import numpy as np
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from datasets.churn import applied, next_epoch
from datasets.requests import generate
from placement import plan
from placement.candidates import build_options
from placement.instance import compile_instance
from placement.replan import ReplanParams, plan_warm
from tests.placement.test_bound_brute_force import brute_force_optimum, tiny_requests
from tests.support.requests import check, parsed


def _epochs(completions: int, arrivals: int, seed: int = 0) -> tuple[dict, object, dict]:
    """A 200-job request planned in full, its warm state, and the next epoch's request (the plan applied,
    `completions` running jobs gone, `arrivals` new ones)."""
    base = generate(800, 200, 2, seed=seed, time_limit_s=0.5)
    resp, warm = plan_warm(parsed(base))
    assert warm is not None and resp.stats.replan is None
    nxt = next_epoch(base, json.loads(resp.model_dump_json(by_alias=True)), completions, arrivals, seed)
    return base, warm, nxt


def test_one_percent_change_is_replanned_warm_and_valid_by_the_checker() -> None:
    _, warm, nxt = _epochs(completions=1, arrivals=1)
    resp, state = plan_warm(parsed(nxt), warm)
    assert resp.stats.engine == "replan"
    r = resp.stats.replan
    assert (r.arrivals, r.completions, r.changed, r.share, r.chain) == (1, 1, 0, 0.01, 1)
    assert state is not None and state.chain == 1
    check(nxt, resp)


def test_a_warm_replan_chains_from_the_state_it_returns() -> None:
    _, warm, nxt = _epochs(completions=1, arrivals=1)
    resp, state = plan_warm(parsed(nxt), warm)
    nxt2 = next_epoch(nxt, json.loads(resp.model_dump_json(by_alias=True)), 1, 1, seed=7)
    resp2, state2 = plan_warm(parsed(nxt2), state)
    assert resp2.stats.engine == "replan" and resp2.stats.replan.chain == 2 and state2.chain == 2
    check(nxt2, resp2)


def test_deterministic_plans_never_use_warm_state() -> None:
    _, warm, nxt = _epochs(completions=1, arrivals=1)
    nxt["policy"]["deterministic"] = True
    resp, state = plan_warm(parsed(nxt), warm)
    assert state is None and resp.stats.replan is None and resp.stats.engine != "replan"
    assert resp.assignments == plan(parsed(nxt)).assignments


def test_another_fleet_takes_the_full_solve() -> None:
    _, warm, nxt = _epochs(completions=1, arrivals=1)
    group = dict(nxt["fleet"]["clusters"][0]["node_groups"][0])
    nxt["fleet"]["clusters"][0]["node_groups"].append({**group, "prefix": "added-", "count": 1})   # one node more
    resp, state = plan_warm(parsed(nxt), warm)
    assert resp.stats.replan is None and resp.stats.engine != "replan"
    assert state is not None and state.chain == 0


def test_another_policy_takes_the_full_solve() -> None:
    _, warm, nxt = _epochs(completions=1, arrivals=1)
    nxt["policy"]["spread_penalty"] = 0.5
    resp, _ = plan_warm(parsed(nxt), warm)
    assert resp.stats.replan is None


def test_a_change_over_one_percent_takes_the_full_solve() -> None:
    _, warm, nxt = _epochs(completions=1, arrivals=2)    # 3 of 200 jobs: 1.5 %
    resp, state = plan_warm(parsed(nxt), warm)
    assert resp.stats.replan is None and resp.stats.engine != "replan"
    assert state is not None and state.chain == 0


def test_a_job_whose_attributes_changed_counts_as_changed() -> None:
    _, warm, nxt = _epochs(completions=0, arrivals=1)
    job = next(j for j in nxt["jobs"] if j.get("current"))
    job["priority"] = job.get("priority", 1.0) * 2
    resp, _ = plan_warm(parsed(nxt), warm)
    r = resp.stats.replan
    assert (r.arrivals, r.completions, r.changed, r.share) == (1, 0, 1, 0.01)
    check(nxt, resp)


def test_a_plan_not_yet_applied_is_carried_over_as_planned() -> None:
    base, warm, _ = _epochs(completions=0, arrivals=0)
    again = copy.deepcopy(base)   # the same request again: every job runs (or waits) as before
    resp, _ = plan_warm(parsed(again), warm)
    assert resp.stats.engine == "replan" and resp.stats.replan.changed == 0
    got = {a.job: (a.cluster, a.accelerator, dict(a.nodes)) for a in resp.assignments}
    kept = [j for j, a in warm.placed.items() if got.get(j) == (a.cluster, a.accelerator, dict(a.nodes))]
    assert len(kept) == resp.stats.replan.kept == len(warm.placed)
    check(again, resp)


def _pickled(state) -> tuple[bytes, dict[str, bytes]]:
    """The state's pickle with the fleet's memo (`Instance.fleet_derived`) left out, and each memo entry's
    pickle: the memo belongs to the fleet, and whichever request of that fleet first needs an entry (the
    plain-Python option lists of a small re-plan, say) adds it; what it holds already never changes."""
    memo = state.inst.fleet_derived
    out = io.BytesIO()
    pickler = pickle.Pickler(out)
    pickler.persistent_id = lambda obj: "fleet_derived" if obj is memo else None
    pickler.dump(state)
    return out.getvalue(), {k: pickle.dumps(v) for k, v in memo.items()}


def test_a_replan_leaves_the_state_it_was_given_as_it_was() -> None:
    _, warm, nxt = _epochs(completions=1, arrivals=1)
    before, memo = _pickled(warm)
    first, _ = plan_warm(parsed(nxt), warm)
    second, _ = plan_warm(parsed(nxt), warm)
    after, memo_after = _pickled(warm)
    assert after == before
    assert {k: memo_after[k] for k in memo} == memo
    assert first.assignments == second.assignments and first.objective == second.objective


@settings(max_examples=60, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(tiny_requests(), st.integers(0, 2**32 - 1))
def test_warm_bound_is_never_below_the_true_optimum(data: dict, seed: int) -> None:
    """At any non-negative prices (the previous solve's, or any other), the reported bound of a warm
    re-plan bounds every valid plan of the NEW request, and its plan is valid."""
    data["policy"]["deterministic"] = False
    resp0, warm = plan_warm(parsed(data))
    if warm is None:
        return   # infeasible: nothing learned
    rng = np.random.default_rng(seed)
    scale = float(rng.choice([0.0, 0.1, 1.0, 10.0, 100.0]))
    warm = replace(warm, pool_prices=rng.exponential(scale, len(warm.pool_prices)) if scale else warm.pool_prices,
                   quota_prices={k: float(rng.exponential(scale)) for k in warm.quota_prices},
                   budget_price=float(rng.exponential(scale)))
    nxt = next_epoch(data, json.loads(resp0.model_dump_json(by_alias=True)), 1, 1, seed % 1000)
    resp, _ = plan_warm(parsed(nxt), warm, replan_params=ReplanParams(max_share=1.0))
    best = brute_force_optimum(nxt)
    if resp.status == "infeasible":
        assert best is None
        return
    assert best is not None
    tol = 1e-6 * max(1.0, abs(best))
    assert resp.bound >= best - tol
    assert resp.objective <= best + tol
    check(nxt, resp)


def test_a_job_that_stopped_running_otherwise_than_planned_is_placed_again() -> None:
    _, warm, nxt = _epochs(completions=0, arrivals=1)
    job = next(j for j in nxt["jobs"] if j.get("current") and j.get("tier") != "premium")
    job["current"] = None    # it crashed: it waits now, where the plan had it running
    resp, _ = plan_warm(parsed(nxt), warm)
    r = resp.stats.replan
    assert (r.arrivals, r.changed, r.share) == (1, 1, 0.01)
    check(nxt, resp)


def _compiled(inst, opts) -> tuple[list, list, dict]:
    """An instance's jobs (every compiled field, the job as its JSON) and each job's options (as a set:
    a job's options come in the order its compile met their accelerator types, which a compile of a few
    jobs meets otherwise than a compile of all), comparable."""
    jobs = []
    for i in inst.jobs:
        d = {k: v for k, v in vars(i).items() if k not in ("job", "allowed")}
        jobs.append((d, i.job.model_dump(), None if i.allowed is None else i.allowed.tolist()))
    cols = ("pool", "keep", "lo", "hi", "unit", "coef", "dpr", "mig_gb")
    options = [sorted(tuple(getattr(opts, k)[o].item() for k in cols) for o in b.tolist()) for b in opts.by_job]
    assert all(opts.job[b].tolist() == [j] * len(b) for j, b in enumerate(opts.by_job))
    return jobs, options, dict(opts.no_option_reason)


def test_the_state_holds_the_request_compiled_as_the_plan_leaves_it() -> None:
    """What the next request holds once the control plane applied the plan (`datasets.churn.applied`) is
    compiled with the plan's answer, exactly as a cold compile of that request, after a full solve and
    after a warm re-plan: the first re-plan after a full solve, which found half a planet's jobs started
    or moved, no longer compiles them again."""
    base = generate(800, 200, 2, seed=4, time_limit_s=0.5)
    resp, warm = plan_warm(parsed(base))
    done = applied(base, json.loads(resp.model_dump_json(by_alias=True)))
    cold = compile_instance(parsed(done))
    assert _compiled(warm.inst, warm.opts) == _compiled(cold, build_options(cold))
    nxt = next_epoch(base, json.loads(resp.model_dump_json(by_alias=True)), 1, 1, seed=5)
    resp2, warm2 = plan_warm(parsed(nxt), warm)
    assert resp2.stats.engine == "replan"
    done2 = applied(nxt, json.loads(resp2.model_dump_json(by_alias=True)))
    cold2 = compile_instance(parsed(done2))
    assert _compiled(warm2.inst, warm2.opts) == _compiled(cold2, build_options(cold2))



def test_a_request_where_one_percent_is_less_than_one_job_is_planned_in_full_and_learns_nothing() -> None:
    # 30 jobs: only an identical request could be answered warm, so no state is kept to answer it
    data = generate(128, 30, 2, seed=1, time_limit_s=0.5)
    resp, state = plan_warm(parsed(data))
    check(data, resp)
    assert state is None and resp.stats.replan is None and resp.stats.engine != "replan"
    assert plan_warm(parsed(data), state)[1] is None
