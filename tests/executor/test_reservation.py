"""cpsat with backfill on holds nodes for the gang job its plans pass over: the freest node drains for
it (nothing new starts there), and once it fits it starts there, ahead of jobs of higher value."""

from __future__ import annotations

import pytest

from executor.schedulers.cpsat import CpsatScheduler
from tests.support.plans import node_maps, on, state_for
from tests.support.requests import cluster, fleet, job, parsed, request

TWO_NODES = fleet(cluster("a", "us", ("a-h-", 2, "H100", 8)))
HEAD = job("head", 1, devices_per_replica=8)
SMALL = [job("s1", 1), job("s2", 1), job("s3", 4)]


def plan(scheduler: CpsatScheduler, data: dict) -> dict[str, dict[str, int]]:
    """Each placed job's nodes, valid for the request as asked (the placeholder never leaves)."""
    return node_maps(data, scheduler.decide(parsed(data), state_for(data)))


@pytest.mark.parametrize("mode", ["epoch", "backfill"])
def test_the_freest_node_is_held_for_a_waiting_gang_job_and_small_jobs_start_elsewhere(mode):
    # a-h-0: 6 busy (2 free), a-h-1: 3 busy (5 free, the freest): held for the 8-device head
    data = request(TWO_NODES, [job("r0", 6, current=on("a-h-0", 6)), job("r1", 3, current=on("a-h-1", 3)),
                               HEAD, *SMALL], policy={"mode": mode})
    got = plan(CpsatScheduler(reserve=True, fast_path=True), data)
    assert got == {"r0": {"a-h-0": 6}, "r1": {"a-h-1": 3}, "s1": {"a-h-0": 1}, "s2": {"a-h-0": 1}}


def test_without_a_reservation_the_small_jobs_take_the_draining_node():
    data = request(TWO_NODES, [job("r0", 6, current=on("a-h-0", 6)), job("r1", 3, current=on("a-h-1", 3)),
                               HEAD, *SMALL], policy={"mode": "backfill"})
    got = plan(CpsatScheduler(fast_path=True), data)
    assert got == {"r0": {"a-h-0": 6}, "r1": {"a-h-1": 3}, "s1": {"a-h-0": 1}, "s2": {"a-h-0": 1}, "s3": {"a-h-1": 4}}


def test_the_head_starts_on_its_drained_node_ahead_of_a_job_of_higher_value():
    sched = CpsatScheduler(reserve=True, fast_path=True)
    first = request(TWO_NODES, [job("r0", 6, current=on("a-h-0", 6)), job("r1", 3, current=on("a-h-1", 3)), HEAD],
                    policy={"mode": "backfill"})
    assert plan(sched, first) == {"r0": {"a-h-0": 6}, "r1": {"a-h-1": 3}}
    # r1 finished: a-h-1 is empty, and a job worth 50 times more per device waits for 8 devices
    then = request(TWO_NODES, [job("r0", 6, current=on("a-h-0", 6)), HEAD, job("big", 8, priority=50.0)],
                   policy={"mode": "backfill"})
    assert plan(sched, then) == {"r0": {"a-h-0": 6}, "head": {"a-h-1": 1}}
    assert sched.heads == ()             # started: the next plan picks a new head


def test_two_heads_drain_two_nodes_at_once():
    # three nodes: a-h-1 (5 free) and a-h-2 (4 free) held for two waiting 8-device jobs; small jobs on a-h-0
    three = fleet(cluster("a", "us", ("a-h-", 3, "H100", 8)))
    data = request(three, [job("r0", 6, current=on("a-h-0", 6)), job("r1", 3, current=on("a-h-1", 3)),
                           job("r2", 4, current=on("a-h-2", 4)), HEAD, job("head2", 1, devices_per_replica=8),
                           *SMALL], policy={"mode": "backfill"})
    sched = CpsatScheduler(reserve=True, reserve_heads=2, fast_path=True)
    assert plan(sched, data) == {"r0": {"a-h-0": 6}, "r1": {"a-h-1": 3}, "r2": {"a-h-2": 4},
                                 "s1": {"a-h-0": 1}, "s2": {"a-h-0": 1}}
    assert sched.heads == ("head", "head2")


def actions_of(scheduler: CpsatScheduler, data: dict) -> tuple[dict[str, dict[str, int]], dict[str, str]]:
    resp = scheduler.decide(parsed(data), state_for(data))
    return node_maps(data, resp), {a.job: a.kind for a in resp.actions}


# a-h-0: a standard job on 6 devices (2 free); a-h-1, the freest: a basic job of low priority on 4 (4 free)
def crowded(mode: str, old_tier: str = "basic", old_priority: float = 0.01) -> dict:
    return request(TWO_NODES, [job("r0", 6, current=on("a-h-0", 6), tier="standard"),
                               job("old", 4, current=on("a-h-1", 4), tier=old_tier, priority=old_priority),
                               job("head", 1, devices_per_replica=8, tier="basic")], policy={"mode": mode})


def test_a_full_plan_starts_the_head_at_once_where_preempting_the_occupants_pays():
    # the head is worth 8 x 1.0 per second, less its 30 s start pause (7.2); "old" 4 x 0.01 (0.044 with its
    # pause). Without the margin the freest node's 4 free devices are held for the head and the planner,
    # which cannot see past the placeholder, leaves it waiting (the last test below)
    got, kinds = actions_of(CpsatScheduler(reserve=True, fast_path=True, preempt_margin=1.0), crowded("epoch"))
    assert got == {"r0": {"a-h-0": 6}, "head": {"a-h-1": 1}}
    assert kinds == {"old": "preempt", "head": "start"}


def test_no_preemption_for_the_head_when_the_occupants_are_worth_more():
    # "old" standard at priority 1.0: 4 x 10 per second, the head 8 x 1: the freest node drains instead
    sched = CpsatScheduler(reserve=True, fast_path=True, preempt_margin=1.0)
    got, kinds = actions_of(sched, crowded("epoch", old_tier="standard", old_priority=1.0))
    assert got == {"r0": {"a-h-0": 6}, "old": {"a-h-1": 4}}
    assert kinds == {} and sched.heads == ("head",)


def test_a_backfill_plan_never_preempts_for_the_head():
    sched = CpsatScheduler(reserve=True, fast_path=True, preempt_margin=1.0)
    got, kinds = actions_of(sched, crowded("backfill"))
    assert got == {"r0": {"a-h-0": 6}, "old": {"a-h-1": 4}}
    assert kinds == {} and sched.heads == ("head",)


def test_without_the_margin_the_head_waits_for_the_freest_node_to_drain():
    sched = CpsatScheduler(reserve=True, fast_path=True)
    got, kinds = actions_of(sched, crowded("epoch"))
    assert got == {"r0": {"a-h-0": 6}, "old": {"a-h-1": 4}}
    assert kinds == {} and sched.heads == ("head",)


def test_the_replay_and_the_live_loop_share_the_rule_with_backfill_on():
    from executor.schedulers.cpsat import CLEAR_FACTOR, PREEMPT_MARGIN, event_options

    assert event_options(True) == {"reserve": True, "preempt_margin": PREEMPT_MARGIN, "drain_by_held": True,
                                   "clear_factor": CLEAR_FACTOR, "keep_gangs": True, "defrag": True,
                                   "keep_restores": True}
    assert event_options(False) == {}


def decide_with_held(scheduler: CpsatScheduler, data: dict, held: dict[str, float]):
    """The scheduler's plan with each job's time held devices so far (`LoopState.run_s`)."""
    st = state_for(data)
    for jid, s in held.items():
        st.jobs[jid].run_s = s
    resp = scheduler.decide(parsed(data), st)
    return node_maps(data, resp), {a.job: a.kind for a in resp.actions}


# a-h-0, the freest (4 free): one job that has held its devices for two days; a-h-1 (2 free): six
# 1-device jobs that started ten minutes ago
YOUNG = [job(f"y{k}", 1, current=on("a-h-1", 1)) for k in range(6)]
AGED = request(TWO_NODES, [job("old", 4, current=on("a-h-0", 4)), *YOUNG, HEAD, job("s1", 1), job("s2", 1)],
               policy={"mode": "backfill"})
AGED_HELD = {"old": 2 * 86400.0, **{y["id"]: 600.0 for y in YOUNG}}


def test_by_time_held_the_node_of_the_youngest_occupants_drains_for_the_head():
    # the two-day-old job is likeliest to run on longest: a-h-1 is held, the small jobs start on a-h-0
    sched = CpsatScheduler(reserve=True, fast_path=True, drain_by_held=True)
    got, kinds = decide_with_held(sched, AGED, AGED_HELD)
    assert got == {"old": {"a-h-0": 4}, **{y["id"]: {"a-h-1": 1} for y in YOUNG}, "s1": {"a-h-0": 1},
                   "s2": {"a-h-0": 1}}
    assert kinds == {"s1": "start", "s2": "start"} and sched.heads == ("head",)


def test_by_free_devices_the_freest_node_drains_even_behind_a_two_day_old_job():
    sched = CpsatScheduler(reserve=True, fast_path=True)
    got, _kinds = decide_with_held(sched, AGED, AGED_HELD)
    assert got == {"old": {"a-h-0": 4}, **{y["id"]: {"a-h-1": 1} for y in YOUNG}, "s1": {"a-h-1": 1},
                   "s2": {"a-h-1": 1}}


def test_a_head_clears_only_occupants_that_have_held_devices_longer_than_it_by_the_factor():
    # the preempted head has held devices 5,000 s, "old" 3,000 s: no swap of two long jobs (each
    # swap pays two pauses and shares the node round-robin); the freest node drains instead
    sched = CpsatScheduler(reserve=True, fast_path=True, preempt_margin=1.0, clear_factor=2.0)
    got, kinds = decide_with_held(sched, crowded("epoch"), {"head": 5000.0, "old": 3000.0, "r0": 100.0})
    assert got == {"r0": {"a-h-0": 6}, "old": {"a-h-1": 4}}
    assert kinds == {} and sched.heads == ("head",)


def test_a_head_still_clears_an_occupant_that_has_held_devices_more_than_twice_as_long():
    sched = CpsatScheduler(reserve=True, fast_path=True, preempt_margin=1.0, clear_factor=2.0)
    got, kinds = decide_with_held(sched, crowded("epoch"), {"head": 1000.0, "old": 3000.0, "r0": 100.0})
    assert got == {"r0": {"a-h-0": 6}, "head": {"a-h-1": 1}}
    assert kinds == {"old": "preempt", "head": "start"}
