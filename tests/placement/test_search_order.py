"""The neighbourhood search's order under the wall clock (placement/lns.py): a few CP-SAT steps where the
LP disagrees with the plan run between the gang moves and the option moves, each only while the step
before it gained at least a share of what the gang moves gained per second (the integer steps over pools,
where they ran, count as the step before the first; without them the first always runs), and none once
the plan is close to the bound; a deterministic plan keeps its counted steps for after the moves."""

from __future__ import annotations

import dataclasses

from datasets.requests import generate_family
from placement.params import DEFAULT
from placement.plan import plan
from tests.support.requests import parsed

# the steps get what the gang moves leave (a tenth of the search), so three fit even on a loaded machine
ROOMY = dataclasses.replace(DEFAULT, gang_moves_share=0.1, lns_early_share=1.0, lns_early_min_gap=0.0)


def _medium(deterministic: bool = False):
    data = generate_family("medium", 37)
    data["policy"]["time_limit_s"] = 2.0
    if deterministic:
        data["policy"]["deterministic"] = True
    return parsed(data)


def test_the_cpsat_steps_before_the_option_moves_stop_after_one_that_gains_too_little_per_second() -> None:
    params = dataclasses.replace(ROOMY, lns_early_steps=3, lns_early_min_rate=1e12,   # no step gains that much
                                 mip_steps_share=0.0)                                   # and no integer step before
    assert plan(_medium(), params).stats.phases_s["lns_early_steps"] == 1


def test_no_cpsat_step_runs_before_the_option_moves_after_integer_steps_that_gained_too_little_per_second() -> None:
    params = dataclasses.replace(ROOMY, lns_early_steps=3, lns_early_min_rate=1e12)   # the integer steps run first
    assert plan(_medium(), params).stats.phases_s["lns_early_steps"] == 0


def test_the_integer_steps_hold_back_no_cpsat_step_where_that_rule_is_off() -> None:
    params = dataclasses.replace(ROOMY, lns_early_steps=3, lns_early_min_rate=1e12, lns_early_after_mip=False)
    assert plan(_medium(), params).stats.phases_s["lns_early_steps"] == 1


def test_the_cpsat_steps_before_the_option_moves_all_run_without_a_rate_to_meet() -> None:
    params = dataclasses.replace(ROOMY, lns_early_steps=3, lns_early_rate=0.0, lns_early_min_rate=0.0)
    assert plan(_medium(), params).stats.phases_s["lns_early_steps"] == 3


def test_no_cpsat_step_runs_before_the_option_moves_once_the_plan_is_within_the_gap_of_the_bound() -> None:
    params = dataclasses.replace(ROOMY, lns_early_steps=3, lns_early_rate=0.0, lns_early_min_gap=1.0)
    assert plan(_medium(), params).stats.phases_s["lns_early_steps"] == 0


def test_a_deterministic_plan_runs_no_cpsat_step_before_the_option_moves() -> None:
    assert plan(_medium(deterministic=True), ROOMY).stats.phases_s["lns_early_steps"] == 0
