"""The controller's Gittins service factor (`--service gittins`): the index of a small distribution as
computed by hand, learned from what a control plane knows (finished jobs' service, active jobs'
attained service as a lower bound) and never from a job's duration, constant within a grid cell."""

from __future__ import annotations

import pytest

from executor.loop import Arrival, JobState, LoopState
from models import Job, Replicas
from replay.controller import SlaController
from replay.gittins import gittins_indices, quantise, survival
from replay.options import ReplayOptions

HOUR = 3600.0


def test_the_index_of_three_jobs_of_one_one_and_three_hours():
    # P(S > 0, 2, 4) = 1, 1/3, 0; service spent per cell: [0, 2] 4/3 h, [2, 4] 1/3 h (per job started)
    # G(0) = max(2/3 / (4/3), 1 / (5/3)) = 0.6: the quantum to 4 h pays best; G(2) = (1/3) / (1/3) = 1
    grid = (0.0, 2.0, 4.0)
    surv = survival([1.0, 1.0, 3.0], [], grid)
    assert surv == pytest.approx([1.0, 1 / 3, 0.0])
    assert gittins_indices(surv, grid) == pytest.approx([0.6, 1.0, 1.0])


def test_an_active_jobs_attained_service_is_a_lower_bound_kaplan_meier():
    # events at 1 and 3, one job still running at 2: at 1, one of three ends; at 3, the one left of two
    assert survival([1.0, 3.0], [2.0], (0.0, 1.5, 2.5, 4.0)) == pytest.approx([1.0, 2 / 3, 2 / 3, 0.0])


def test_quantised_to_powers_of_the_step():
    assert [quantise(x, 2.0) for x in (0.6, 0.36, 0.3, 1.0)] == [0.5, 0.5, 0.25, 1.0]


def job(jid: str, attained_h: float, work: float = 1e6) -> JobState:
    spec = Job(id=jid, tier="basic", replicas=Replicas(min=1, max=1), devices_per_replica=1, speed={"GPU": 1.0})
    return JobState(arrival=Arrival(0.0, spec, work), admitted_s=0.0, status="running",
                    attained_device_s=attained_h * HOUR)


def learned(work_r: float = 1e6, work_q: float = 1e6, q_h: float = 2.5) -> tuple[SlaController, LoopState]:
    """Three jobs finish with 1, 1 and 3 GPU-hours while r (0.5 h so far) and q (`q_h` so far) run on:
    Kaplan-Meier P(S > 0, 2, 4) = 1, 1/2, 0, so G = 0.5 at 0 and 1.0 from 2 h."""
    c = SlaController(service="gittins", gittins_grid_h=(0.0, 2.0, 4.0), gittins_min_samples=3)
    state = LoopState(now_s=0.0, epoch_s=300.0)
    for st in (job("f1", 1.0), job("f2", 1.0), job("f3", 3.0), job("r", 0.5, work_r), job("q", q_h, work_q)):
        state.jobs[st.id] = st
        state.active[st.id] = None
    assert c.priorities(state) == {"f1": 0.25, "f2": 0.25, "f3": 0.25, "r": 1.0, "q": 0.25}   # the levels, prior
    for jid in ("f1", "f2", "f3"):
        state.jobs[jid].status = "done"
        del state.active[jid]
    state.now_s = 3600.0
    return c, state


def test_once_enough_jobs_finished_a_job_near_where_the_others_ended_outranks_a_young_one():
    c, state = learned()
    assert c.priorities(state) == {"r": 0.5, "q": 1.0}


def test_a_running_jobs_duration_is_never_read():
    c1, s1 = learned(work_r=1.0, work_q=1.0)
    c2, s2 = learned(work_r=1e9, work_q=1e9)
    assert c1.priorities(s1) == c2.priorities(s2) == {"r": 0.5, "q": 1.0}


def test_the_priority_holds_while_the_service_stays_in_its_grid_cell():
    c, state = learned(q_h=2.5)
    before = c.priorities(state)
    state.jobs["q"].attained_device_s = 3.9 * HOUR       # still in [2, 4): same index
    state.jobs["r"].attained_device_s = 1.9 * HOUR       # still in [0, 2)
    state.now_s += 300.0
    assert c.priorities(state) == before


def test_an_unknown_service_is_refused_by_name():
    with pytest.raises(ValueError, match="service: expected one of levels, gittins, gittins-class, clairvoyant, got 'lru'"):
        SlaController(service="lru")
    with pytest.raises(ValueError, match="service"):
        ReplayOptions(service="lru")
    assert ReplayOptions(service="gittins").setup().service == "gittins"
