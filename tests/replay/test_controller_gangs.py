"""The controller counts a gang job's attained service over `devices_per_replica ** gang_exponent`, so
that a full plan does not make an 8-device job the cheapest victim only because it holds 8 devices."""

from __future__ import annotations

import pytest

from datasets.fleets import single_cluster_fleet
from executor.loop import Arrival, JobState, LoopConfig, LoopState, run_loop
from executor.schedulers.cpsat import CpsatScheduler, event_options
from executor.sim import SimExecutor
from models import Job, Policy, Replicas
from replay.controller import SlaController

POLICY = Policy(restart_overhead_s=30.0, deterministic=True, time_limit_s=0.5)
HOUR = 3600.0


def basic(jid: str, submit_s: float, devices: int = 1) -> Arrival:
    job = Job(id=jid, tier="basic", replicas=Replicas(min=1, max=1), devices_per_replica=devices,
              speed={"GPU": 1.0}, checkpoint_gb=0.0)
    return Arrival(submit_s, job, 100 * HOUR * devices)


def until_after_fresh_jobs(controller: SlaController) -> LoopState:
    """Two nodes of 8: eight 1-device jobs from t = 0 on one, an 8-device gang on the other from 6,990 s
    (it starts when its 30 s batch closes); at 2.5 h (a boundary) eight fresh 1-device jobs arrive and
    the full plan must preempt 8 devices. Then each small job has held its device 2.5 h (level 1 of
    1, 4, 16, ... GPU-hours), the gang 8 devices for 1,980 s: 4.4 GPU-hours (level 2), or 4.4 / 8 **
    0.75 = 0.92 (level 0) counted as the controller does by default."""
    small = [basic(f"s{k}", 0.0) for k in range(8)]
    fresh = [basic(f"f{k}", 2.5 * HOUR) for k in range(8)]
    arrivals = [*small, basic("gang", 6990.0, devices=8), *fresh]
    config = LoopConfig(fleet=single_cluster_fleet(2, 8), epoch_s=300.0, policy=POLICY, start_s=0.0,
                        backfill_window_s=30.0, backfill_fit_window_s=None, until=lambda st: st.now_s > 2.5 * HOUR)
    ex = SimExecutor({a.job.id: a.work for a in arrivals})
    return run_loop(ex, arrivals, CpsatScheduler(fast_path=True, **event_options(True)), config, controller)


def preempted(state: LoopState) -> set[str]:
    return {jid for jid, st in state.jobs.items() if st.actions["preempt"]}


def test_a_full_plan_preempts_the_older_small_jobs_rather_than_the_young_gang():
    st = until_after_fresh_jobs(SlaController())
    assert st.jobs["gang"].attained_device_s == 8 * (1980.0 + 300.0)   # held on through the epoch after the plan
    assert preempted(st) == {f"s{k}" for k in range(8)}
    assert st.jobs["gang"].status == "running"
    assert all(st.jobs[f"f{k}"].status == "running" for k in range(8))


def test_counted_in_full_device_hours_the_gang_is_the_victim():
    st = until_after_fresh_jobs(SlaController(gang_exponent=0.0))   # the controller before issue 11's rule
    assert preempted(st) == {"gang"}
    assert all(st.jobs[f"s{k}"].status == "running" for k in range(8))


@pytest.mark.parametrize(("devices", "exponent", "priority"), [
    (8, 0.75, 0.25 ** 2),    # 20 GPU-hours / 8 ** 0.75 = 4.2: past 1 and 4
    (8, 0.0, 0.25 ** 3),     # 20 GPU-hours: past 1, 4 and 16
    (8, 1.0, 0.25 ** 1),     # 2.5 GPU-hours per device: past 1
    (4, 0.75, 0.25 ** 2),    # 20 / 4 ** 0.75 = 7.1
    (1, 0.75, 0.25 ** 3),    # a 1-device job's GPU-hours count in full
])
def test_a_gangs_level_counts_its_device_hours_over_a_power_of_its_replica_size(devices, exponent, priority):
    job = Job(id="j", tier="basic", replicas=Replicas(min=1, max=1), devices_per_replica=devices,
              speed={"GPU": 1.0})
    state = LoopState(now_s=0.0, epoch_s=300.0)
    state.jobs["j"] = JobState(arrival=Arrival(0.0, job, 1.0), admitted_s=0.0, status="running",
                               attained_device_s=20 * HOUR)
    state.active["j"] = None
    c = SlaController(gang_exponent=exponent)
    assert c.priority(state, "j") == pytest.approx(priority)
