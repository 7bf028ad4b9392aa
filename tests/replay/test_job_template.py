"""The replay's contract jobs: a job's world size is its `max` replicas, so the planner may grant only
the counts that divide it (contract v1.1 `replicas.allowed`)."""

from __future__ import annotations

from datasets.attributes import JobSpec
from replay.harness import job_template


def spec(lo: int, hi: int) -> JobSpec:
    return JobSpec(id="j", submit_s=0.0, duration_s=60.0, num_gpus=hi * 8, work=1.0, tenant="t", tier="standard",
                   devices_per_replica=8, min_replicas=lo, max_replicas=hi)


def test_allowed_counts_are_the_divisors_of_the_world_size_within_the_range():
    rep = job_template(spec(3, 12), ["V100"]).replicas
    assert (rep.min, rep.max, rep.allowed) == (3, 12, [3, 4, 6, 12])


def test_a_range_every_count_of_which_divides_leaves_allowed_unset():
    assert job_template(spec(1, 2), ["V100"]).replicas.allowed is None
    assert job_template(spec(4, 4), ["V100"]).replicas.allowed is None


def test_a_prime_world_size_allows_only_itself_above_one():
    assert job_template(spec(2, 7), ["V100"]).replicas.allowed == [7]
