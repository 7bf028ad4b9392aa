"""cpsat's `defrag` option (the loop's rule with backfill on: `event_options`): at a full plan, a gang job that
fits nowhere while the fleet has its devices free, scattered over nodes, starts where moving small
running jobs into free devices elsewhere makes a whole node for it (`reservation._defrag`): nobody
is preempted, the moved jobs pay a move pause."""

from __future__ import annotations

from executor.schedulers.cpsat import CpsatScheduler
from tests.support.plans import node_maps, on, state_for
from tests.support.requests import cluster, fleet, job, parsed, request

TWO_NODES = fleet(cluster("a", "us", ("a-h-", 2, "H100", 8)))


def decide(scheduler: CpsatScheduler, data: dict) -> tuple[dict[str, dict[str, int]], dict[str, str]]:
    resp = scheduler.decide(parsed(data), state_for(data))
    return node_maps(data, resp), {a.job: a.kind for a in resp.actions}


def defrag_on() -> CpsatScheduler:
    return CpsatScheduler(reserve=True, fast_path=True, preempt_margin=1.0, defrag=True)


# a-h-0: a standard job on 3 devices (5 free), a-h-1: one on 5 (3 free): 8 free, no whole node
def scattered(mode: str, a_tier: str = "standard", a_priority: float = 1.0, b_priority: float = 1.0) -> dict:
    return request(TWO_NODES, [job("a", 3, current=on("a-h-0", 3), tier=a_tier, priority=a_priority),
                               job("b", 5, current=on("a-h-1", 5), tier="standard", priority=b_priority),
                               job("head", 1, devices_per_replica=8, tier="basic")], policy={"mode": mode})


def test_a_full_plan_moves_small_jobs_to_make_a_whole_node_for_the_gang_job():
    # moving "a" (3 devices) onto a-h-1's 3 free devices costs less than moving "b" (5): a-h-0 is the head's
    got, kinds = decide(defrag_on(), scattered("epoch"))
    assert got == {"a": {"a-h-1": 3}, "b": {"a-h-1": 5}, "head": {"a-h-0": 1}}
    assert kinds == {"a": "move", "head": "start"}


def test_without_defrag_the_gang_job_waits_for_a_node_to_drain():
    sched = CpsatScheduler(reserve=True, fast_path=True, preempt_margin=1.0)
    got, kinds = decide(sched, scattered("epoch"))
    assert got == {"a": {"a-h-0": 3}, "b": {"a-h-1": 5}}
    assert kinds == {} and sched.heads == ("head",)


def test_a_backfill_plan_never_moves_a_running_job():
    sched = defrag_on()
    got, kinds = decide(sched, scattered("backfill"))
    assert got == {"a": {"a-h-0": 3}, "b": {"a-h-1": 5}}
    assert kinds == {} and sched.heads == ("head",)


def test_no_move_when_the_moved_jobs_pause_costs_more_than_the_gang_job_gains():
    # "a" at priority 3: 3 x 10 x 3 per second, paused 30 of 300 s (9.0), "b" 5 x 10 x 2 (10.0), against
    # the head's 8 x 1 less its own start pause (7.2): the head's node drains instead
    sched = defrag_on()
    got, kinds = decide(sched, scattered("epoch", a_priority=3.0, b_priority=2.0))
    assert got == {"a": {"a-h-0": 3}, "b": {"a-h-1": 5}}
    assert kinds == {} and sched.heads == ("head",)


def test_premium_jobs_are_never_moved():
    # "a", premium at priority 0.001, would be the cheapest to move; "b" moves instead
    got, kinds = decide(defrag_on(), scattered("epoch", a_tier="premium", a_priority=0.001))
    assert got == {"a": {"a-h-0": 3}, "b": {"a-h-0": 5}, "head": {"a-h-1": 1}}
    assert kinds == {"b": "move", "head": "start"}


def test_the_cheaper_node_to_vacate_is_chosen():
    # "a" at priority 3 costs 9.0 to move, "b" 5.0: b moves onto a-h-0, the head takes a-h-1
    got, kinds = decide(defrag_on(), scattered("epoch", a_priority=3.0))
    assert got == {"a": {"a-h-0": 3}, "b": {"a-h-0": 5}, "head": {"a-h-1": 1}}
    assert kinds == {"b": "move", "head": "start"}


def test_no_move_while_a_smaller_waiting_job_could_use_the_free_devices():
    # "w" (1 device) fits on the free devices now: they are not idle, the head's node drains instead
    data = scattered("epoch")
    data["jobs"].append(job("w", 1, tier="basic"))
    sched = defrag_on()
    got, kinds = decide(sched, data)
    assert got == {"a": {"a-h-0": 3}, "b": {"a-h-1": 5}, "w": {"a-h-1": 1}}
    assert kinds == {"w": "start"} and sched.heads == ("head",)


def test_the_replay_and_the_live_loop_defrag_with_backfill_on_only():
    from executor.schedulers.cpsat import event_options

    assert event_options(True)["defrag"] is True and event_options(False) == {}
