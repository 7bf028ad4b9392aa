"""The documented attribute rules for what traces lack."""

from collections import Counter

import pytest
from hypothesis import given
from hypothesis import strategies as st

from datasets.attributes import AttributeRules, to_job_spec, to_job_specs
from datasets.rows import TraceJob
from datasets.synthetic import synthetic_trace


def job(n: int, **kw) -> TraceJob:
    return TraceJob(job_id=kw.pop("job_id", "j"), submit_time_s=0.0, duration_s=100.0, num_gpus=n, **kw)


@pytest.mark.parametrize(("n", "dpr", "rmin", "rmax"), [
    (1, 1, 1, 1), (2, 2, 1, 1), (4, 4, 1, 1), (8, 8, 1, 1), (12, 4, 1, 3), (16, 8, 1, 2), (24, 8, 1, 3),
    (32, 8, 1, 4), (64, 8, 2, 8), (128, 8, 4, 16), (6, 2, 1, 3), (3, 1, 1, 3)])
def test_replica_rule(n, dpr, rmin, rmax):
    s = to_job_spec(job(n))
    assert (s.devices_per_replica, s.min_replicas, s.max_replicas) == (dpr, rmin, rmax)


def test_work_checkpoint_and_speed_defaults():
    s = to_job_spec(job(16))
    assert s.work == 1600.0 and s.checkpoint_gb == 33.0 and s.speed is None
    assert to_job_spec(job(2, gpu_type="A100|H100")).speed == {"A100": 1.0, "H100": 1.0}


def test_trace_values_win():
    s = to_job_spec(job(8, tier="premium", min_gpus=4, max_gpus=16, checkpoint_gb=3.5))
    assert (s.tier, s.devices_per_replica, s.min_replicas, s.max_replicas, s.checkpoint_gb) == ("premium", 4, 1, 4, 3.5)


def test_tier_shares_near_documented_split():
    rules = AttributeRules(seed=7)
    tiers = Counter(rules.tier(str(i)) for i in range(20000))
    assert abs(tiers["premium"] / 20000 - 0.10) < 0.01
    assert abs(tiers["standard"] / 20000 - 0.50) < 0.015
    assert abs(tiers["basic"] / 20000 - 0.40) < 0.015


def test_tier_depends_on_seed_and_id_only():
    a, b = AttributeRules(seed=1), AttributeRules(seed=2)
    assert [a.tier(str(i)) for i in range(50)] == [AttributeRules(seed=1).tier(str(i)) for i in range(50)]
    assert [a.tier(str(i)) for i in range(200)] != [b.tier(str(i)) for i in range(200)]


@given(st.integers(min_value=1, max_value=4096))
def test_replica_rule_covers_the_job(n):
    s = to_job_spec(job(n))
    assert s.devices_per_replica * s.max_replicas == n
    assert s.devices_per_replica in (1, 2, 4, 8) and n % s.devices_per_replica == 0
    assert s.min_replicas == max(1, s.max_replicas // 4)


def test_synthetic_trace_is_seeded():
    assert synthetic_trace(days=0.5, seed=3) == synthetic_trace(days=0.5, seed=3)
    assert synthetic_trace(days=0.5, seed=3) != synthetic_trace(days=0.5, seed=4)
    jobs = synthetic_trace(days=1.0, jobs_per_hour=20, seed=0)
    assert 300 < len(jobs) < 700
    assert all(0 <= j.submit_time_s < 86400 and 60 <= j.duration_s <= 3 * 86400 for j in jobs)
    specs = to_job_specs(jobs)
    assert [s.submit_s for s in specs] == sorted(s.submit_s for s in specs)
