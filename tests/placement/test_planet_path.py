"""The engine's path from planet size on (`lp_first_min_jobs`, placement/plan.py `_planet_first`):
the greedy's choice at pool level, column generation from it, one packing pass of the LP's rounding.
Exercised on a medium family request with the size threshold lowered, so that it runs in seconds."""

from __future__ import annotations

import dataclasses

from datasets.requests import generate_family
from placement import plan
from placement.params import DEFAULT
from tests.support.requests import check, parsed

LP_FIRST = dataclasses.replace(DEFAULT, lp_first_min_jobs=1)


def test_the_plan_is_the_lp_rounding_packed_once_the_lp_has_a_round():
    data = generate_family("medium", 4)
    data["policy"].update(time_limit_s=6.0, deterministic=False)   # the LP stage takes 0.1 s of it here
    resp = plan(parsed(data), params=LP_FIRST)
    check(data, resp)
    assert resp.stats.phases_s["lp_rounds"] >= 1
    # the LP's plan, or the search's from it (or, at this size only, the whole-node-cut model's beside it)
    assert resp.stats.engine in ("lp_rounding", "cpsat", "whole_node_mip")
    assert resp.status in ("feasible", "optimal")         # never the greedy's `fallback`
