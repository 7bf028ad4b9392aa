"""Stopping criteria: the wall clock gives stages what is left; counted work gives the request's figures."""

from __future__ import annotations

import time

from models import Policy
from placement.stop import MaxRuntime, WorkUnits, criterion


def test_the_policy_picks_the_criterion():
    assert isinstance(criterion(Policy(deterministic=True), 0.0), WorkUnits)
    assert isinstance(criterion(Policy(), 0.0), MaxRuntime)


def test_counted_work_ignores_the_clock():
    stop = WorkUnits(time.perf_counter() - 5.0)          # deadline long past
    assert stop.may_start(1.0) and not stop.stopped(0.02)
    assert stop.budget(2.5, 0.1) == 2.5
    assert stop.cpsat_parameters(2.5, 8) == {"num_workers": 1, "max_deterministic_time": 2.5,
                                             "max_time_in_seconds": 60.0}


def test_the_wall_clock_gives_what_is_left():
    past = MaxRuntime(time.perf_counter() - 5.0)
    assert not past.may_start(0.0) and past.stopped(0.02)
    ahead = MaxRuntime(time.perf_counter() + 60.0)
    assert ahead.may_start(1.0) and not ahead.stopped(0.02)
    assert ahead.budget(2.5, 0.1) == 0.1
    assert ahead.cpsat_parameters(0.001, 8) == {"num_workers": 8, "max_time_in_seconds": 0.01}
