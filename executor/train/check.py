"""`executor-check`: the same job trained uninterrupted and through a schedule of preemption, resizes
and a migrate must end with the same parameters (bitwise in exact mode).

The schedule runs first, on W = world_size logical ranks: start on 4 workers, preempt and restart on
4 (same r), resize 4 -> 2 -> 1 -> 4, migrate to another region's storage, run to the end. Each action
is a real SIGTERM -> checkpoint -> exit -> relaunch -> resume cycle, triggered once the job has passed a
fraction of its steps. Then the reference runs uninterrupted, checkpointing (without stopping) at every
step the schedule stopped at, so each action also gets the parameter difference at its checkpoint. The
reference runs on 1 worker in exact mode (bitwise equality must hold for any r, and one worker is the
cheapest) and on the schedule's starting count in default mode (whose rounding depends on r).
"""

from __future__ import annotations

import json
import os
import shutil
import tempfile
from dataclasses import replace
from pathlib import Path

from executor.train import checkpoint
from executor.train import launch as L
from executor.train.compare import param_diff
from executor.train.cycle import Job, cycle, wait_first_step, wait_step
from executor.train.spec import TrainSpec

# (fraction of steps done before the action, action, workers after, region after)
SCHEDULE = [
    (0.15, "preempt", 4, "region-a"),
    (0.30, "resize", 2, "region-a"),
    (0.45, "resize", 1, "region-a"),
    (0.60, "resize", 4, "region-a"),
    (0.75, "migrate", 4, "region-b"),
]


def one_node(workers: int) -> dict[str, int]:
    return {"local-0": workers}


def _snapshot(src: Path, dst: Path) -> None:
    """Hard-link a published checkpoint aside (it is immutable), so later pruning or a migrate keep it."""
    dst.mkdir(parents=True, exist_ok=True)
    for f in src.iterdir():
        os.link(f, dst / f.name)


def run_check(spec: TrainSpec, work_dir: Path | None = None, start_workers: int = 4,
              schedule: list = SCHEDULE, timeout_s: float = 900.0, log=None) -> dict:
    """Run the schedule and the reference; return the executor-check JSON object."""
    counts = [start_workers] + [w for _, _, w, _ in schedule]
    if any(spec.world_size % w for w in counts):
        raise ValueError(f"the schedule uses {sorted(set(counts))} workers: each must divide world_size "
                         f"{spec.world_size}")
    own = work_dir is None
    work = Path(tempfile.mkdtemp(prefix="meridian-check-")) if own else work_dir
    try:
        spec = replace(spec, checkpoint_every=0, keep_checkpoints=max(spec.keep_checkpoints, 100))
        spec_path = work / "spec.json"
        spec_path.write_text(json.dumps(spec.to_dict()))
        say = log or (lambda msg: None)

        job = Job("check", spec_path, work / "runs", work / "storage", "region-a")
        snaps = work / "snapshots"
        group = job.start(one_node(start_workers))
        wait_first_step(group, timeout_s)
        pauses = []
        for frac, kind, workers, region in schedule:
            target = max(1, int(frac * spec.steps))
            reached = wait_step(job.group, target, timeout_s)
            if reached >= spec.steps:
                raise RuntimeError(f"the job finished before the {kind} at step {target}")
            rec = cycle(job, one_node(workers), to_region=region, timeout_s=timeout_s)
            rec["action"] = kind
            _snapshot(job.ckpt_dir / checkpoint.ckpt_name(rec["at_step"]), snaps / f"{rec['at_step']}")
            say(f"{kind} at step {rec['at_step']}: {rec['from_workers']} -> {rec['to_workers']} workers, "
                f"{rec['total_s']:.2f}s")
            pauses.append(rec)
        end = L.wait(job.group, timeout_s)
        if end != "finished":
            raise RuntimeError(f"the scheduled run ended {end}; see {job.group.run_dir}")
        final = job.ckpt_dir / checkpoint.ckpt_name(spec.steps)

        say(f"reference: uninterrupted on {1 if spec.exact else start_workers} worker(s)")
        ref = Job("reference", spec_path, work / "runs", work / "storage", "region-a")
        stops = [p["at_step"] for p in pauses]
        ref_workers = 1 if spec.exact else start_workers
        group = ref.start(one_node(ref_workers), save_at=stops)
        end = L.wait(group, timeout_s)
        if end != "finished":
            raise RuntimeError(f"the reference run ended {end}; see {group.run_dir}")
        for p in pauses:
            d = param_diff(ref.ckpt_dir / checkpoint.ckpt_name(p["at_step"]), snaps / str(p["at_step"]))
            p["max_abs_param_diff"] = d["max_abs_param_diff"]
        diff = param_diff(ref.ckpt_dir / checkpoint.ckpt_name(spec.steps), final)
        return {
            "mode": "exact" if spec.exact else "default",
            "reduce_dtype": None if spec.exact else spec.reduce_dtype,
            "max_abs_param_diff": diff["max_abs_param_diff"],
            "max_rel_param_diff": diff["max_rel_param_diff"],
            "optimizer_state_equal": diff["optimizer_state_equal"],
            "steps": spec.steps,
            "params": spec.params(),
            "world_size": spec.world_size,
            "reference_workers": ref_workers,
            "pauses": [_pause_view(p) for p in pauses],
        }
    finally:
        L.kill_all()          # an interrupt (Ctrl-C, SIGTERM) leaves no worker writing into `work`
        if own:
            shutil.rmtree(work, ignore_errors=True)


def _pause_view(p: dict) -> dict:
    keys = ["action", "from_workers", "to_workers", "at_step", "bytes", "stop_s", "save_s", "transfer_s",
            "launch_s", "rendezvous_s", "load_s", "first_step_s", "total_s", "max_abs_param_diff"]
    return {k: (round(p[k], 4) if isinstance(p.get(k), float) and k != "max_abs_param_diff" else p.get(k))
            for k in keys}
