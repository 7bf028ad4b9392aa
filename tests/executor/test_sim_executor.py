"""The simulated executor: work at the contract's rates, exactly the contract's pauses, all-or-nothing apply."""

import pytest

from executor.actions import response_from_placements
from executor.sim import PlanApplyError, SimExecutor
from models import Fleet, Job, Placement, PlanRequest, Policy, Replicas

FLEET = Fleet.model_validate({
    "regions": [{"name": "east", "storage_gbps": 2.0}, {"name": "west", "storage_gbps": 1.0}],
    "links": [{"a": "east", "b": "west", "gbps": 0.5}],
    "clusters": [
        {"name": "e", "region": "east", "node_groups": [{"prefix": "e-", "count": 2, "accelerator": "G", "devices": 8}]},
        {"name": "w", "region": "west", "node_groups": [{"prefix": "w-", "count": 1, "accelerator": "G", "devices": 8}]},
    ]})


def job(jid: str, dpr: int = 8, rmax: int = 1, ckpt: float = 17.0, **kw) -> Job:
    return Job(id=jid, replicas=Replicas(min=1, max=rmax), devices_per_replica=dpr, speed={"G": 1.0},
               checkpoint_gb=ckpt, **kw)


def request(*jobs: Job, down=()) -> PlanRequest:
    fleet = FLEET.model_copy(update={"down_nodes": list(down)})
    return PlanRequest(epoch_s=300, fleet=fleet, jobs=list(jobs), policy=Policy(restart_overhead_s=30))


def at(cluster: str, **nodes: int) -> Placement:
    return Placement(cluster=cluster, accelerator="G", nodes={k.replace("_", "-"): v for k, v in nodes.items()})


def step(ex: SimExecutor, req: PlanRequest, placed: dict, now: float):
    applied = ex.apply(req, response_from_placements(req, placed), now)
    return applied, ex.run_epoch(now, 300)


def test_start_pays_restart_then_works_at_its_rate():
    ex = SimExecutor({"a": 8 * 600.0})
    applied, r1 = step(ex, request(job("a")), {"a": at("e", e_0=1)}, 0)
    assert [(a.kind, a.modelled_pause_s) for a in applied] == [("start", 30.0)]
    assert r1.work == {"a": 8 * 270.0} and r1.paused_device_s == 8 * 30 and r1.busy_device_s == 8 * 270
    r2 = ex.run_epoch(300, 300)
    assert r2.work == {"a": 8 * 300.0} and r2.finished == []
    r3 = ex.run_epoch(600, 300)
    assert r3.finished == ["a"] and r3.finish_s == {"a": 630.0} and r3.work == {"a": 8 * 30.0}
    assert r3.idle_device_s == 16 * 300 + 8 * 300 - 8 * 30


def test_restart_from_checkpoint_and_migration_pauses():
    ex = SimExecutor({"a": 1e6})
    step(ex, request(job("a")), {"a": at("e", e_0=1)}, 0)
    running = job("a", current=at("e", e_0=1))
    applied, _ = step(ex, request(running), {}, 300)
    assert [(a.kind, a.modelled_pause_s) for a in applied] == [("preempt", 30 + 17 / 2.0)]
    assert ex.lost_device_s == 8 * 38.5
    applied, r = step(ex, request(job("a", checkpoint_region="east")), {"a": at("w", w_0=1)}, 600)
    assert [(a.kind, a.modelled_pause_s) for a in applied] == [("start", 30 + 17 / 0.5 + 17 / 1.0)]
    assert r.work == {"a": 8 * (300 - 81.0)}
    applied, r = step(ex, request(job("a", current=at("w", w_0=1))), {"a": at("e", e_1=1)}, 900)
    assert [(a.kind, a.modelled_pause_s) for a in applied] == [("migrate", 30 + 17 + 34 + 8.5)]
    assert r.paused_device_s == 8 * 89.5


def test_pause_is_capped_at_the_epoch_like_the_contract():
    ex = SimExecutor({"a": 1e6})
    applied, r = step(ex, request(job("a", ckpt=1000.0, checkpoint_region="east")), {"a": at("w", w_0=1)}, 0)
    assert applied[0].modelled_pause_s == 30 + 2000 + 1000
    assert r.paused_device_s == 8 * 300 and r.work == {"a": 0.0}


def test_remote_data_runs_at_the_locality_penalty():
    ex = SimExecutor({"a": 1e6})
    _, r = step(ex, request(job("a", data_region="east")), {"a": at("w", w_0=1)}, 0)
    assert r.work["a"] == pytest.approx(8 * 270 * 0.9)


def test_elastic_job_rate_follows_replicas():
    ex = SimExecutor({"a": 1e6})
    _, r = step(ex, request(job("a", dpr=2, rmax=8)), {"a": at("e", e_0=3, e_1=2)}, 0)
    assert r.work["a"] == 10 * 270.0 and r.busy_device_s == 10 * 270


@pytest.mark.parametrize(("placed", "down", "message"), [
    ({"a": at("e", e_0=1), "b": at("e", e_0=1)}, (), "node e-0 overfull: 16 > 8 devices"),
    ({"a": at("e", e_1=1)}, ("e-1",), "node 'e-1' is down"),
    ({"a": at("e", w_0=1)}, (), "node 'w-0' is not a G node of e"),
])
def test_bad_plans_are_refused_whole(placed, down, message):
    ex = SimExecutor({"a": 1e6, "b": 1e6})
    step(ex, request(job("a"), job("b")), {"b": at("w", w_0=1)}, 0)
    before = ex.placements()
    req = request(job("a"), job("b", current=at("w", w_0=1)), down=down)
    with pytest.raises(PlanApplyError, match=message):
        ex.apply(req, response_from_placements(req, placed), 300)
    assert ex.placements() == before


def test_job_left_on_a_down_node_is_refused():
    ex = SimExecutor({"a": 1e6})
    step(ex, request(job("a")), {"a": at("e", e_0=1)}, 0)
    req = request(job("a", current=at("e", e_0=1)), down=["e-0"])
    with pytest.raises(PlanApplyError, match="left running on down node"):
        ex.apply(req, response_from_placements(req, {"a": at("e", e_0=1)}), 300)


def test_action_from_must_match_what_runs():
    ex = SimExecutor({"a": 1e6})
    req = request(job("a", current=at("e", e_0=1)))
    with pytest.raises(PlanApplyError, match="but it runs at None"):
        ex.apply(req, response_from_placements(req, {"a": at("e", e_1=1)}), 0)
