"""cpsat with backfill on: at a full plan a running gang job keeps its node rather than hand it to a
waiting gang job of its tier (both need a whole node: the swap only moves the wait to the job
preempted and pays two pauses); for a gang job of a higher tier the plan's swap stands."""

from __future__ import annotations

from executor.loop import Arrival
from executor.schedulers.cpsat import CpsatScheduler, event_options
from executor.schedulers.gangkeep import keep_running_gangs
from models import Placement
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


def undone_growth() -> tuple[dict, dict]:
    # a-h-0: a basic 8-device job; a-h-1: a standard one; a-h-2: a standard elastic gang job (1 to 3 replicas
    # of 8). The plan grows the elastic one onto a-h-0 and a-h-1, preempting both: the standard job on a-h-1
    # keeps its node (a gang job of its tier), so the growth is undone, and with it the reason a-h-0's was preempted.
    three = fleet(cluster("a", "us", ("a-h-", 3, "H100", 8)))
    data = request(three, [job("basic8", 1, devices_per_replica=8, tier="basic", current=on("a-h-0", 1)),
                           job("std8", 1, devices_per_replica=8, tier="standard", current=on("a-h-1", 1)),
                           job("elastic", 1, 3, devices_per_replica=8, tier="standard", current=on("a-h-2", 1))])
    placed = {"elastic": Placement(cluster="a", accelerator="H100", nodes={"a-h-0": 1, "a-h-1": 1, "a-h-2": 1})}
    return data, placed


def test_a_job_preempted_for_an_undone_change_keeps_running_where_its_devices_stay_free():
    # without `restore` the filter returns basic8 preempted and a-h-0 idle (main's replay of Philly days
    # 20-27: 27 full plans on day 25 preempted a gang job and gave its node to nobody)
    data, placed = undone_growth()
    kept = keep_running_gangs(parsed(data), placed, restore=True)
    assert {j: dict(p.nodes) for j, p in kept.items()} == {
        "basic8": {"a-h-0": 1}, "std8": {"a-h-1": 1}, "elastic": {"a-h-2": 1}}


def decide_after(ran_h: float, waited_h: float, **options) -> tuple[dict[str, dict[str, int]], dict[str, str]]:
    """`scattered("basic")` three days in: the long job's current run began `ran_h` hours ago, the new
    job was submitted `waited_h` hours ago."""
    data = scattered("basic")
    st = state_for(data)
    st.now_s = 3 * 86400.0
    st.jobs["long"].run_s = 2 * 86400.0
    st.jobs["long"].last_start_s = st.now_s - ran_h * 3600.0
    st.jobs["new"].arrival = Arrival(st.now_s - waited_h * 3600.0, st.jobs["new"].arrival.job, 1e6)
    resp = CpsatScheduler(fast_path=True, **event_options(True), **options).decide(parsed(data), st)
    return node_maps(data, resp), {a.job: a.kind for a in resp.actions}


def test_a_gang_job_that_has_run_longer_than_the_head_has_waited_yields_its_node():
    got, kinds = decide_after(ran_h=20.0, waited_h=10.0, yield_after_s=7200.0)
    assert got["new"] == {"a-h-0": 1} and "long" not in got
    assert kinds == {"long": "preempt", "new": "start"}


def test_without_the_yield_rule_it_keeps_its_node():
    got, kinds = decide_after(ran_h=20.0, waited_h=10.0)
    assert got["long"] == {"a-h-0": 1} and "new" not in got and kinds == {}


def test_it_keeps_its_node_from_a_head_that_has_waited_as_long_as_it_has_run():
    # right after a swap the job that yielded has waited exactly as long as the other has run: no swap back
    got, kinds = decide_after(ran_h=10.0, waited_h=10.0, yield_after_s=7200.0)
    assert got["long"] == {"a-h-0": 1} and "new" not in got and kinds == {}


def test_it_keeps_its_node_until_the_head_has_waited_the_yield_time():
    got, kinds = decide_after(ran_h=20.0, waited_h=1.0, yield_after_s=7200.0)
    assert got["long"] == {"a-h-0": 1} and "new" not in got and kinds == {}
