"""The priority controller's documented formula and the summary's metric definitions."""

import pytest

from executor.loop import Arrival, JobState, LoopState
from models import Job, Replicas
from replay.controller import SlaController
from replay.metrics import percentile
from replay.sla import sla_ratio


def state_with(tier="standard", attained_h=0.0, status="pending", submit=0.0, now=3600.0, wait=3600.0, run=0.0):
    job = Job(id="j", tier=tier, replicas=Replicas(min=1, max=1), speed={"G": 1.0})
    st = JobState(arrival=Arrival(submit, job, 100.0), admitted_s=0.0, status=status,
                  attained_device_s=attained_h * 3600, wait_s=wait, run_s=run)
    s = LoopState(now_s=now, epoch_s=300.0)
    s.jobs["j"] = st
    s.active["j"] = None
    return s


def test_levels_follow_attained_service():
    c = SlaController(aging_s=1e12, risk_boost=1.0)
    assert c.priority(state_with(attained_h=0.5, status="running"), "j") == 1.0
    assert c.priority(state_with(attained_h=1.0, status="running"), "j") == 0.25
    assert c.priority(state_with(attained_h=20.0, status="running"), "j") == 0.25 ** 3


def test_waiting_ages_pending_jobs():
    c = SlaController(aging_s=3600.0, risk_boost=1.0)
    assert c.priority(state_with(now=7200.0, wait=7200.0), "j") == pytest.approx(3.0)


def test_sla_risk_boosts_a_late_job_of_a_tier_with_a_target():
    c = SlaController(aging_s=1e12, risk_boost=4.0)
    # waited 3,600 s with no run: ratio so far 0 < 0.70
    assert c.priority(state_with(tier="standard", wait=3600.0), "j") == pytest.approx(4.0)
    assert c.priority(state_with(tier="basic", wait=3600.0), "j") == pytest.approx(1.0)
    # within the forgiven epoch + restart: no boost
    assert c.priority(state_with(tier="premium", wait=300.0), "j") == pytest.approx(1.0)


def test_sla_ratio_forgives_one_epoch_and_one_start():
    assert sla_ratio(1000, 1000 + 300 + 30, 300, 30) == 1.0
    assert sla_ratio(1000, 2330, 300, 30) == pytest.approx(0.5)
    assert sla_ratio(1000, 500, 300, 30) == 1.0


def test_percentile_interpolates():
    assert percentile([1, 2, 3, 4], 50) == 2.5 and percentile([5], 99) == 5 and percentile([], 50) is None


def test_progress_bar_reports_measured_jobs_done():
    import io

    from datasets.attributes import to_job_specs
    from datasets.fleets import single_cluster_fleet
    from datasets.synthetic import synthetic_trace
    from replay.harness import ReplaySetup, run_replay
    from replay.progress import ProgressBar

    specs = to_job_specs(synthetic_trace(days=0.2, seed=5))
    buf = io.StringIO()
    bar = ProgressBar({s.id for s in specs}, "fifo", stream=buf, every_s=0.0)
    run_replay(specs, single_cluster_fleet(2, 8), ReplaySetup(scheduler="fifo"), observers=[bar])
    last = buf.getvalue().split("\r")[-1]
    assert last.startswith(f"[fifo] [{'#' * 30}] {len(specs)}/{len(specs)} jobs | day ")


def test_the_clairvoyant_reference_ranks_by_work_left_not_service_attained():
    c = SlaController(aging_s=1e12, risk_boost=1.0, service="clairvoyant")
    s = state_with(attained_h=2.0, status="running")
    s.jobs["j"].arrival = Arrival(0.0, s.jobs["j"].arrival.job, 2.9 * 3600)    # 0.9 GPU-hours left
    assert c.priority(s, "j") == pytest.approx(1.0)
    s.jobs["j"].arrival = Arrival(0.0, s.jobs["j"].arrival.job, 11.9 * 3600)   # 9.9 left
    assert c.priority(s, "j") == pytest.approx(0.1)
