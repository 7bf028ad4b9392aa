"""The epoch loop with the simulated executor: invariants, windows, failures and determinism on fixtures."""

import math

import pytest

from datasets.attributes import to_job_specs
from datasets.canonical import load_canonical
from datasets.fleets import single_cluster_fleet, synthetic_fleet
from datasets.philly import load_philly
from datasets.rows import TraceJob
from datasets.synthetic import synthetic_trace
from replay.harness import ReplaySetup, Window, run_replay
from replay.outages import Outage, outage_schedule
from tests.support.invariants import check_invariants


def synthetic_specs(hours: float = 8, rate: float = 12, seed: int = 1):
    return to_job_specs(synthetic_trace(days=hours / 24, jobs_per_hour=rate, median_duration_s=1200, seed=seed))


@pytest.mark.parametrize("policy", ["fifo", "las"])
def test_baselines_keep_the_invariants_on_the_synthetic_trace(policy):
    specs = synthetic_specs()
    run = run_replay(specs, single_cluster_fleet(3, 8), ReplaySetup(scheduler=policy))
    check_invariants(run)
    assert {s.status for s in run.state.jobs.values()} == {"done"}
    assert len(run.state.jobs) == len(specs)


def test_cpsat_keeps_the_invariants_and_repeats_exactly():
    specs = synthetic_specs(hours=3, rate=10)
    fleet = single_cluster_fleet(2, 8)
    setup = ReplaySetup(scheduler="cpsat", time_limit_s=0.3)
    a = run_replay(specs, fleet, setup)
    check_invariants(a)
    assert {s.status for s in a.state.jobs.values()} == {"done"}
    b = run_replay(specs, fleet, setup)
    assert {j: s.finish_s for j, s in a.state.jobs.items()} == {j: s.finish_s for j, s in b.state.jobs.items()}


def test_philly_fixture_all_policies_finish_every_job(fixtures):
    specs = to_job_specs(load_philly(str(fixtures / "philly_small.csv")).rows)
    for policy in ("fifo", "las", "cpsat"):
        run = run_replay(specs, single_cluster_fleet(2, 8), ReplaySetup(scheduler=policy, time_limit_s=0.3))
        check_invariants(run)
        assert sorted(j for j, s in run.state.jobs.items() if s.status == "done") == ["0", "1", "2", "3", "4", "5"]


def test_fifo_strict_order_blocks_and_never_preempts():
    jobs = [TraceJob("big", 0, 1000, 16, "t"), TraceJob("first", 0, 3000, 8, "t"),
            TraceJob("huge", 100, 1000, 16, "t"), TraceJob("small", 200, 100, 1, "t")]
    # "big" (2 replicas of 8) and "first" share 2 nodes: big takes both; first waits; huge blocks small.
    specs = to_job_specs(jobs)
    run = run_replay(specs, single_cluster_fleet(2, 8), ReplaySetup(scheduler="fifo"))
    check_invariants(run)
    st = run.state.jobs
    assert sum(r.actions.get("preempt", 0) for r in run.records) == 0
    assert st["small"].first_start_s >= st["huge"].first_start_s
    assert st["huge"].first_start_s >= st["first"].first_start_s


def test_las_preempts_a_job_past_its_threshold_for_a_new_one():
    # "short" needs 8 x 300 = 2,400 GPU-seconds: below the 1 GPU-hour threshold all its life
    jobs = [TraceJob("long", 0, 20000, 8, "t"), TraceJob("short", 3600, 300, 8, "t")]
    run = run_replay(to_job_specs(jobs), single_cluster_fleet(1, 8), ReplaySetup(scheduler="las"))
    check_invariants(run)
    st = run.state.jobs
    assert st["long"].actions["preempt"] == 1
    assert st["short"].finish_s == pytest.approx(3600 + 30 + 300)
    assert st["long"].finish_s > st["short"].finish_s


def test_window_measures_only_its_jobs_and_runs_until_they_finish():
    jobs = [TraceJob(f"j{d}", d * 86400 + 10, 2 * 86400 if d == 4 else 600, 1, "t") for d in range(8)]
    run = run_replay(to_job_specs(jobs), single_cluster_fleet(1, 8), ReplaySetup(scheduler="fifo"),
                     Window(start_day=4, days=2, warmup_days=1))
    assert run.measured == {"j4", "j5"}
    assert set(run.state.jobs) == {"j3", "j4", "j5"}        # warm-up day 3; nothing at or after day 6 arrives
    assert run.state.jobs["j4"].status == "done"
    assert run.state.now_s >= run.state.jobs["j4"].finish_s
    check_invariants(run)


def test_a_job_no_pool_can_hold_is_rejected_not_waited_for():
    jobs = [TraceJob("ok", 0, 60, 8, "t"), TraceJob("toolarge", 0, 60, 24, "t")]   # 3 replicas of 8, min 1: fits
    jobs.append(TraceJob("wide", 0, 60, 3, "t", min_gpus=3, max_gpus=3))           # 3 x 1 device: fits
    jobs.append(TraceJob("nope", 0, 60, 16, "t", min_gpus=16, max_gpus=16))        # 2 nodes of 8: does not
    run = run_replay(to_job_specs(jobs), single_cluster_fleet(1, 8), ReplaySetup(scheduler="las"))
    st = run.state.jobs
    assert st["nope"].status == "rejected" and "no cluster holds 2 replica(s) of 8" in st["nope"].reject_reason
    assert {j for j, s in st.items() if s.status == "done"} == {"ok", "toolarge", "wide"}
    check_invariants(run)


@pytest.mark.parametrize("policy", ["fifo", "las", "cpsat"])
def test_region_outage_fails_jobs_over_and_keeps_invariants(policy):
    fleet = synthetic_fleet(regions=2, clusters_per_region=1, nodes_per_cluster=2, accelerators=("G",), seed=0)
    specs = synthetic_specs(hours=4, rate=6, seed=3)
    down = outage_schedule(fleet, [Outage("region:region-0", 3600.0, 3 * 3600.0)])
    run = run_replay(specs, fleet, ReplaySetup(scheduler=policy, time_limit_s=0.3, outages=down))
    check_invariants(run)
    region0 = {f"{g.prefix}{i}" for c in fleet.clusters if c.region == "region-0" for g in c.node_groups
               for i in range(g.count)}
    during = [r for r in run.records if 3600 <= r.t_s < 3 * 3600]
    assert during and all(r.down_nodes == len(region0) for r in during)
    up_capacity = sum(g.count * g.devices for c in fleet.clusters if c.region == "region-1" for g in c.node_groups)
    assert all(r.capacity_device_s == up_capacity * r.dt_s for r in during)
    assert {s.status for s in run.state.jobs.values()} == {"done"}


def test_canonical_fixture_with_types_and_regions(fixtures):
    rows = load_canonical(str(fixtures / "canonical_small.csv")).rows
    fleet = synthetic_fleet(regions=2, clusters_per_region=2, nodes_per_cluster=2, accelerators=("H100", "A100"),
                            seed=2)
    fleet = fleet.model_copy(update={"regions": [r.model_copy(update={"name": n}) for r, n in
                                                 zip(fleet.regions, ("us-east", "eu-west"))]})
    # rename the regions the canonical rows name, and the clusters' and links' references with them
    ren = {"region-0": "us-east", "region-1": "eu-west"}
    fleet = fleet.model_copy(update={
        "clusters": [c.model_copy(update={"region": ren[c.region]}) for c in fleet.clusters],
        "links": [lk.model_copy(update={"a": ren[lk.a], "b": ren[lk.b]}) for lk in fleet.links]})
    run = run_replay(to_job_specs(rows), fleet, ReplaySetup(scheduler="las"))
    check_invariants(run, speed_one=False)
    assert {s.status for s in run.state.jobs.values()} == {"done"}


def test_nodes_down_in_the_fleet_file_stay_down():
    fleet = single_cluster_fleet(2, 8).model_copy(update={"down_nodes": ["cluster-0-n1"]})
    specs = synthetic_specs(hours=2, rate=6, seed=9)
    run = run_replay(specs, fleet, ReplaySetup(scheduler="las"))
    check_invariants(run)
    # an epoch's capacity is the sum of its steps between backfill plans: equal up to float rounding
    assert all(math.isclose(r.capacity_device_s, 8 * r.dt_s, rel_tol=1e-12) for r in run.records)
    assert {s.status for s in run.state.jobs.values()} == {"done"}


def test_las_keeps_running_premium_jobs_as_the_contract_requires():
    jobs = [TraceJob("prem", 0, 20000, 8, "t", tier="premium"), TraceJob("new", 3600, 300, 8, "t", tier="standard")]
    run = run_replay(to_job_specs(jobs), single_cluster_fleet(1, 8), ReplaySetup(scheduler="las"))
    check_invariants(run)
    st = run.state.jobs
    assert st["prem"].actions["preempt"] == 0
    assert st["prem"].finish_s == pytest.approx(30 + 20000)
    assert st["new"].first_start_s >= st["prem"].finish_s
