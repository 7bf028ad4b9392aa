"""The baselines with backfill on act as their event-driven originals: fifo backfills behind a
reserved head (EASY, non-clairvoyant), las's boundary re-pack starts a job on idle devices before it
preempts anyone; with backfill off (the defaults) both are exactly the loop before backfill."""

from __future__ import annotations

from executor.schedulers import make_scheduler
from tests.support.plans import node_maps, on, state_for
from tests.support.requests import cluster, fleet, job, parsed, request

THREE_NODES = fleet(cluster("a", "us", ("a-h-", 3, "H100", 8)))


def plan(data: dict, policy: str, attained: dict[str, float] | None = None, **options) -> dict[str, dict[str, int]]:
    return node_maps(data, make_scheduler(policy, **options).decide(parsed(data), state_for(data, attained)))


# a-h-0 holds 6 busy devices (2 free), a-h-1 4 (4 free), a-h-2 7 (1 free); the head needs a whole node
BUSY = [job("r0", 6, speed={"H100": 1.0}, current=on("a-h-0", 6)),
        job("r1", 4, current=on("a-h-1", 4)),
        job("r2", 7, current=on("a-h-2", 7)),
        job("head", 1, devices_per_replica=8)]
KEPT = {"r0": {"a-h-0": 6}, "r1": {"a-h-1": 4}, "r2": {"a-h-2": 7}}


def test_strict_fifo_starts_nothing_behind_a_head_that_does_not_fit():
    data = request(THREE_NODES, [*BUSY, job("small", 2)])
    assert plan(data, "fifo") == KEPT


def test_easy_fifo_starts_a_job_behind_the_head_outside_the_heads_reserved_node():
    # the head's reservation is the freest node (a-h-1, 4 free): the 2-device job goes to a-h-0
    data = request(THREE_NODES, [*BUSY, job("small", 2)])
    assert plan(data, "fifo", easy=True) == {**KEPT, "small": {"a-h-0": 2}}


def test_easy_fifo_keeps_the_reserved_node_draining_even_when_only_it_has_room():
    # 4 devices fit only on a-h-1, the head's reservation: the job waits, a 1-device one behind it starts
    data = request(THREE_NODES, [*BUSY, job("four", 4), job("one", 1)])
    assert plan(data, "fifo", easy=True) == {**KEPT, "one": {"a-h-2": 1}}


def test_easy_fifo_reserves_nothing_for_a_job_its_own_quota_holds_back():
    # the head's tenant has 4 devices of quota: it waits for the quota, and the next job is the head
    data = request(THREE_NODES, [*BUSY[:3], job("head", 1, devices_per_replica=8, tenant="t1", tier="standard"),
                                 job("four", 4, tenant="t2", tier="standard")],
                   quotas=[{"tenant": "t1", "tier": "standard", "devices": 4}])
    assert plan(data, "fifo", easy=True) == {**KEPT, "four": {"a-h-1": 4}}


# two nodes of 8: r (2 x 4 devices) fills a-h-0, q holds 4 of a-h-1; both have used their first
# GPU-hour (queue 1), p (4 devices) is new (queue 0) and goes first
TWO_NODES = fleet(cluster("a", "us", ("a-h-", 2, "H100", 8)))
REPACK = request(TWO_NODES, [job("r", 2, devices_per_replica=4, current=on("a-h-0", 2)),
                             job("q", 1, devices_per_replica=4, current=on("a-h-1", 1)),
                             job("p", 1, devices_per_replica=4)])
SERVED = {"r": 8 * 3600.0, "q": 4 * 3600.0}


def test_las_repack_without_backfill_packs_best_fit_and_moves_both_running_jobs():
    assert plan(REPACK, "las", attained=SERVED) == {"p": {"a-h-0": 1}, "r": {"a-h-1": 2}, "q": {"a-h-0": 1}}


def test_las_repack_with_backfill_starts_the_new_job_on_idle_devices_and_moves_nobody():
    assert plan(REPACK, "las", idle_first=True, attained=SERVED) == \
        {"p": {"a-h-1": 1}, "r": {"a-h-0": 2}, "q": {"a-h-1": 1}}


def test_las_repack_with_backfill_still_preempts_for_a_job_ahead_when_nothing_idle_holds_it():
    # p needs a whole node and no idle node holds it: packed best-fit as before (a-h-0), r moves to
    # a-h-1 and the last in the order (q) gives way
    data = request(TWO_NODES, [job("r", 2, devices_per_replica=4, current=on("a-h-0", 2)),
                               job("q", 1, devices_per_replica=4, current=on("a-h-1", 1)),
                               job("p", 1, devices_per_replica=8)])
    assert plan(data, "las", idle_first=True, attained=SERVED) == {"p": {"a-h-0": 1}, "r": {"a-h-1": 2}}
