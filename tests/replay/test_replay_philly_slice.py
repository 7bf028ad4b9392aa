"""The invariants on a small slice of the real Philly trace (read from ../shared/traces, never copied)."""


import pytest

from datasets import load_trace, to_job_specs
from datasets.fleets import single_cluster_fleet
from replay.harness import ReplaySetup, Window, run_replay
from replay.metrics import summarize
from tests.support import checker
from tests.support.invariants import check_invariants

SHARED_TRACES = checker.TRACES


@pytest.fixture(scope="module")
def philly_specs(request):
    path = SHARED_TRACES / "philly_jobs.csv"
    if not path.exists():
        pytest.skip(f"the shared traces are not at {SHARED_TRACES}")
    return to_job_specs(load_trace(str(path), "philly").rows)


@pytest.mark.parametrize("policy", ["fifo", "las"])
def test_baselines_on_a_philly_slice(philly_specs, policy):
    window = Window(start_day=30.5, days=0.05, warmup_days=0.05)   # ~360 measured jobs
    run = run_replay(philly_specs, single_cluster_fleet(6, 8), ReplaySetup(scheduler=policy, max_days=1.0), window)
    assert len(run.measured) > 100
    check_invariants(run)
    done = sum(1 for j in run.measured if run.state.jobs[j].status == "done")
    assert done > 0.8 * len(run.measured)


def test_cpsat_finishes_a_philly_slice_and_meets_the_premium_target(philly_specs):
    window = Window(start_day=30.7, days=0.01, warmup_days=0.005)   # ~120 measured jobs
    setup = ReplaySetup(scheduler="cpsat", time_limit_s=0.3, max_days=0.15)
    run = run_replay(philly_specs, single_cluster_fleet(2, 8), setup, window)
    assert len(run.measured) > 100
    check_invariants(run)
    # every measured job done, and the replay ended on that (not at its safety stop)
    assert all(run.state.jobs[j].status == "done" for j in run.measured)
    assert run.state.now_s < run.measure_until_s + setup.max_days * 86400.0
    # what the planner is for: premium jobs reach their SLA target (tier weights in the objective, the
    # controller's risk boost); FIFO and LAS reach 0 % for premium on this slice
    summary = summarize(run, wall_s=0.0)
    assert summary["jct_by_tier"]["premium"]["completed"] >= 1
    assert summary["sla_attainment"]["premium"] >= setup.sla_targets["premium"]
