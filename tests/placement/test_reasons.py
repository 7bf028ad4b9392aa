"""The reasons (placement/reasons.py): each unplaced job gets the one code and sentence that fit its case."""

from __future__ import annotations

from placement.candidates import build_options
from placement.instance import compile_instance
from placement.packing import Packing
from placement.reasons import unplaced_reasons
from tests.support.requests import cluster, fleet, job, parsed, request

TWO = fleet(cluster("c", "us", ("n-", 2, "H100", 8)))


def reasons(jobs: list[dict], placed: dict[int, int], **kw) -> dict[str, tuple[str, str]]:
    """Place job i with `placed[i]` replicas (its first option), then ask why the others wait."""
    inst = compile_instance(parsed(request(TWO, jobs, **kw)))
    opts = build_options(inst)
    pk = Packing(inst, opts)
    for j, r in placed.items():
        assert pk.try_option(int(opts.by_job[j][0]), target=r) == r
    return {u.job: (u.code, u.reason) for u in unplaced_reasons(inst, opts, pk)}


def test_free_devices_spread_over_nodes_too_small_for_one_replica_are_fragmented():
    # two 6-device jobs leave 2 + 2 free: 4 devices, but no node with 4 for the waiting replica
    got = reasons([job("p", 1, devices_per_replica=6), job("q", 1, devices_per_replica=6),
                   job("w", 1, devices_per_replica=4)], {0: 1, 1: 1})
    assert got == {"w": ("fragmented", "4 devices free in c/H100, but no node has 4 free for one replica")}


def test_a_full_pool_held_by_a_higher_tier_outbids_the_waiting_job():
    got = reasons([job("p", 16, tier="premium"), job("w", 1)], {0: 16})
    why = ("waits: outbid by higher-tier jobs: c/H100 is full (0 of 16 devices free; held by premium 16), "
           "and so are its other options")
    assert got == {"w": ("outbid", why)}


def test_a_full_tier_quota_is_named_with_its_use_and_the_jobs_need():
    got = reasons([job("p", 2, tenant="t"), job("w", 3, tenant="t")], {0: 2},
                  quotas=[{"tenant": "t", "tier": "standard", "devices": 4}])
    assert got == {"w": ("quota", "standard quota of t is full (2/4 devices; it needs 3)")}


def test_a_replica_larger_than_every_node_is_too_large():
    got = reasons([job("w", 1, devices_per_replica=16)], {})
    assert got == {"w": ("too_large", "devices_per_replica 16 exceeds every up node of H100 in any region")}


def test_a_job_whose_minimum_exceeds_its_tier_quota_is_told_so_not_that_the_quota_is_full():
    got = reasons([job("w", 3, tenant="t")], {}, quotas=[{"tenant": "t", "tier": "standard", "devices": 2}])
    assert got == {"w": ("quota", "its minimum of 3 x 1 devices exceeds the standard quota of t (2 devices)")}
