"""The loop acting on events: between epochs a backfill plan starts arrivals and waiting jobs on freed
devices (after the batching window), in continuous time, paying the contract's start pause; without a
window the loop is the epoch grid alone."""

import json

import pytest

from datasets.attributes import to_job_specs
from datasets.fleets import single_cluster_fleet
from datasets.synthetic import synthetic_trace
from executor.loop import Arrival, LoopConfig, run_loop
from executor.schedulers import make_scheduler
from executor.schedulers.cpsat import CpsatScheduler
from executor.sim import SimExecutor
from models import Job, Policy, Replicas
from replay.harness import ReplaySetup, run_replay
from tests.support import checker
from tests.support.invariants import check_invariants

ONE_DEVICE = single_cluster_fleet(1, 1)
POLICY = Policy(restart_overhead_s=30.0, deterministic=True, time_limit_s=0.5)   # a start pauses 30 s (no checkpoint)


def arrival(jid: str, submit_s: float, work: float) -> Arrival:
    job = Job(id=jid, replicas=Replicas(min=1, max=1), speed={"GPU": 1.0}, checkpoint_gb=0.0)
    return Arrival(submit_s, job, work)


def replay(arrivals, policy: str, window: float | None, scheduler=None, fit_window: float | None = 0.0):
    ex = SimExecutor({a.job.id: a.work for a in arrivals})
    config = LoopConfig(fleet=ONE_DEVICE, epoch_s=300.0, policy=POLICY, start_s=0.0, backfill_window_s=window,
                        backfill_fit_window_s=fit_window)
    return run_loop(ex, arrivals, scheduler or make_scheduler(policy), config)


@pytest.mark.parametrize("policy", ["fifo", "las", "cpsat"])
def test_an_arrival_that_fits_starts_at_once_and_pays_its_start_pause(policy):
    st = replay([arrival("a", 100.0, 600.0)], policy, window=10.0)
    a = st.jobs["a"]
    assert a.first_start_s == 100.0
    assert a.finish_s == 100.0 + 30.0 + 600.0
    assert a.wait_s == 0.0


@pytest.mark.parametrize("policy", ["fifo", "las", "cpsat"])
def test_batching_every_event_starts_an_arrival_one_window_later(policy):
    st = replay([arrival("a", 100.0, 600.0)], policy, window=10.0, fit_window=None)
    a = st.jobs["a"]
    assert a.first_start_s == 110.0
    assert a.finish_s == 110.0 + 30.0 + 600.0
    assert a.wait_s == 10.0


@pytest.mark.parametrize("policy", ["fifo", "las", "cpsat"])
def test_without_a_window_the_arrival_waits_for_the_epoch_boundary(policy):
    st = replay([arrival("a", 100.0, 600.0)], policy, window=None)
    assert st.jobs["a"].first_start_s == 300.0
    assert st.jobs["a"].finish_s == 300.0 + 30.0 + 600.0


@pytest.mark.parametrize("policy", ["fifo", "las", "cpsat"])
def test_a_waiting_job_starts_on_the_devices_a_completion_frees_at_once(policy):
    st = replay([arrival("a", 0.0, 100.0), arrival("b", 10.0, 100.0)], policy, window=10.0)
    assert st.jobs["a"].finish_s == 130.0
    b = st.jobs["b"]
    assert b.first_start_s == 130.0            # a finished at 130 and b, the only job waiting, fits there
    assert b.finish_s == 130.0 + 30.0 + 100.0
    assert b.wait_s == 120.0


@pytest.mark.parametrize("policy", ["fifo", "las", "cpsat"])
def test_when_not_every_waiting_job_fits_the_batch_closes_one_window_later(policy):
    st = replay([arrival("a", 0.0, 100.0), arrival("b", 10.0, 100.0), arrival("c", 20.0, 100.0)], policy,
                window=10.0)
    assert st.jobs["a"].finish_s == 130.0
    started = sorted((st.jobs[j].first_start_s, j) for j in ("b", "c"))
    assert started[0][0] == 140.0              # two wait for the one device a freed: a batch, 10 s
    assert started[1][0] == 140.0 + 30.0 + 100.0   # then the last one alone fits the device freed: at once


@pytest.mark.parametrize("policy", ["fifo", "las", "cpsat"])
def test_arrivals_that_fit_are_batched_over_the_short_fit_window(policy):
    arrivals = [arrival("a", 100.0, 600.0), arrival("b", 103.0, 600.0)]
    ex = SimExecutor({a.job.id: a.work for a in arrivals})
    config = LoopConfig(fleet=single_cluster_fleet(1, 2), epoch_s=300.0, policy=POLICY, start_s=0.0,
                        backfill_window_s=30.0, backfill_fit_window_s=5.0)
    records = []
    st = run_loop(ex, arrivals, make_scheduler(policy), config, observers=[lambda rec, _st: records.append(rec)])
    assert st.jobs["a"].first_start_s == st.jobs["b"].first_start_s == 105.0   # one plan, 5 s after a came
    assert sum(len(r.backfill_s) for r in records) == 1


def test_a_pause_longer_than_a_step_carries_on():
    # c arrives 15 s into a's start pause and cannot fit: the step ends inside the pause, which carries on.
    st = replay([arrival("a", 100.0, 600.0), arrival("c", 115.0, 50.0)], "fifo", window=10.0)
    assert st.jobs["a"].finish_s == 100.0 + 30.0 + 600.0
    assert st.jobs["c"].first_start_s == 730.0
    assert st.jobs["c"].finish_s == 730.0 + 30.0 + 50.0


class Capture(CpsatScheduler):
    """The real cpsat scheduler, keeping every request it was asked to plan."""

    def __init__(self):
        super().__init__(replan_every=3, fast_path=True)
        self.requests = []
        self.responses = []

    def decide(self, request, state):
        resp = super().decide(request, state)
        self.requests.append(request.model_copy(deep=True))
        self.responses.append(resp)
        return resp


def test_backfill_requests_carry_the_epoch_s_and_their_plans_pass_the_independent_checker(monkeypatch):
    pc = checker.require()
    cap = Capture()
    monkeypatch.setattr("replay.harness.make_scheduler", lambda name, **kw: cap)
    specs = to_job_specs(synthetic_trace(days=0.25, jobs_per_hour=24, median_duration_s=900, seed=3))
    run = run_replay(specs, single_cluster_fleet(3, 8), ReplaySetup(scheduler="cpsat", time_limit_s=0.3,
                                                                     backfill_window_s=30.0))
    check_invariants(run)
    backfills = [(q, r) for q, r in zip(cap.requests, cap.responses, strict=True) if q.policy.mode == "backfill"]
    assert len(backfills) > 10 and len(backfills) < len(cap.requests)
    assert {q.epoch_s for q in cap.requests} == {300.0}
    for q, r in backfills:
        world = pc.World(json.loads(q.model_dump_json()))
        viol, _, _, _ = pc.score(world, [a.model_dump() for a in r.assignments])
        assert viol == []
        for jid in pc.backfill_keep(world):
            assert jid not in {a.job for a in r.actions}


@pytest.mark.parametrize("policy", ["fifo", "las", "cpsat"])
def test_replays_with_backfill_keep_the_invariants(policy):
    specs = to_job_specs(synthetic_trace(days=0.3, jobs_per_hour=16, median_duration_s=1200, seed=5))
    on = run_replay(specs, single_cluster_fleet(2, 8), ReplaySetup(scheduler=policy, time_limit_s=0.3,
                                                                   backfill_window_s=20.0))
    check_invariants(on)
    assert {s.status for s in on.state.jobs.values()} == {"done"}
    assert sum(len(r.backfill_s) for r in on.records) > 0
