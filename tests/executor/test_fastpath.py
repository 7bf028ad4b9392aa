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
        world = pc.World(json.loads(req.model_dump_json()))
        viol, obj, _, actions = pc.score(world, [a.model_dump() for a in fast.assignments])
        assert viol == []
        assert {j: k for j, (k, _, _) in actions.items()} == {a.job: a.kind for a in fast.actions}
        best = plan(req)
        _, best_obj, _, _ = pc.score(world, [a.model_dump() for a in best.assignments])
        assert obj >= best_obj - 1e-6 * max(1.0, abs(best_obj))
    assert answered > 5 and declined > 5
