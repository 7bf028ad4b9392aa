"""Pool-level choices at planet size (placement/rounding.py): the LP rounded within capacity, and
the greedy's choice without nodes. Both keep every pool, quota and the migration budget."""

from __future__ import annotations

import time
from collections import defaultdict

import numpy as np

from datasets.requests import generate_family
from placement.candidates import build_options
from placement.colgen import colgen_lp
from placement.greedy import option_gains
from placement.instance import compile_instance
from placement.rounding import capacity_rounding, pool_greedy
from tests.support.requests import cluster, fleet, job, parsed, request


def _within_limits(inst, opts, choice) -> None:
    pool_used: dict[int, int] = defaultdict(int)
    quota_used: dict[tuple[str, str], int] = defaultdict(int)
    moved = 0.0
    for j, (o, r) in choice.items():
        assert int(opts.job[o]) == j
        assert opts.lo[o] <= r <= opts.hi[o]
        pool_used[int(opts.pool[o])] += r * int(opts.dpr[o])
        quota_used[inst.jobs[j].key] += r * int(opts.dpr[o])
        moved += float(opts.mig_gb[o])
    for p, used in pool_used.items():
        assert used <= inst.pools[p].capacity
    for k, used in quota_used.items():
        assert k not in inst.quotas or used <= inst.quotas[k]
    assert inst.budget_gb is None or moved <= inst.budget_gb + 1e-9
    assert all(i.index in choice for i in inst.jobs if i.protected)


def test_the_lp_rounded_within_capacity_keeps_every_pool_quota_and_the_budget():
    for seed in (1, 4):
        inst = compile_instance(parsed(generate_family("medium", seed)))
        opts = build_options(inst)
        start = np.array([b[0] for b in opts.by_job if len(b)], dtype=np.int64)
        lp, _ = colgen_lp(inst, opts, start, time.perf_counter() + 60, max_rounds=2)
        _within_limits(inst, opts, capacity_rounding(inst, opts, lp.x, lp.n))


def test_the_greedy_choice_at_pool_level_keeps_every_pool_quota_and_the_budget():
    for seed in (1, 4):
        inst = compile_instance(parsed(generate_family("medium", seed)))
        opts = build_options(inst)
        choice = pool_greedy(inst, opts, option_gains(inst, opts, None)[0])
        _within_limits(inst, opts, choice)
        assert len(choice) > len(inst.jobs) // 4


def test_a_protected_job_keeps_its_room_when_one_before_it_is_rounded_up_to_its_lp_replicas():
    # two running premium jobs of one tenant under a 9-device quota: the LP grows the more valuable
    # one to 8 replicas and keeps the other's 2 as they run (10 > 9: the LP is fractional elsewhere).
    # Rounded in value order, the first took 8 and the second found 1 device left: a plan without a
    # protected job. Each protected job's fewest replicas are held first: the first gets 7
    data = request(
        fleet(cluster("c", "us", ("n", 4, "H100", 8))),
        [job("grow", 1, 8, tenant="t", tier="premium", priority=5.0, current={
             "cluster": "c", "accelerator": "H100", "nodes": {"n0": 1}}),
         job("stay", 2, 2, tenant="t", tier="premium", current={
             "cluster": "c", "accelerator": "H100", "nodes": {"n1": 2}})],
        quotas=[{"tenant": "t", "tier": "premium", "devices": 9}])
    inst = compile_instance(parsed(data))
    opts = build_options(inst)
    grow, stay = (next(i.index for i in inst.jobs if i.job.id == name) for name in ("grow", "stay"))
    move = next(int(o) for o in opts.by_job[grow] if not opts.keep[o])
    keep = next(int(o) for o in opts.by_job[stay] if opts.keep[o])
    x = np.zeros(len(opts))
    n = np.zeros(len(opts))
    x[move], n[move] = 1.0, 8.0
    x[keep], n[keep] = 1.0, 2.0
    assert capacity_rounding(inst, opts, x, n) == {grow: (move, 7), stay: (keep, 2)}
