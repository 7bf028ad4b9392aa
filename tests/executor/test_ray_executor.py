"""The Ray executor on a three-node local Ray cluster (fleet nodes a0, a1 in region-a, b0 in region-b):
gangs pinned to the plan's nodes, a move and a migrate through checkpoints with the parameters bitwise
equal to an uninterrupted run, measured seconds and bytes per action, and a Ray node that dies reported
as a failed node whose job resumes elsewhere from its last checkpoint."""

import json

import pytest

from executor.actions import response_from_placements
from executor.train import checkpoint, stores
from executor.train.compare import param_diff
from executor.train.spec import TrainSpec
from models import Placement, parse_request

pytestmark = pytest.mark.ray

TIMEOUT_S = 120.0
# A small exact-mode job that never finishes by itself (the test stops it): W=2.
SPEC = TrainSpec(world_size=2, steps=1_000_000, micro_batch=4, in_dim=32, hidden=64, layers=1, classes=4,
                 dataset_size=256, exact=True)


def fleet(extra: str | None = None) -> dict:
    groups_a = [{"prefix": "a", "count": 2, "accelerator": "cpu", "devices": 4}]
    if extra:
        groups_a.append({"prefix": extra, "count": 1, "accelerator": "cpu", "devices": 4})
    return {"regions": [{"name": "region-a", "storage_gbps": 0.5}, {"name": "region-b", "storage_gbps": 0.5}],
            "links": [{"a": "region-a", "b": "region-b", "gbps": 0.5}],
            "clusters": [{"name": "ca", "region": "region-a", "node_groups": groups_a},
                         {"name": "cb", "region": "region-b",
                          "node_groups": [{"prefix": "b", "count": 1, "accelerator": "cpu", "devices": 4}]}]}


def act(ex, fl: dict, job: str, cluster: str | None, nodes: dict | None):
    """Apply the plan that takes `job` from where the executor runs it to (cluster, nodes); None: preempt."""
    current = ex.placements().get(job)
    req = parse_request({"epoch_s": 60, "fleet": fl, "jobs": [{
        "id": job, "replicas": {"min": 1, "max": 2}, "speed": {"cpu": 1.0}, "checkpoint_gb": 0.01,
        "current": current.model_dump() if current else None}]})
    placed = {} if nodes is None else {job: Placement(cluster=cluster, accelerator="cpu", nodes=nodes)}
    [applied] = ex.apply(req, response_from_placements(req, placed), 0.0)
    return applied


def actor_nodes(gang) -> list[str]:
    """The fleet node each of the gang's actors runs on, in rank order (from Ray's own node table)."""
    import ray

    from executor.train.ray_gang import NODE_RESOURCE_PREFIX

    by_id = {n["NodeID"]: n for n in ray.nodes()}
    out = []
    for a in gang.actors:
        node_id = ray.get(a.__ray_call__.remote(lambda self: __import__("ray").get_runtime_context().get_node_id()),
                          timeout=30)
        out.append(next(r[len(NODE_RESOURCE_PREFIX):] for r in by_id[node_id]["Resources"]
                        if r.startswith(NODE_RESOURCE_PREFIX)))
    return out


def test_move_and_migrate_on_the_named_nodes_keep_training_bitwise(ray_cluster, tmp_path):
    from executor.ray_backend import RayExecutor
    from executor.train import ray_gang as RG

    fl = fleet()
    region_b = f"file://{tmp_path}/object-store/b"       # region-b's checkpoints through fsspec: blob, manifest
    ex = RayExecutor(tmp_path / "work", grace_s=60, timeout_s=TIMEOUT_S, locations={"region-b": region_b})
    try:
        ex.add_job("j", SPEC, "region-a")
        start = act(ex, fl, "j", "ca", {"a0": 2})
        assert start.kind == "start" and actor_nodes(ex.gang_of("j")) == ["a0", "a0"]
        ex.wait_step("j", 30, TIMEOUT_S)
        move = act(ex, fl, "j", "ca", {"a0": 1, "a1": 1})
        assert move.kind == "move" and actor_nodes(ex.gang_of("j")) == ["a0", "a1"]
        at_move = ex.steps_done()["j"]
        ex.wait_step("j", at_move + 30, TIMEOUT_S)
        migrate = act(ex, fl, "j", "cb", {"b0": 1})
        assert migrate.kind == "migrate" and actor_nodes(ex.gang_of("j")) == ["b0"]
        at_migrate = ex.steps_done()["j"]
        ex.wait_step("j", at_migrate + 30, TIMEOUT_S)
        stop = act(ex, fl, "j", None, None)
        at_stop = ex.steps_done()["j"]
        assert stop.kind == "preempt" and ex.placements() == {} and 0 < at_move < at_migrate < at_stop
    finally:
        ex.close()
    for a in (move, migrate):
        m = a.measured_s
        assert m["stop_s"] > 0 and m["prelaunch_s"] > 0 and m["total_s"] > 0 and a.checkpoint_bytes > 0
        assert m["launch_s"] == 0.0            # prelaunched: the start-up is off the pause
        assert a.modelled_pause_s > 0
    assert migrate.measured_s["transfer_s"] > 0
    storage = tmp_path / "work" / "storage"
    assert not (storage / "region-a" / "j").exists() and not (storage / "region-b").exists()
    assert stores.open_store(f"{region_b}/j").latest_valid() == (at_stop, [])
    # The reference: the same job uninterrupted on one worker to the same step.
    from dataclasses import replace

    ref = RG.launch(replace(SPEC, steps=at_stop).to_dict(), {"a0": 1}, tmp_path / "ref-run", tmp_path / "ref",
                    timeout_s=TIMEOUT_S)
    assert RG.wait(ref, TIMEOUT_S) == "finished"
    d = param_diff(tmp_path / "ref" / checkpoint.ckpt_name(at_stop), f"{region_b}/j/{checkpoint.ckpt_name(at_stop)}")
    assert d["max_abs_param_diff"] == 0.0 and d["optimizer_state_equal"]


def test_the_loop_fails_a_job_over_from_a_ray_node_that_dies_to_its_last_checkpoint(ray_cluster, tmp_path):
    """`meridian run`'s loop (`executor.live.run_live`) with the Ray executor: the job runs on c0 (the
    faster type), c0 is removed from the cluster mid-run (and a torn checkpoint left in its region's
    fsspec location, a blob whose manifest never came); the loop hears c0 failed, re-plans, and the job
    resumes on a1 from the dead gang's last checkpoint, skipping the torn one, and ends bitwise equal to
    an uninterrupted run."""
    import time
    from dataclasses import replace

    from executor.live import load_live_input, run_live
    from executor.train import ray_gang as RG
    from tests.support.ray_cluster import node_args

    node = ray_cluster.add_node(**node_args("c0"))
    ray_cluster.wait_for_nodes(timeout=60)
    spec = replace(SPEC, world_size=1, steps=6000, checkpoint_every=100)
    fl = {"regions": [{"name": "region-a", "storage_gbps": 0.5}],
          "clusters": [{"name": "ca", "region": "region-a", "node_groups": [
              {"prefix": "a", "count": 2, "accelerator": "cpu", "devices": 1},
              {"prefix": "c", "count": 1, "accelerator": "cpu-fast", "devices": 1}]}],
          "down_nodes": ["a0"]}          # the head stays out of the plans: a1 is where the job fails over
    live = load_live_input({"epoch_s": 3, "fleet": fl}, [
        {"id": "j", "tier": "standard", "replicas": {"min": 1, "max": 1}, "speed": {"cpu-fast": 1.0, "cpu": 0.5},
         "checkpoint_gb": 0.01, "submit_s": 0, "train": spec.to_dict()}])
    url = f"file://{tmp_path}/object-store/a"
    store = stores.open_store(f"{url}/j")
    work = tmp_path / "work"
    seen: dict = {}

    def kill_c0_mid_run(rec, st) -> None:
        """An observer (the loop waits for it): once c0's gang has checkpointed, remove c0 and leave a torn write."""
        if "last_checkpoint" in seen:
            return
        try:
            if json.loads((work / "runs" / "j" / "launch-000" / "progress.json").read_text())["step"] < 150:
                return
        except (OSError, ValueError):
            return
        ray_cluster.remove_node(node, allow_graceful=False)
        time.sleep(1.0)                                        # its worker, cut off from its raylet, is gone
        seen["last_checkpoint"] = store.latest_valid()[0]     # the dead gang's last
        seen["torn"] = torn = spec.steps - 1                   # above anything it reached: a blob, no manifest
        store.fs.makedirs(store._path(torn), exist_ok=True)
        store.fs.pipe_file(store._path(torn, "state-dead.pt"), b"x" * 100)

    failed = []
    res = run_live(live, work, epoch_s=3.0, time_limit_s=1.0, grace_s=30, max_epochs=200, backend="ray",
                   locations={"region-a": url}, log=lambda msg: None,
                   observers=[lambda rec, st: failed.extend(rec.failed_nodes), kill_c0_mid_run])
    assert failed == ["c0"]
    assert res.state.jobs["j"].status == "done" and res.steps["j"] == spec.steps
    # c0 (cpu-fast) -> a1 (cpu): another type, a migrate by the contract (in one region: nothing to copy)
    assert [(r["kind"], r["workers"]) for r in res.rows] == [("start", 1), ("migrate", 1)]
    resumed = [json.loads(t.read_text()) for t in sorted((work / "runs" / "j").glob("launch-*/timings.json"))][-1]
    assert resumed["resumed_from_step"] >= seen["last_checkpoint"] >= 100
    assert resumed["skipped_checkpoints"] == [f"{checkpoint.ckpt_name(seen['torn'])}: torn (no manifest.json)"]
    ref = RG.launch(spec.to_dict(), {"a1": 1}, tmp_path / "ref-run", tmp_path / "ref", timeout_s=TIMEOUT_S)
    assert RG.wait(ref, TIMEOUT_S) == "finished"
    d = param_diff(tmp_path / "ref" / checkpoint.ckpt_name(spec.steps), f"{url}/j/{checkpoint.ckpt_name(spec.steps)}")
    assert d["max_abs_param_diff"] == 0.0 and d["optimizer_state_equal"]


def test_meridian_run_on_ray_runs_the_jobs_through_the_loop_and_reports_them(ray_cluster, tmp_path, capsys):
    """`meridian run --backend ray` on the test cluster's a0 and a1 (one slot each): the premium job's gang
    spans both nodes, the basic one waits and starts when it has finished; both run to their last step."""
    from service.cli import main

    train = {"world_size": 2, "steps": 40, "micro_batch": 4, "in_dim": 32, "hidden": 64, "layers": 1,
             "classes": 4, "dataset_size": 256, "exact": True}
    (tmp_path / "fleet.json").write_text(json.dumps({"epoch_s": 5, "fleet": {
        "regions": [{"name": "region-a", "storage_gbps": 0.5}],
        "clusters": [{"name": "ca", "region": "region-a",
                      "node_groups": [{"prefix": "a", "count": 2, "accelerator": "cpu", "devices": 1}]}]}}))
    (tmp_path / "jobs.json").write_text(json.dumps([
        {"id": "p", "tier": "premium", "replicas": {"min": 2, "max": 2}, "speed": {"cpu": 1.0}, "submit_s": 0,
         "train": {**train, "seed": 1}},
        {"id": "q", "tier": "basic", "replicas": {"min": 2, "max": 2}, "speed": {"cpu": 1.0}, "submit_s": 0,
         "train": {**train, "seed": 2}}]))
    rc = main(["run", str(tmp_path / "fleet.json"), str(tmp_path / "jobs.json"), "--backend", "ray", "--ray", "auto",
               "--workdir", str(tmp_path / "work"), "--json", str(tmp_path / "run.json"), "--time-limit", "1"])
    out = capsys.readouterr().out.splitlines()
    assert rc == 0
    assert out[-3:] == ["p: done, 40/40 steps, actions {'start': 1}", "q: done, 40/40 steps, actions {'start': 1}",
                        "2/2 jobs finished; actions: start 2"]
    doc = json.loads((tmp_path / "run.json").read_text())
    assert [(r["job"], r["kind"], r["workers"]) for r in doc["pauses"]] == [("p", "start", 2), ("q", "start", 2)]
    assert all(r["measured_s"] > 0 and r["modelled_s"] > 0 for r in doc["pauses"])
    assert doc["jobs"]["q"]["first_start_s"] >= doc["jobs"]["p"]["finish_s"]
    for job in ("p", "q"):
        [(step, path)] = checkpoint.list_checkpoints(tmp_path / "work" / "storage" / "region-a" / job)[:1]
        assert step == 40 and checkpoint.verify(path) is None


def _cli_files(tmp_path, jobs: list[str], steps: int = 40, every: int = 0) -> tuple[str, str]:
    """A one-node fleet (a0, region-a) and `jobs`, each a W=1 job, as `meridian run` reads them."""
    (tmp_path / "fleet.json").write_text(json.dumps({"epoch_s": 5, "fleet": {
        "regions": [{"name": "region-a", "storage_gbps": 0.5}],
        "clusters": [{"name": "ca", "region": "region-a",
                      "node_groups": [{"prefix": "a", "count": 1, "accelerator": "cpu", "devices": 1}]}]}}))
    train = {"world_size": 1, "steps": steps, "checkpoint_every": every, "micro_batch": 4, "in_dim": 32, "hidden": 64, "layers": 1,
             "classes": 4, "dataset_size": 256, "exact": True}
    (tmp_path / "jobs.json").write_text(json.dumps([
        {"id": j, "replicas": {"min": 1, "max": 1}, "speed": {"cpu": 1.0}, "submit_s": 0, "train": train}
        for j in jobs]))
    return str(tmp_path / "fleet.json"), str(tmp_path / "jobs.json")


def test_meridian_run_on_ray_refuses_a_job_whose_checkpoints_in_its_storage_are_all_damaged(ray_cluster, tmp_path,
                                                                                             capsys):
    # the check looked in WORKDIR/storage alone: the job's gang launched, found nothing to resume from in
    # --checkpoint-storage, and the run ended in an "internal error" with Ray's text
    import torch

    from service.cli import main

    fleet_json, jobs_json = _cli_files(tmp_path, ["p"])
    ckpt = tmp_path / "store" / "p"
    checkpoint.save(ckpt, 20, {"step": 20, "w": torch.zeros(4)})
    (ckpt / checkpoint.ckpt_name(20) / checkpoint.STATE).write_bytes(b"")
    size = json.loads((ckpt / checkpoint.ckpt_name(20) / checkpoint.META).read_text())["bytes"]
    assert main(["run", fleet_json, jobs_json, "--backend", "ray", "--ray", "auto", "--workdir", str(tmp_path / "w"),
                 "--checkpoint-storage", f"region-a={tmp_path / 'store'}"]) == 2
    assert capsys.readouterr().err.strip().splitlines()[-1] == (
        f"meridian run: job 'p': no intact checkpoint in {ckpt} to resume from ({checkpoint.ckpt_name(20)}: "
        f"torn (0 of {size} bytes)); restore one, or remove the folder to start the job afresh")
    assert not (tmp_path / "w" / "runs").exists()


def test_a_ray_job_resumed_over_damaged_checkpoints_stops_the_loop_in_one_line(ray_cluster, tmp_path):
    # preempted, its checkpoints damaged, started again: the gang failed before its first step and the
    # apply raised a RuntimeError carrying Ray's task error text
    from executor.ray_backend import RayExecutor

    fl = fleet()
    ex = RayExecutor(tmp_path / "work", grace_s=60, timeout_s=TIMEOUT_S)
    try:
        ex.add_job("j", SPEC, "region-a")
        act(ex, fl, "j", "ca", {"a0": 1})
        ex.wait_step("j", 3, TIMEOUT_S)
        act(ex, fl, "j", None, None)
        ckpt = ex.checkpoint_location("j")
        [(step, path)] = checkpoint.list_checkpoints(ckpt)
        (path / checkpoint.STATE).write_bytes(b"")
        with pytest.raises(checkpoint.CheckpointError) as err:
            act(ex, fl, "j", "ca", {"a0": 1})
    finally:
        ex.close()
    assert str(err.value).startswith(f"job j: no intact checkpoint in {ckpt} to resume from "
                                     f"({checkpoint.ckpt_name(step)}: torn (0 of ")
    assert checkpoint.list_checkpoints(ckpt) == [(step, path)] and (path / checkpoint.STATE).read_bytes() == b""


def test_a_checkpoint_write_that_fails_in_a_ray_worker_stops_the_run_in_one_line(ray_cluster, tmp_path, capsys):
    # region-a's fsspec location turned into a file mid-run: the worker's OSError was no CheckpointError, so
    # the job was relaunched, and the relaunch died creating its actors (an "internal error" with Ray's text);
    # q, waiting for the slot, never ran
    import threading
    import time

    from service.cli import main

    fleet_json, jobs_json = _cli_files(tmp_path, ["p", "q"], steps=1000, every=100)
    store = tmp_path / "store"
    work = tmp_path / "w"

    def break_store() -> None:     # once p has trained: region-a's storage is a file from now on
        end = time.time() + TIMEOUT_S
        while time.time() < end and not (work / "runs" / "p" / "launch-000" / "progress.json").exists():
            time.sleep(0.05)
        store.mkdir(exist_ok=True)
        store.rename(tmp_path / "gone")
        store.write_text("not a folder")

    breaker = threading.Thread(target=break_store, daemon=True)
    breaker.start()
    rc = main(["run", fleet_json, jobs_json, "--backend", "ray", "--ray", "auto", "--workdir", str(work),
               "--checkpoint-storage", f"region-a=file://{store}"])
    breaker.join(5)
    err = capsys.readouterr().err.strip().splitlines()
    assert rc == 1
    assert err[-1].startswith(f"meridian run: job p: cannot write checkpoint file://{store}/p/ckpt-"), err[-1]
    assert err[-1].endswith("Not a directory"), err[-1]
    assert len(list((work / "runs" / "p").glob("launch-*"))) == 1 and not (work / "runs" / "q").exists()
