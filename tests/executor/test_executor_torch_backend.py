"""The torch executor makes a plan's actions real: torchrun workers started on the placement's nodes,
stopped through their checkpoint, relaunched at the new size, the checkpoint moved on a migrate."""

import os
import shutil
import signal
import time

import pytest

pytest.importorskip("torch")

from executor.torch_backend import PlanApplyError, TorchExecutor, worker_nodes
from executor.train import checkpoint
from executor.train import launch as L
from executor.train.cycle import wait_first_step
from models import Action, Placement, PlanResponse, parse_request
from tests.support.executor import TIMEOUT_S, small

FLEET = {
    "regions": [{"name": "east", "storage_gbps": 0.5}, {"name": "west", "storage_gbps": 0.25}],
    "links": [{"a": "east", "b": "west", "gbps": 0.1}],
    "clusters": [
        {"name": "east-a", "region": "east",
         "node_groups": [{"prefix": "e-", "count": 2, "accelerator": "cpu", "devices": 2}]},
        {"name": "west-a", "region": "west",
         "node_groups": [{"prefix": "w-", "count": 1, "accelerator": "cpu", "devices": 4}]},
    ],
}


def request(current: Placement | None, checkpoint_region: str | None = None):
    return parse_request({
        "epoch_s": 60, "fleet": FLEET, "policy": {"restart_overhead_s": 5},
        "jobs": [{"id": "j", "replicas": {"min": 1, "max": 4}, "speed": {"cpu": 1.0}, "checkpoint_gb": 0.5,
                  "current": current.model_dump() if current else None, "checkpoint_region": checkpoint_region}]})


def plan(kind: str, frm: Placement | None, to: Placement | None) -> PlanResponse:
    return PlanResponse(status="feasible", objective=0.0, bound=0.0, gap=0.0, breakdown=None, solve_s=0.0,
                        actions=[Action(job="j", kind=kind, from_=frm, to=to)])


def at(cluster: str, nodes: dict[str, int]) -> Placement:
    return Placement(cluster=cluster, accelerator="cpu", nodes=nodes)


@pytest.fixture
def executor(tmp_path):
    ex = TorchExecutor(tmp_path, grace_s=TIMEOUT_S, timeout_s=TIMEOUT_S)
    ex.add_job("j", small(world_size=2, steps=1_000_000, checkpoint_every=0), "east")
    yield ex
    ex.close()


def test_worker_nodes_takes_replicas_in_node_order():
    assert worker_nodes(at("c", {"a": 2, "b": 2}), 3) == {"a": 2, "b": 1}
    assert worker_nodes(at("c", {"a": 1, "b": 2}), 1) == {"a": 1}


def test_start_resize_migrate_preempt_and_restart_through_checkpoints(executor, tmp_path):
    two_nodes = at("east-a", {"e-0": 1, "e-1": 1})
    [start] = executor.apply(request(None), plan("start", None, two_nodes), 0.0)
    assert start.kind == "start" and start.modelled_pause_s == 5.0       # O: no checkpoint yet
    assert {"launch_s", "rendezvous_s", "load_s", "first_step_s"} <= start.measured_s.keys()
    assert executor.placements() == {"j": two_nodes}
    assert executor.workers_of("j") == 2                                  # two torchrun agents, 1 + 1

    one = at("east-a", {"e-0": 1})
    [resize] = executor.apply(request(two_nodes), plan("resize", two_nodes, one), 60.0)
    assert resize.measured_s["stop_s"] > 0 and resize.checkpoint_bytes > 0
    # prelaunched: the new workers started while the old ones trained; the pause has no cold start in it
    assert resize.measured_s["launch_s"] == 0.0 and resize.measured_s["prelaunch_s"] > 0
    assert resize.modelled_pause_s == pytest.approx(5 + 0.5 / 0.5 + 0.5 / 0.5)
    assert executor.workers_of("j") == 1

    west = at("west-a", {"w-0": 3})                                       # 3 does not divide W = 2: runs 2
    [migrate] = executor.apply(request(one), plan("migrate", one, west), 120.0)
    assert migrate.measured_s["transfer_s"] > 0
    assert executor.workers_of("j") == 2
    assert checkpoint.latest_valid(tmp_path / "storage" / "west" / "j")[0] is not None
    assert not (tmp_path / "storage" / "east" / "j").exists()

    group = executor._jobs["j"].job.group
    [preempt] = executor.apply(request(west), plan("preempt", west, None), 180.0)
    assert preempt.modelled_pause_s == pytest.approx(5 + 0.5 / 0.25)          # O + S(west)
    assert preempt.measured_s["stop_s"] > 0
    assert executor.placements() == {}
    assert L.worker_pids(group) == {}
    stopped_at = executor.steps_done()["j"]
    assert checkpoint.latest_valid(tmp_path / "storage" / "west" / "j")[0].name == checkpoint.ckpt_name(stopped_at)

    [restart] = executor.apply(request(None, "west"), plan("start", None, one), 240.0)
    assert restart.modelled_pause_s == pytest.approx(5 + 0.5 / 0.1 + 0.5 / 0.5)   # O + X(west, east) + S(east)
    assert restart.measured_s["transfer_s"] > 0
    timings = L.read_json(executor._jobs["j"].job.group.run_dir / "timings.json")
    assert timings["resumed_from_step"] == stopped_at
    assert executor.checkpoint_gb()["j"] == pytest.approx(restart.checkpoint_bytes / 1e9)

    # A worker SIGKILLed while the epoch runs: the executor relaunches the job in place, from its checkpoint.
    group = executor._jobs["j"].job.group
    [pid] = L.worker_pids(group).values()
    os.kill(pid, signal.SIGKILL)
    deadline = time.time() + TIMEOUT_S
    while L.worker_pids(group) and time.time() < deadline:
        time.sleep(0.01)
    res = executor.run_epoch(300.0, 1.0)
    assert res.restarts == {"j": 1} and res.finished == []
    assert executor.placements() == {"j": one}
    relaunched = executor._jobs["j"].job.group
    assert wait_first_step(relaunched, TIMEOUT_S)["resumed_from_step"] >= stopped_at


def test_a_plan_that_does_not_match_what_runs_is_refused_whole(executor):
    here = at("east-a", {"e-0": 1})
    with pytest.raises(PlanApplyError, match=r"job j: resize from .* but it runs at None"):
        executor.apply(request(None), plan("resize", here, at("east-a", {"e-0": 2})), 0.0)
    assert executor.placements() == {}
    with pytest.raises(PlanApplyError, match="unknown job 'k'"):
        executor.apply(request(None), PlanResponse(status="feasible", objective=0, bound=0, gap=0, breakdown=None,
                                                   solve_s=0, actions=[Action(job="k", kind="start", from_=None,
                                                                              to=here)]), 0.0)
    assert executor.placements() == {}


def test_a_migrate_whose_destination_cannot_be_written_ends_in_one_line_and_leaves_no_gated_worker(executor, tmp_path):
    one = at("east-a", {"e-0": 1})
    executor.apply(request(None), plan("start", None, one), 0.0)
    prelaunched = []
    real = executor._prelaunch

    def prelaunch(live, nodes, region):
        # the new workers come up gated; then the destination's storage stops being a folder (root writes
        # through permissions, so a read-only folder would not stop this test's writes)
        prelaunched.append(real(live, nodes, region))
        shutil.rmtree(tmp_path / "storage" / "west" / "j")
        (tmp_path / "storage" / "west" / "j").write_text("not a folder")
        return prelaunched[-1]

    executor._prelaunch = prelaunch
    with pytest.raises(checkpoint.CheckpointWriteError,
                       match=r"^job j: cannot move its checkpoint from region east to west: File exists"):
        executor.apply(request(one), plan("migrate", one, at("west-a", {"w-0": 2})), 60.0)
    [group] = prelaunched
    assert L.worker_pids(group) == {}
    assert checkpoint.latest_valid(tmp_path / "storage" / "east" / "j")[0] is not None
