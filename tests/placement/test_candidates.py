"""The options' whole-array helpers (placement/candidates.py) against their one-job-at-a-time definitions."""

from __future__ import annotations

import numpy as np
from hypothesis import given, settings
from hypothesis import strategies as st

from datasets.requests import generate
from placement.candidates import _keep_spread, build_options, job_max, job_slices
from placement.instance import compile_instance
from tests.support.requests import parsed


@settings(max_examples=200, deadline=None)
@given(st.lists(st.tuples(st.integers(0, 6), st.integers(-3, 3)), max_size=40), st.integers(0, 3))
def test_job_max_is_each_jobs_largest_value_and_its_first_option(pairs: list, extra: int) -> None:
    pairs.sort(key=lambda p: p[0])   # options are grouped by job, in job order
    job = np.array([p[0] for p in pairs], dtype=np.int64)
    val = np.array([float(p[1]) for p in pairs])
    n = (max(job) + 1 if len(job) else 0) + extra
    best, arg = job_max(job, val, n)
    for j in range(n):
        mine = [o for o in range(len(job)) if job[o] == j]
        if not mine:
            assert best[j] == -np.inf and arg[j] == -1
        else:
            top = max(val[o] for o in mine)
            assert best[j] == top and arg[j] == next(o for o in mine if val[o] == top)


def test_job_slices_are_each_jobs_option_range_read_only() -> None:
    bounds = np.array([0, 2, 2, 5, 6])
    got = job_slices(bounds)
    assert [g.tolist() for g in got] == [[0, 1], [], [2, 3, 4], [5]]
    assert not any(g.flags.writeable for g in got)


def test_keep_options_charge_the_contracts_spread_of_each_running_job() -> None:
    inst = compile_instance(parsed(generate(2000, 600, 2, seed=3)))
    opts = build_options(inst)
    keep = np.flatnonzero(opts.keep)
    assert len(keep) > 50
    for o in keep.tolist():
        info = inst.jobs[int(opts.job[o])]
        expected = float(opts.unit[o]) - _keep_spread(inst, info) / info.r0
        assert float(opts.coef[o]) == expected


def test_a_change_option_grants_no_more_replicas_than_the_jobs_quota_holds_alone() -> None:
    from tests.support.requests import cluster, fleet, job, request
    two = fleet(cluster("c", "us", ("n-", 2, "H100", 8)))
    data = request(two, [job("w", 1, 6, devices_per_replica=2, tenant="t"), job("x", 1, 6, devices_per_replica=2)],
                   quotas=[{"tenant": "t", "tier": "standard", "devices": 7}])
    inst = compile_instance(parsed(data))
    opts = build_options(inst)
    assert opts.hi[opts.by_job[0]].tolist() == [3]    # 7 devices hold 3 replicas of 2
    assert opts.hi[opts.by_job[1]].tolist() == [6]    # no quota: the pool's 16 devices hold all 6
