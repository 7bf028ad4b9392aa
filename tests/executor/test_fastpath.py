"""The cpsat fast path answers only where its plan is optimal: valid by the independent checker and
never below the planner's objective, on requests captured from replays."""

import json

import pytest

from datasets.attributes import to_job_specs
from datasets.fleets import single_cluster_fleet, synthetic_fleet
from datasets.synthetic import synthetic_trace
from executor.schedulers.cpsat import CpsatScheduler
from executor.schedulers.fastpath import optimal_starts
from replay.harness import ReplaySetup, run_replay
from tests.support import checker


class Capture(CpsatScheduler):
    """The real scheduler, keeping every request it was asked to plan."""

    def __init__(self):
        super().__init__(replan_every=1, fast_path=False)
        self.requests = []

    def decide(self, request, state):
        self.requests.append(request.model_copy(deep=True))
        return super().decide(request, state)


@pytest.mark.parametrize("fleet", [single_cluster_fleet(3, 8),
                                   synthetic_fleet(regions=2, clusters_per_region=1, nodes_per_cluster=2, seed=4)])
def test_fast_path_plans_are_valid_and_optimal(fleet, monkeypatch):
    pc = checker.require()
    cap = Capture()
    monkeypatch.setattr("replay.harness.make_scheduler", lambda name, **kw: cap)
    specs = to_job_specs(synthetic_trace(days=0.25, jobs_per_hour=16, median_duration_s=900, seed=6))
    run_replay(specs, fleet, ReplaySetup(scheduler="cpsat", time_limit_s=0.5, max_days=0.1))
    from placement import plan

    answered = declined = 0
    for req in cap.requests:
        fast = optimal_starts(req)
        if fast is None:
            declined += 1
            continue
        answered += 1
        world, obj = _checked(pc, req, fast)
        best = plan(req)
        _, best_obj, _, _ = pc.score(world, [a.model_dump() for a in best.assignments])
        assert obj >= best_obj - 1e-6 * max(1.0, abs(best_obj))
    assert answered > 5 and declined > 5


def _checked(pc, req, resp):
    """The checker's world of `req` and the objective of `resp`'s plan in it, which must be valid with
    exactly the actions `resp` reports."""
    world = pc.World(json.loads(req.model_dump_json()))
    viol, obj, _, actions = pc.score(world, [a.model_dump() for a in resp.assignments])
    assert viol == []
    assert {j: k for j, (k, _, _) in actions.items()} == {a.job: a.kind for a in resp.actions}
    return world, obj


class CaptureBackfill(CpsatScheduler):
    """The replay's cpsat scheduler (reservation and fast path on, as with backfill), keeping every
    backfill request it was asked to plan."""

    def __init__(self, **options):
        super().__init__(**options)
        self.backfills = []

    def decide(self, request, state):
        if request.policy.mode == "backfill":
            self.backfills.append(request.model_copy(deep=True))
        return super().decide(request, state)


def test_backfill_fast_path_plans_are_valid_and_reach_the_engines_backfill_optimum(monkeypatch):
    pc = checker.require()
    cap = {}

    def make(name, **kw):
        cap["s"] = CaptureBackfill(**kw)
        return cap["s"]

    monkeypatch.setattr("replay.harness.make_scheduler", make)
    specs = to_job_specs(synthetic_trace(days=0.3, jobs_per_hour=40, median_duration_s=1500, seed=2))
    run_replay(specs, single_cluster_fleet(5, 8), ReplaySetup(scheduler="cpsat", time_limit_s=0.5, max_days=0.1,
                                                              backfill_window_s=30.0))
    from placement import plan

    only_backfill = declined = 0
    for req in cap["s"].backfills:
        fast = optimal_starts(req)
        if fast is None:
            declined += 1
            continue
        if optimal_starts(req.model_copy(update={"policy": req.policy.model_copy(update={"mode": "epoch"})})) is None:
            only_backfill += 1      # answered only because running jobs stay put, or a job cannot start now
        world, obj = _checked(pc, req, fast)
        engine = plan(req)
        _, engine_obj, _, _ = pc.score(world, [a.model_dump() for a in engine.assignments])
        tol = 1e-6 * max(1.0, abs(engine_obj))
        assert engine_obj - tol <= obj <= engine.bound + tol
    assert only_backfill >= 5 and declined > 5


def test_backfill_fast_path_keeps_running_jobs_below_their_best_and_leaves_out_a_gang_that_cannot_start():
    pc = checker.require()
    fleet = single_cluster_fleet(2, 8)
    n0, n1 = _node_names(fleet)

    def cur(nodes):
        return {"cluster": fleet.clusters[0].name, "accelerator": "GPU", "nodes": nodes}

    data = {
        "epoch_s": 300, "fleet": json.loads(fleet.model_dump_json()),
        "policy": {"mode": "backfill", "deterministic": True},
        "jobs": [
            # elastic, running at 4 of its 8 replicas: an epoch plan would grow it, a backfill keeps it
            {"id": "elastic", "replicas": {"min": 1, "max": 8}, "speed": {"GPU": 1.0}, "current": cur({n0: 4})},
            {"id": "six", "replicas": {"min": 6, "max": 6}, "speed": {"GPU": 1.0}, "current": cur({n1: 6})},
            {"id": "gang", "replicas": {"min": 1, "max": 1}, "devices_per_replica": 8, "speed": {"GPU": 1.0}},
            {"id": "small", "replicas": {"min": 1, "max": 2}, "speed": {"GPU": 1.0}},
        ]}
    from models import PlanRequest
    from placement import plan

    req = PlanRequest.model_validate(data)
    fast = optimal_starts(req)
    assert optimal_starts(req.model_copy(update={"policy": req.policy.model_copy(update={"mode": "epoch"})})) is None
    assert {a.job: dict(a.nodes) for a in fast.assignments} == {"elastic": {n0: 4}, "six": {n1: 6}, "small": {n1: 2}}
    assert {a.job: a.kind for a in fast.actions} == {"small": "start"}
    assert [u.job for u in fast.unplaced] == ["gang"]
    world = pc.World(json.loads(req.model_dump_json()))
    viol, obj, _, _ = pc.score(world, [a.model_dump() for a in fast.assignments])
    assert viol == []
    _, engine_obj, _, _ = pc.score(world, [a.model_dump() for a in plan(req).assignments])
    assert obj == pytest.approx(engine_obj, rel=1e-9)


def _node_names(fleet):
    from models.fleet_index import fleet_index

    return list(fleet_index(fleet).names)
