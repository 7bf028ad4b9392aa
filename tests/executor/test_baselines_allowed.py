"""The baselines (fifo, las) and the fast path grant only a job's `replicas.allowed` counts (contract v1.1),
and a running count outside them is changed, never kept."""

from __future__ import annotations

import pytest

from executor.loop import Arrival, JobState, LoopState
from executor.schedulers import make_scheduler
from executor.schedulers.fastpath import optimal_starts
from tests.support import checker
from tests.support.requests import cluster, fleet, job, parsed, request

TWO_NODES = fleet(cluster("a", "us", ("a-h-", 2, "H100", 8)))


def state_for(data: dict) -> LoopState:
    req = parsed(data)
    st = LoopState(now_s=0.0, epoch_s=300.0, region_of={"a": "us"})
    for k, j in enumerate(req.jobs):
        st.jobs[j.id] = JobState(arrival=Arrival(float(k), j, 1e6), admitted_s=float(k),
                                 status="running" if j.current else "pending", placement=j.current)
        st.active[j.id] = None
    return st


def valid_counts(data: dict, resp) -> dict[str, int]:
    """The counts a plan grants, its assignments valid by the independent checker (baselines and the
    fast path report no objective, so only the constraints are held)."""
    pc = checker.require()
    bad, _obj, _br, _acts = pc.score(pc.World(data), resp.model_dump(mode="json", by_alias=True)["assignments"])
    assert bad == []
    return {a.job: sum(a.nodes.values()) for a in resp.assignments}


def granted(data: dict, policy: str) -> dict[str, int]:
    resp = make_scheduler(policy).decide(parsed(data), state_for(data))
    return valid_counts(data, resp)


@pytest.mark.parametrize("policy", ["fifo", "las"])
def test_a_job_whose_max_exceeds_the_fleet_gets_its_largest_allowed_count_that_could_fit(policy):
    # 16 devices in all: max 24 is capped at 16, which is not allowed; 12 is
    data = request(TWO_NODES, [job("w", 1, 24, replicas={"min": 1, "max": 24, "allowed": [3, 6, 12, 24]})])
    assert granted(data, policy) == {"w": 12}


@pytest.mark.parametrize("policy", ["fifo", "las"])
def test_a_running_count_outside_allowed_is_not_kept(policy):
    data = request(TWO_NODES, [job("r", 1, 8, replicas={"min": 1, "max": 8, "allowed": [4, 8]},
                                   current={"cluster": "a", "accelerator": "H100", "nodes": {"a-h-0": 5}})])
    assert granted(data, policy) == {"r": 8}


def test_the_fast_path_places_at_the_largest_allowed_count():
    data = request(TWO_NODES, [job("w", 1, 10, replicas={"min": 1, "max": 10, "allowed": [2, 4, 8]})])
    resp = optimal_starts(parsed(data))
    assert resp is not None
    assert valid_counts(data, resp) == {"w": 8}
