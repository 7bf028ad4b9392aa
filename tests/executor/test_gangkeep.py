"""cpsat with backfill on: at a full plan a running gang job keeps its node rather than hand it to a
waiting gang job of its tier (both need a whole node: the swap only moves the wait to the job
preempted and pays two pauses); for a gang job of a higher tier the plan's swap stands."""

from __future__ import annotations

from executor.schedulers.cpsat import CpsatScheduler, event_options
from tests.support.plans import node_maps, on, state_for
from tests.support.requests import cluster, fleet, job, parsed, request

LONG = job("long", 1, devices_per_replica=8, tier="basic", current=on("a-h-0", 1), priority=1 / 256)   # two days in, at level 4


def small(node: str, count: int) -> list[dict]:
    return [job(f"{node}-s{k}", 1, tier="standard", current=on(node, 1)) for k in range(count)]


def decide(data: dict) -> tuple[dict[str, dict[str, int]], dict[str, str]]:
    st = state_for(data)
    st.jobs["long"].run_s = 2 * 86400.0
    resp = CpsatScheduler(fast_path=True, **event_options(True)).decide(parsed(data), st)
    return node_maps(data, resp), {a.job: a.kind for a in resp.actions}


def scattered(new_tier: str) -> dict:
    # a-h-0: the long basic 8-device job; a-h-1 and a-h-2: five 1-device standard jobs each, so 6 devices
    # idle, no node free and none that moves can make (`test_defrag.py`); waiting: a fresh 8-device job
    # (priority 1)
    three = fleet(cluster("a", "us", ("a-h-", 3, "H100", 8)))
    return request(three, [LONG, *small("a-h-1", 5), *small("a-h-2", 5),
                           job("new", 1, devices_per_replica=8, tier=new_tier)])


def test_a_running_gang_job_keeps_its_node_from_a_waiting_gang_job_of_its_tier():
    got, kinds = decide(scattered("basic"))
    assert got == {"long": {"a-h-0": 1}, **{f"a-h-1-s{k}": {"a-h-1": 1} for k in range(5)},
                   **{f"a-h-2-s{k}": {"a-h-2": 1} for k in range(5)}}
    assert kinds == {}


def test_a_gang_job_of_a_higher_tier_still_takes_the_node():
    got, kinds = decide(scattered("standard"))
    assert got["new"] == {"a-h-0": 1} and "long" not in got
    assert kinds == {"long": "preempt", "new": "start"}
