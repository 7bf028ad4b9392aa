"""`executor-check --backend ray`: the executor check driven through the Ray executor's `apply` on N Ray
nodes (fleet nodes a0..a{N-2} in region-a, b0 in region-b), each action a plan the contract's rules
name: start on 4 workers, preempt and start again (same r), resize across two nodes, resize to one
worker, resize back to 4 across two nodes, move to another node, migrate to the other region's storage,
run to the end. The reference runs uninterrupted on one Ray worker (exact mode; the starting count in
default mode) checkpointing at every step the schedule stopped at; the result has the same keys as
the torchrun check's (`executor.train.check`), plus `backend` and `nodes`.
"""

from __future__ import annotations

import shutil
import tempfile
from dataclasses import replace
from pathlib import Path

from executor.actions import response_from_placements
from executor.train import checkpoint
from executor.train import ray_gang as RG
from executor.train.check import _snapshot
from executor.train.compare import param_diff
from executor.train.spec import TrainSpec
from models import Placement, parse_request

JOB = "check"


def check_fleet(nodes: int) -> dict:
    """N fleet nodes of 4 CPU slots: a0..a{N-2} in cluster ca (region-a), b0 in cluster cb (region-b)."""
    return {"regions": [{"name": "region-a", "storage_gbps": 0.5}, {"name": "region-b", "storage_gbps": 0.5}],
            "links": [{"a": "region-a", "b": "region-b", "gbps": 0.5}],
            "clusters": [{"name": "ca", "region": "region-a",
                          "node_groups": [{"prefix": "a", "count": nodes - 1, "accelerator": "cpu", "devices": 4}]},
                         {"name": "cb", "region": "region-b",
                          "node_groups": [{"prefix": "b", "count": 1, "accelerator": "cpu", "devices": 4}]}]}


def fleet_node_names(nodes: int) -> list[str]:
    return [f"a{i}" for i in range(nodes - 1)] + ["b0"]


def schedule(nodes: int) -> list[tuple[float, str, str | None, dict[str, int] | None]]:
    """(fraction of steps done, what, cluster, nodes) after the first start on a0 x4."""
    a1 = "a1" if nodes >= 3 else "a0"
    return [
        (0.15, "preempt", None, None),
        (0.15, "start", "ca", {"a0": 4}),
        (0.30, "resize", "ca", {"a0": 1, a1: 1}),
        (0.45, "resize", "ca", {a1: 1}),
        (0.60, "resize", "ca", {"a0": 2, a1: 2}),
        (0.70, "move", "ca", {a1: 4}),
        (0.85, "migrate", "cb", {"b0": 4}),
    ]


def _request(fleet: dict, current: Placement | None):
    job = {"id": JOB, "tier": "standard", "replicas": {"min": 1, "max": 4}, "speed": {"cpu": 1.0},
           "checkpoint_gb": 0.05, "current": current.model_dump() if current else None}
    if current is None:
        job["checkpoint_region"] = None
    return parse_request({"epoch_s": 60, "fleet": fleet, "jobs": [job]})


def run_ray_check(spec: TrainSpec, nodes: int = 3, work_dir: Path | None = None, timeout_s: float = 600.0,
                  log=None) -> dict:
    """Run the schedule through a `RayExecutor` (Ray must be connected, with the fleet's node resources)
    and the reference; return the executor-check JSON object."""
    from executor.ray_backend import RayExecutor

    if nodes < 2:
        raise ValueError(f"--nodes must be at least 2 (one per region), got {nodes}")
    own = work_dir is None
    work = Path(tempfile.mkdtemp(prefix="meridian-raycheck-")) if own else work_dir
    say = log or (lambda msg: None)
    fleet = check_fleet(nodes)
    spec = replace(spec, checkpoint_every=0, keep_checkpoints=max(spec.keep_checkpoints, 100))
    ex = RayExecutor(work, timeout_s=timeout_s)
    try:
        ex.add_job(JOB, spec, "region-a")
        ex.apply(_request(fleet, None), response_from_placements(
            _request(fleet, None), {JOB: Placement(cluster="ca", accelerator="cpu", nodes={"a0": 4})}), 0.0)
        snaps = work / "snapshots"
        pauses, pending_preempt = [], None
        for frac, what, cluster, target in schedule(nodes):
            current = ex.placements().get(JOB)
            if current is not None:
                reached = ex.wait_step(JOB, max(1, int(frac * spec.steps)), timeout_s)
                if reached >= spec.steps:
                    raise RuntimeError(f"the job finished before the {what} at step {int(frac * spec.steps)}")
            req = _request(fleet, current)
            placed = {} if target is None else {JOB: Placement(cluster=cluster, accelerator="cpu", nodes=target)}
            plan = response_from_placements(req, placed)
            [applied] = ex.apply(req, plan, 0.0)
            if applied.kind != "preempt" and "total_s" not in applied.measured_s:
                gang = ex.gang_of(JOB)
                raise RuntimeError(f"the {applied.kind} did not come back running: "
                                   f"{gang.ended if gang else 'no workers'} {gang.errors if gang else ''}")
            rec = {"action": applied.kind, "nodes": target, "from_workers": current.replicas if current else 0,
                   "to_workers": ex.workers_of(JOB), "bytes": applied.checkpoint_bytes,
                   "modelled_s": applied.modelled_pause_s, **applied.measured_s}
            if applied.kind == "preempt":
                rec["at_step"] = ex.steps_done()[JOB]
                pending_preempt = rec
                continue
            if pending_preempt is not None:    # preempt -> started again: one pause, stop + cold start
                start = rec
                rec = {**pending_preempt, **{k: v for k, v in start.items() if k not in ("action", "stop_s", "save_s")},
                       "from_workers": pending_preempt["from_workers"],
                       "total_s": pending_preempt.get("stop_s", 0.0) + start.get("total_s", 0.0)}
                pending_preempt = None
            else:
                rec["at_step"] = ex.steps_done()[JOB]
            ckpt = ex._jobs[JOB].job.ckpt_dir / checkpoint.ckpt_name(rec["at_step"])
            _snapshot(ckpt, snaps / str(rec["at_step"]))
            say(f"{rec['action']} at step {rec['at_step']}: {rec['from_workers']} -> {rec['to_workers']} workers "
                f"{target}, {rec['total_s']:.2f}s")
            pauses.append(rec)
        ex.wait_finished(JOB, timeout_s)
        final = ex._jobs[JOB].job.ckpt_dir / checkpoint.ckpt_name(spec.steps)

        ref_workers = 1 if spec.exact else 4
        say(f"reference: uninterrupted on {ref_workers} Ray worker(s)")
        ref_dir = work / "reference"
        gang = RG.launch(spec.to_dict(), {"a0": ref_workers}, work / "runs" / "reference", ref_dir,
                         save_at=[p["at_step"] for p in pauses], timeout_s=timeout_s)
        end = RG.wait(gang, timeout_s)
        if end != "finished":
            raise RuntimeError(f"the reference run ended {end}: {'; '.join(gang.errors)}")
        for p in pauses:
            p["max_abs_param_diff"] = param_diff(ref_dir / checkpoint.ckpt_name(p["at_step"]),
                                                 snaps / str(p["at_step"]))["max_abs_param_diff"]
        diff = param_diff(ref_dir / checkpoint.ckpt_name(spec.steps), final)
        return {
            "backend": "ray", "nodes": nodes,
            "mode": "exact" if spec.exact else "default",
            "reduce_dtype": None if spec.exact else spec.reduce_dtype,
            "max_abs_param_diff": diff["max_abs_param_diff"],
            "max_rel_param_diff": diff["max_rel_param_diff"],
            "optimizer_state_equal": diff["optimizer_state_equal"],
            "steps": spec.steps, "params": spec.params(), "world_size": spec.world_size,
            "reference_workers": ref_workers,
            "pauses": [_view(p) for p in pauses],
        }
    finally:
        ex.close()
        if own:
            shutil.rmtree(work, ignore_errors=True)


def _view(p: dict) -> dict:
    keys = ["action", "nodes", "from_workers", "to_workers", "at_step", "bytes", "modelled_s", "stop_s", "save_s",
            "transfer_s", "prelaunch_s", "launch_s", "rendezvous_s", "load_s", "first_step_s", "total_s",
            "max_abs_param_diff"]
    return {k: (round(p[k], 4) if isinstance(p.get(k), float) and k != "max_abs_param_diff" else p.get(k))
            for k in keys}
